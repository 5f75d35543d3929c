//! Golden cases produced by ONNX Runtime's Conv / ConvTranspose (see tests/golden/README.md):
//! an implementation independent of both hipconv and its reference.

use half::f16;
use hipconv::host::max_rel_error;
use hipconv::{Conv, ConvDesc, ConvProblem, DType, TensorDesc};
use serde_json::Value;

struct Case {
    name: String,
    transposed: bool,
    x_shape: Vec<usize>,
    w_shape: Vec<usize>,
    pads: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    group: usize,
    output_padding: Vec<usize>,
    x: Vec<f64>,
    w: Vec<f64>,
    b: Option<Vec<f64>>,
    y_shape: Vec<usize>,
    y: Vec<f64>,
}

fn load() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/cases.json");
    let text = std::fs::read_to_string(path).expect("golden fixtures present");
    let json: Value = serde_json::from_str(&text).expect("valid JSON");
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let sizes = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    };
    json.as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            transposed: c["op"] == "conv_transpose",
            x_shape: sizes(&c["x_shape"]),
            w_shape: sizes(&c["w_shape"]),
            pads: sizes(&c["pads"]),
            strides: sizes(&c["strides"]),
            dilations: sizes(&c["dilations"]),
            group: c["group"].as_u64().unwrap() as usize,
            output_padding: sizes(&c["output_padding"]),
            x: nums(&c["x"]),
            w: nums(&c["w"]),
            b: c["b"].as_array().map(|_| nums(&c["b"])),
            y_shape: sizes(&c["y_shape"]),
            y: nums(&c["y"]),
        })
        .collect()
}

/// Runs a golden case in `dtype` and returns the packed result.
fn run(case: &Case, dtype: DType) -> Vec<f64> {
    let conv = ConvDesc::new(&case.pads, &case.strides, &case.dilations, case.group).unwrap();
    let x = TensorDesc::packed(dtype, &case.x_shape).unwrap();
    let w = TensorDesc::packed(dtype, &case.w_shape).unwrap();
    let problem = if case.transposed {
        ConvProblem::transposed(x, w, conv, &case.output_padding).unwrap()
    } else {
        ConvProblem::forward_packed(x, w, conv).unwrap()
    };
    let out_desc = if case.transposed {
        problem.x().clone()
    } else {
        problem.y().clone()
    };
    assert_eq!(
        out_desc.dims(),
        &case.y_shape[..],
        "{}: output shape",
        case.name
    );
    let engine = Conv::new(problem).with_workspace_budget(4096);
    let mut out = match dtype {
        DType::F32 => {
            let (xs, ws): (Vec<f32>, Vec<f32>) = (
                case.x.iter().map(|&v| v as f32).collect(),
                case.w.iter().map(|&v| v as f32).collect(),
            );
            let mut o = vec![f32::NAN; out_desc.element_count()];
            if case.transposed {
                engine.backward_data(&xs, &ws, &mut o)
            } else {
                engine.forward(&xs, &ws, &mut o)
            }
            .unwrap();
            o.iter().map(|&v| v as f64).collect::<Vec<_>>()
        }
        DType::F64 => {
            let mut o = vec![f64::NAN; out_desc.element_count()];
            if case.transposed {
                engine.backward_data(&case.x, &case.w, &mut o)
            } else {
                engine.forward(&case.x, &case.w, &mut o)
            }
            .unwrap();
            o
        }
        _ => {
            let (xs, ws): (Vec<f16>, Vec<f16>) = (
                case.x.iter().map(|&v| f16::from_f64(v)).collect(),
                case.w.iter().map(|&v| f16::from_f64(v)).collect(),
            );
            let mut o = vec![f16::NAN; out_desc.element_count()];
            if case.transposed {
                engine.backward_data(&xs, &ws, &mut o)
            } else {
                engine.forward(&xs, &ws, &mut o)
            }
            .unwrap();
            o.iter().map(|v| v.to_f64()).collect::<Vec<_>>()
        }
    };
    if let Some(b) = &case.b {
        let plane: usize = case.y_shape[2..].iter().product();
        let channels = case.y_shape[1];
        for (i, v) in out.iter_mut().enumerate() {
            *v += b[(i / plane) % channels];
        }
    }
    out
}

#[test]
fn golden_cases_match_onnx_runtime() {
    let cases = load();
    assert!(cases.len() >= 30, "expected the full fixture set");
    let mut covered = (false, false, [false; 3]);
    for case in &cases {
        covered.0 |= case.transposed;
        covered.1 |= case.group > 1;
        covered.2[case.x_shape.len() - 3] = true;
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6), (DType::F16, 2e-3)] {
            let got = run(case, dtype);
            let err = max_rel_error(&got, &case.y, 1e-6);
            assert!(err <= tol, "{} in {dtype}: error {err} > {tol}", case.name);
        }
    }
    assert!(
        covered.0 && covered.1 && covered.2.iter().all(|&c| c),
        "fixtures cover transposed, grouped, 1/2/3-D"
    );
}
