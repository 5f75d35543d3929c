//! The C ABI called from Rust: object lifecycle and error statuses, descriptor getters, and
//! every convolution path (legacy without Find, Find, immediate) against the f64 reference.

use half::{bf16, f16};
use hipconv::ffi::*;
use hipconv::host::{from_packed_f64, max_rel_error, to_packed_f64};
use hipconv::verify::{test_values, tolerance};
use hipconv::{ConvDesc, ConvProblem, DType, Element, TensorDesc, reference};
use std::ffi::{CStr, c_void};
use std::ptr::{null, null_mut};

fn ok(status: miopenStatus_t) {
    assert_eq!(status, miopenStatusSuccess, "{:?}", unsafe {
        CStr::from_ptr(miopenGetErrorString(status))
    });
}

fn code(dtype: DType) -> miopenDataType_t {
    match dtype {
        DType::F16 => miopenHalf,
        DType::BF16 => miopenBFloat16,
        DType::F32 => miopenFloat,
        DType::F64 => miopenDouble,
    }
}

fn handle() -> miopenHandle_t {
    let mut h = null_mut();
    ok(unsafe { miopenCreate(&mut h) });
    h
}

fn tensor(t: &TensorDesc) -> miopenTensorDescriptor_t {
    let mut d = null_mut();
    let dims: Vec<i32> = t.dims().iter().map(|&v| v as i32).collect();
    let strides: Vec<i32> = t.strides().iter().map(|&v| v as i32).collect();
    unsafe {
        ok(miopenCreateTensorDescriptor(&mut d));
        ok(miopenSetTensorDescriptor(
            d,
            code(t.dtype()),
            dims.len() as i32,
            dims.as_ptr(),
            strides.as_ptr(),
        ));
    }
    d
}

fn conv_desc(
    c: &ConvDesc,
    mode: miopenConvolutionMode_t,
    adj: &[usize],
) -> miopenConvolutionDescriptor_t {
    let mut d = null_mut();
    let ints = |v: &[usize]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
    let (p, s, dl, a) = (
        ints(c.pads()),
        ints(c.strides()),
        ints(c.dilations()),
        ints(adj),
    );
    unsafe {
        ok(miopenCreateConvolutionDescriptor(&mut d));
        ok(miopenInitConvolutionNdDescriptor(
            d,
            p.len() as i32,
            p.as_ptr(),
            s.as_ptr(),
            dl.as_ptr(),
            mode,
        ));
        ok(miopenSetConvolutionGroupCount(d, c.groups() as i32));
        if adj.iter().any(|&v| v > 0) {
            ok(miopenSetTransposeConvNdOutputPadding(
                d,
                a.len() as i32,
                a.as_ptr(),
            ));
        }
    }
    d
}

/// A host buffer for `desc` holding `packed` values (strided gaps zero).
fn buffer<T: Element>(desc: &TensorDesc, packed: &[f64]) -> Vec<T> {
    let mut v = vec![T::from_f64(0.0); desc.element_space().unwrap()];
    from_packed_f64(desc, packed, &mut v).unwrap();
    v
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    Legacy,
    Find,
    Immediate,
}

/// Which call family runs, as in the C API.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Call {
    Forward,
    BackwardData,
    BackwardWeights,
}

/// A convolution as the C caller describes it: x, w, y in the roles of `call`.
struct Setup {
    x: TensorDesc,
    w: TensorDesc,
    y: TensorDesc,
    conv: ConvDesc,
    mode: miopenConvolutionMode_t,
    adj: Vec<usize>,
}

/// Runs `call` through `path` and returns the output (packed f64).
fn run_call<T: Element>(
    h: miopenHandle_t,
    s: &Setup,
    call: Call,
    path: Path,
    ins: (&[f64], &[f64]),
    alpha_beta: Option<(f64, f64, &[f64])>,
) -> Vec<f64> {
    let (xd, wd, yd) = (tensor(&s.x), tensor(&s.w), tensor(&s.y));
    let cd = conv_desc(&s.conv, s.mode, &s.adj);
    // Inputs and output by call.
    let (a_desc, b_desc, o_desc) = match call {
        Call::Forward => (&s.x, &s.w, &s.y),
        Call::BackwardData => (&s.y, &s.w, &s.x),
        Call::BackwardWeights => (&s.y, &s.x, &s.w),
    };
    let a: Vec<T> = buffer(a_desc, ins.0);
    let b: Vec<T> = buffer(b_desc, ins.1);
    let init = alpha_beta
        .map(|(_, _, o)| o.to_vec())
        .unwrap_or_else(|| vec![0.0; o_desc.element_count()]);
    let mut o: Vec<T> = buffer(o_desc, &init);
    let (ap, bp, op) = (
        a.as_ptr() as *const c_void,
        b.as_ptr() as *const c_void,
        o.as_mut_ptr() as *mut c_void,
    );
    let mut ws_size = 0usize;
    unsafe {
        ok(match call {
            Call::Forward => {
                miopenConvolutionForwardGetWorkSpaceSize(h, wd, xd, cd, yd, &mut ws_size)
            }
            Call::BackwardData => {
                miopenConvolutionBackwardDataGetWorkSpaceSize(h, yd, wd, cd, xd, &mut ws_size)
            }
            Call::BackwardWeights => {
                miopenConvolutionBackwardWeightsGetWorkSpaceSize(h, yd, xd, cd, wd, &mut ws_size)
            }
        });
        let mut ws = vec![0u64; ws_size.div_ceil(8)];
        let wsp = ws.as_mut_ptr() as *mut c_void;
        let (alpha, beta) = alpha_beta.map(|(a, b, _)| (a, b)).unwrap_or((1.0, 0.0));
        let (af, bf, ad, bd) = (alpha as f32, beta as f32, alpha, beta);
        let (alpha_p, beta_p) = if s.x.dtype() == DType::F64 {
            (
                &ad as *const f64 as *const c_void,
                &bd as *const f64 as *const c_void,
            )
        } else {
            (
                &af as *const f32 as *const c_void,
                &bf as *const f32 as *const c_void,
            )
        };
        match path {
            Path::Legacy | Path::Find => {
                let mut mem = ws_size;
                if path == Path::Find {
                    let mut perf = miopenConvAlgoPerf_t {
                        algo: -1,
                        time: 0.0,
                        memory: 0,
                    };
                    let mut n = 0;
                    ok(match call {
                        Call::Forward => miopenFindConvolutionForwardAlgorithm(
                            h, xd, ap, wd, bp, cd, yd, op, 1, &mut n, &mut perf, wsp, ws_size,
                            false,
                        ),
                        Call::BackwardData => miopenFindConvolutionBackwardDataAlgorithm(
                            h, yd, ap, wd, bp, cd, xd, op, 1, &mut n, &mut perf, wsp, ws_size,
                            false,
                        ),
                        Call::BackwardWeights => miopenFindConvolutionBackwardWeightsAlgorithm(
                            h, yd, ap, xd, bp, cd, wd, op, 1, &mut n, &mut perf, wsp, ws_size,
                            false,
                        ),
                    });
                    assert_eq!((n, perf.algo), (1, 0));
                    assert!(perf.time > 0.0);
                    assert!(perf.memory <= ws_size);
                    mem = perf.memory;
                    if alpha_beta.is_some() {
                        // Find overwrote the output; restore the beta operand.
                        o = buffer(o_desc, &init);
                    }
                }
                let op = o.as_mut_ptr() as *mut c_void;
                ok(match call {
                    Call::Forward => miopenConvolutionForward(
                        h,
                        alpha_p,
                        xd,
                        ap,
                        wd,
                        bp,
                        cd,
                        miopenConvolutionFwdAlgoGEMM,
                        beta_p,
                        yd,
                        op,
                        wsp,
                        mem,
                    ),
                    Call::BackwardData => miopenConvolutionBackwardData(
                        h,
                        alpha_p,
                        yd,
                        ap,
                        wd,
                        bp,
                        cd,
                        miopenConvolutionBwdDataAlgoGEMM,
                        beta_p,
                        xd,
                        op,
                        wsp,
                        mem,
                    ),
                    Call::BackwardWeights => miopenConvolutionBackwardWeights(
                        h,
                        alpha_p,
                        yd,
                        ap,
                        xd,
                        bp,
                        cd,
                        miopenConvolutionBwdWeightsAlgoGEMM,
                        beta_p,
                        wd,
                        op,
                        wsp,
                        mem,
                    ),
                });
            }
            Path::Immediate => {
                let mut count = 0usize;
                ok(match call {
                    Call::Forward => {
                        miopenConvolutionForwardGetSolutionCount(h, wd, xd, cd, yd, &mut count)
                    }
                    Call::BackwardData => {
                        miopenConvolutionBackwardDataGetSolutionCount(h, yd, wd, cd, xd, &mut count)
                    }
                    Call::BackwardWeights => miopenConvolutionBackwardWeightsGetSolutionCount(
                        h, yd, xd, cd, wd, &mut count,
                    ),
                });
                assert!((1..=10).contains(&count));
                let mut sols = vec![
                    miopenConvSolution_t {
                        time: 0.0,
                        workspace_size: 0,
                        solution_id: 0,
                        algorithm: miopenConvolutionAlgoDirect
                    };
                    count
                ];
                let mut got = 0usize;
                ok(match call {
                    Call::Forward => miopenConvolutionForwardGetSolution(
                        h,
                        wd,
                        xd,
                        cd,
                        yd,
                        count,
                        &mut got,
                        sols.as_mut_ptr(),
                    ),
                    Call::BackwardData => miopenConvolutionBackwardDataGetSolution(
                        h,
                        yd,
                        wd,
                        cd,
                        xd,
                        count,
                        &mut got,
                        sols.as_mut_ptr(),
                    ),
                    Call::BackwardWeights => miopenConvolutionBackwardWeightsGetSolution(
                        h,
                        yd,
                        xd,
                        cd,
                        wd,
                        count,
                        &mut got,
                        sols.as_mut_ptr(),
                    ),
                });
                assert_eq!(got, 1);
                let sol = sols[0];
                assert_eq!(sol.algorithm, miopenConvolutionAlgoGEMM);
                assert_eq!(sol.solution_id, [91, 97, 102][call as usize]);
                let mut sws = 0usize;
                ok(match call {
                    Call::Forward => miopenConvolutionForwardGetSolutionWorkspaceSize(
                        h,
                        wd,
                        xd,
                        cd,
                        yd,
                        sol.solution_id,
                        &mut sws,
                    ),
                    Call::BackwardData => miopenConvolutionBackwardDataGetSolutionWorkspaceSize(
                        h,
                        yd,
                        wd,
                        cd,
                        xd,
                        sol.solution_id,
                        &mut sws,
                    ),
                    Call::BackwardWeights => {
                        miopenConvolutionBackwardWeightsGetSolutionWorkspaceSize(
                            h,
                            yd,
                            xd,
                            cd,
                            wd,
                            sol.solution_id,
                            &mut sws,
                        )
                    }
                });
                assert_eq!(sws, sol.workspace_size);
                ok(match call {
                    Call::Forward => {
                        miopenConvolutionForwardCompileSolution(h, wd, xd, cd, yd, sol.solution_id)
                    }
                    Call::BackwardData => miopenConvolutionBackwardDataCompileSolution(
                        h,
                        yd,
                        wd,
                        cd,
                        xd,
                        sol.solution_id,
                    ),
                    Call::BackwardWeights => miopenConvolutionBackwardWeightsCompileSolution(
                        h,
                        yd,
                        xd,
                        cd,
                        wd,
                        sol.solution_id,
                    ),
                });
                let mut ws2 = vec![0u64; sol.workspace_size.div_ceil(8)];
                let wsp2 = ws2.as_mut_ptr() as *mut c_void;
                ok(match call {
                    Call::Forward => miopenConvolutionForwardImmediate(
                        h,
                        wd,
                        bp,
                        xd,
                        ap,
                        cd,
                        yd,
                        op,
                        wsp2,
                        sol.workspace_size,
                        sol.solution_id,
                    ),
                    Call::BackwardData => miopenConvolutionBackwardDataImmediate(
                        h,
                        yd,
                        ap,
                        wd,
                        bp,
                        cd,
                        xd,
                        op,
                        wsp2,
                        sol.workspace_size,
                        sol.solution_id,
                    ),
                    Call::BackwardWeights => miopenConvolutionBackwardWeightsImmediate(
                        h,
                        yd,
                        ap,
                        xd,
                        bp,
                        cd,
                        wd,
                        op,
                        wsp2,
                        sol.workspace_size,
                        sol.solution_id,
                    ),
                });
            }
        }
        for d in [xd, wd, yd] {
            ok(miopenDestroyTensorDescriptor(d));
        }
        ok(miopenDestroyConvolutionDescriptor(cd));
    }
    to_packed_f64(o_desc, &o).unwrap()
}

/// The engine problem whose forward is the C caller's convolution (for the reference).
fn reference_problem(s: &Setup) -> ConvProblem {
    if s.mode == miopenTranspose {
        ConvProblem::new(s.y.clone(), s.w.clone(), s.x.clone(), s.conv.clone()).unwrap()
    } else {
        ConvProblem::new(s.x.clone(), s.w.clone(), s.y.clone(), s.conv.clone()).unwrap()
    }
}

/// Checks all three calls through all three paths against the reference.
fn check<T: Element>(s: &Setup) {
    let h = handle();
    let p = reference_problem(s);
    let swapped = s.mode == miopenTranspose;
    let (px, pw, py) = (p.x(), p.w(), p.y());
    let vx = test_values(px.element_count(), 1);
    let vw = test_values(pw.element_count(), 2);
    let vy = test_values(py.element_count(), 3);
    let round = |v: &[f64], d: &TensorDesc| to_packed_f64(d, &buffer::<T>(d, v)).unwrap();
    let (vx, vw, vy) = (round(&vx, px), round(&vw, pw), round(&vy, py));
    let tol = tolerance(T::DTYPE);
    for call in [Call::Forward, Call::BackwardData, Call::BackwardWeights] {
        // What the caller passes, by call, in caller roles (x, w, y).
        let (cx, cy) = if swapped { (&vy, &vx) } else { (&vx, &vy) };
        let (ins, want): ((&[f64], &[f64]), Vec<f64>) = match (call, swapped) {
            (Call::Forward, false) => ((cx, &vw), reference::forward(&p, &vx, &vw)),
            (Call::Forward, true) => ((cx, &vw), reference::backward_data(&p, &vy, &vw)),
            (Call::BackwardData, false) => ((cy, &vw), reference::backward_data(&p, &vy, &vw)),
            (Call::BackwardData, true) => ((cy, &vw), reference::forward(&p, &vx, &vw)),
            (Call::BackwardWeights, false) => ((cy, cx), reference::backward_weights(&p, &vx, &vy)),
            (Call::BackwardWeights, true) => ((cy, cx), reference::backward_weights(&p, &vx, &vy)),
        };
        for path in [Path::Legacy, Path::Find, Path::Immediate] {
            let got = run_call::<T>(h, s, call, path, ins, None);
            let err = max_rel_error(&got, &want, 1e-3);
            assert!(err <= tol, "{call:?} {path:?} {} err {err}", p.summary());
        }
    }
    unsafe { ok(miopenDestroy(h)) };
}

fn setup(dtype: DType, x: &[usize], w: &[usize], conv: ConvDesc, nhwc: bool) -> Setup {
    let mk = |d: &[usize]| {
        if nhwc {
            TensorDesc::packed_channels_last(dtype, d).unwrap()
        } else {
            TensorDesc::packed(dtype, d).unwrap()
        }
    };
    let (x, w) = (mk(x), mk(w));
    let p = ConvProblem::forward_packed(x.clone(), w.clone(), conv.clone()).unwrap();
    let y = mk(p.y().dims());
    Setup {
        x,
        w,
        y,
        conv,
        mode: miopenConvolution,
        adj: Vec::new(),
    }
}

#[test]
fn convolutions_match_the_reference_through_every_path() {
    let c = |p: usize, s: usize, d: usize| ConvDesc::uniform(2, p, s, d).unwrap();
    // Plain, stride + padding, dilation, groups, NHWC, pointwise.
    check::<f32>(&setup(
        DType::F32,
        &[2, 3, 9, 8],
        &[4, 3, 3, 3],
        c(1, 1, 1),
        false,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[2, 4, 11, 10],
        &[6, 4, 3, 2],
        ConvDesc::new(&[1, 0], &[2, 3], &[1, 1], 1).unwrap(),
        false,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[1, 2, 12, 12],
        &[3, 2, 3, 3],
        c(2, 1, 2),
        false,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[2, 6, 7, 7],
        &[9, 2, 3, 3],
        c(1, 1, 1).with_groups(3).unwrap(),
        false,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[2, 4, 6, 7],
        &[8, 1, 3, 3],
        c(1, 2, 1).with_groups(4).unwrap(),
        true,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[2, 8, 5, 5],
        &[4, 8, 1, 1],
        c(0, 1, 1),
        false,
    ));
    // 3-D, 1-D, other types.
    check::<f32>(&setup(
        DType::F32,
        &[1, 2, 5, 6, 4],
        &[3, 2, 3, 3, 2],
        ConvDesc::uniform(3, 1, 1, 1).unwrap(),
        false,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[2, 3, 6, 5, 4],
        &[4, 3, 2, 2, 2],
        ConvDesc::uniform(3, 0, 2, 1).unwrap(),
        true,
    ));
    check::<f32>(&setup(
        DType::F32,
        &[2, 3, 17],
        &[5, 3, 4],
        ConvDesc::uniform(1, 2, 2, 1).unwrap(),
        false,
    ));
    check::<f16>(&setup(
        DType::F16,
        &[2, 4, 7, 7],
        &[4, 2, 3, 3],
        c(1, 1, 1).with_groups(2).unwrap(),
        false,
    ));
    check::<bf16>(&setup(
        DType::BF16,
        &[2, 3, 7, 6],
        &[5, 3, 3, 3],
        c(1, 2, 1),
        true,
    ));
    check::<f64>(&setup(
        DType::F64,
        &[1, 3, 6, 6],
        &[2, 3, 3, 3],
        c(1, 1, 1),
        false,
    ));
}

#[test]
fn strided_views_are_indexed_by_strides() {
    // x is a view with padding between rows and channels.
    let x = TensorDesc::new(DType::F32, &[2, 3, 5, 6], &[200, 60, 10, 1]).unwrap();
    let w = TensorDesc::packed(DType::F32, &[4, 3, 3, 3]).unwrap();
    let conv = ConvDesc::uniform(2, 1, 1, 1).unwrap();
    let y = ConvProblem::forward_output_desc(&x, &w, &conv).unwrap();
    check::<f32>(&Setup {
        x,
        w,
        y,
        conv,
        mode: miopenConvolution,
        adj: Vec::new(),
    });
}

#[test]
fn transpose_mode_swaps_roles_and_accepts_output_padding() {
    // Transposed convolution of x [N, Cin=4, 5, 5] with w [Cin, Cout/G=3, 3, 3], stride 2,
    // pad 1, output padding 1: y [N, 3, 10, 10].
    let conv = ConvDesc::uniform(2, 1, 2, 1).unwrap();
    let x = TensorDesc::packed(DType::F32, &[2, 4, 5, 5]).unwrap();
    let w = TensorDesc::packed(DType::F32, &[4, 3, 3, 3]).unwrap();
    let y = TensorDesc::packed(DType::F32, &[2, 3, 10, 10]).unwrap();
    let s = Setup {
        x: x.clone(),
        w: w.clone(),
        y: y.clone(),
        conv: conv.clone(),
        mode: miopenTranspose,
        adj: vec![1, 1],
    };
    // The output-dim query agrees.
    unsafe {
        let (xd, wd) = (tensor(&x), tensor(&w));
        let cd = conv_desc(&conv, miopenTranspose, &[1, 1]);
        let mut dims = [0i32; 4];
        let mut nd = 0;
        ok(miopenGetConvolutionNdForwardOutputDim(
            cd,
            xd,
            wd,
            &mut nd,
            dims.as_mut_ptr(),
        ));
        assert_eq!((nd, dims), (4, [2, 3, 10, 10]));
    }
    check::<f32>(&s);
    // Grouped transpose.
    let conv = ConvDesc::uniform(2, 0, 2, 1)
        .unwrap()
        .with_groups(2)
        .unwrap();
    let x = TensorDesc::packed(DType::F32, &[1, 4, 4, 3]).unwrap();
    let w = TensorDesc::packed(DType::F32, &[4, 1, 2, 3]).unwrap();
    let y = TensorDesc::packed(DType::F32, &[1, 2, 8, 7]).unwrap();
    check::<f32>(&Setup {
        x,
        w,
        y,
        conv,
        mode: miopenTranspose,
        adj: vec![0, 0],
    });
}

#[test]
fn backward_data_accepts_the_larger_dx_of_output_padding() {
    // PyTorch's transposed convolution: backward data in convolution mode with dx one larger
    // than the forward formula needs.
    let conv = ConvDesc::uniform(2, 1, 2, 1).unwrap();
    let x = TensorDesc::packed(DType::F32, &[2, 3, 10, 10]).unwrap();
    let w = TensorDesc::packed(DType::F32, &[4, 3, 3, 3]).unwrap();
    let y = TensorDesc::packed(DType::F32, &[2, 4, 5, 5]).unwrap();
    check::<f32>(&Setup {
        x,
        w,
        y,
        conv,
        mode: miopenConvolution,
        adj: Vec::new(),
    });
}

#[test]
fn alpha_and_beta_blend_into_the_output() {
    let s = setup(
        DType::F32,
        &[1, 2, 6, 6],
        &[3, 2, 3, 3],
        ConvDesc::uniform(2, 1, 1, 1).unwrap(),
        false,
    );
    let p = reference_problem(&s);
    let h = handle();
    let vx = test_values(p.x().element_count(), 4);
    let vw = test_values(p.w().element_count(), 5);
    let old = test_values(p.y().element_count(), 6);
    let want: Vec<f64> = reference::forward(&p, &vx, &vw)
        .iter()
        .zip(&old)
        .map(|(r, o)| 2.5 * r - 0.5 * o)
        .collect();
    let got = run_call::<f32>(
        h,
        &s,
        Call::Forward,
        Path::Legacy,
        (&vx, &vw),
        Some((2.5, -0.5, &old)),
    );
    assert!(max_rel_error(&got, &want, 1e-3) < 1e-5);
    let old = test_values(p.w().element_count(), 7);
    let vy = test_values(p.y().element_count(), 8);
    let want: Vec<f64> = reference::backward_weights(&p, &vx, &vy)
        .iter()
        .zip(&old)
        .map(|(r, o)| r + o)
        .collect();
    let got = run_call::<f32>(
        h,
        &s,
        Call::BackwardWeights,
        Path::Find,
        (&vy, &vx),
        Some((1.0, 1.0, &old)),
    );
    assert!(max_rel_error(&got, &want, 1e-3) < 1e-5);
    unsafe { ok(miopenDestroy(h)) };
}

#[test]
fn lifecycle_and_invalid_objects() {
    unsafe {
        let h = handle();
        let mut t = null_mut();
        let mut c = null_mut();
        ok(miopenCreateTensorDescriptor(&mut t));
        ok(miopenCreateConvolutionDescriptor(&mut c));
        // NULL out-pointers and objects.
        assert_eq!(miopenCreate(null_mut()), miopenStatusBadParm);
        assert_eq!(
            miopenCreateTensorDescriptor(null_mut()),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenCreateConvolutionDescriptor(null_mut()),
            miopenStatusBadParm
        );
        assert_eq!(miopenSetStream(null_mut(), null_mut()), miopenStatusBadParm);
        assert_eq!(miopenGetStream(h, null_mut()), miopenStatusBadParm);
        assert_eq!(
            miopenSet4dTensorDescriptor(null_mut(), miopenFloat, 1, 1, 1, 1),
            miopenStatusBadParm
        );
        // Destroying NULL is harmless.
        ok(miopenDestroy(null_mut()));
        ok(miopenDestroyTensorDescriptor(null_mut()));
        ok(miopenDestroyConvolutionDescriptor(null_mut()));
        // Objects of the wrong kind.
        assert_eq!(
            miopenSet4dTensorDescriptor(c as miopenTensorDescriptor_t, miopenFloat, 1, 1, 1, 1),
            miopenStatusBadParm
        );
        assert_eq!(miopenDestroy(t as miopenHandle_t), miopenStatusBadParm);
        // Stream round trip.
        let stream = 0x1234usize as miopenAcceleratorQueue_t;
        ok(miopenSetStream(h, stream));
        let mut got = null_mut();
        ok(miopenGetStream(h, &mut got));
        assert_eq!(got, stream);
        // Profiling.
        let mut ms = -1.0f32;
        ok(miopenEnableProfiling(h, true));
        ok(miopenGetKernelTime(h, &mut ms));
        assert_eq!(ms, 0.0);
        // Use after destroy.
        ok(miopenDestroy(h));
        ok(miopenDestroyTensorDescriptor(t));
        ok(miopenDestroyConvolutionDescriptor(c));
        assert_eq!(miopenDestroy(h), miopenStatusBadParm);
        assert_eq!(miopenSetStream(h, null_mut()), miopenStatusBadParm);
        assert_eq!(
            miopenSet4dTensorDescriptor(t, miopenFloat, 1, 1, 1, 1),
            miopenStatusBadParm
        );
        assert_eq!(miopenSetConvolutionGroupCount(c, 2), miopenStatusBadParm);
        // Garbage pointers are detected, not dereferenced.
        let junk = 0xdead_beef_usize;
        assert_eq!(miopenDestroy(junk as miopenHandle_t), miopenStatusBadParm);
        let mut n = 0i32;
        assert_eq!(
            miopenGetTensorDescriptorSize(junk as miopenTensorDescriptor_t, &mut n),
            miopenStatusBadParm
        );
        // Error strings.
        assert_eq!(
            CStr::from_ptr(miopenGetErrorString(miopenStatusBadParm)),
            c"miopenStatusBadParm"
        );
        assert_eq!(
            CStr::from_ptr(miopenGetErrorString(miopenStatus_t(99))),
            c"Unknown error status"
        );
    }
}

#[test]
fn tensor_descriptor_setters_and_getters() {
    unsafe {
        let mut t = null_mut();
        ok(miopenCreateTensorDescriptor(&mut t));
        ok(miopenSet4dTensorDescriptorEx(
            t, miopenHalf, 2, 3, 4, 5, 60, 1, 15, 3,
        ));
        let mut dt = miopenFloat;
        let mut v = [0i32; 8];
        let q = v.as_mut_ptr();
        ok(miopenGet4dTensorDescriptor(
            t,
            &mut dt,
            q,
            q.add(1),
            q.add(2),
            q.add(3),
            q.add(4),
            q.add(5),
            q.add(6),
            q.add(7),
        ));
        assert_eq!((dt, v), (miopenHalf, [2, 3, 4, 5, 60, 1, 15, 3]));
        let mut bytes = 0usize;
        ok(miopenGetTensorNumBytes(t, &mut bytes));
        assert_eq!(bytes, 240);
        // N-d with layout: NDHWC strides.
        let lens = [2, 3, 4, 5, 6];
        ok(miopenSetNdTensorDescriptorWithLayout(
            t,
            miopenBFloat16,
            miopenTensorNDHWC,
            lens.as_ptr(),
            5,
        ));
        let mut n = 0;
        ok(miopenGetTensorDescriptorSize(t, &mut n));
        assert_eq!(n, 5);
        let (mut dims, mut strides) = ([0i32; 5], [0i32; 5]);
        ok(miopenGetTensorDescriptor(
            t,
            &mut dt,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
        ));
        assert_eq!(
            (dt, dims, strides),
            (miopenBFloat16, [2, 3, 4, 5, 6], [360, 1, 90, 18, 3])
        );
        ok(miopenGetTensorDescriptor(
            t,
            null_mut(),
            null_mut(),
            null_mut(),
        ));
        assert_eq!(
            miopenSetNdTensorDescriptorWithLayout(
                t,
                miopenFloat,
                miopenTensorNHWC,
                lens.as_ptr(),
                5
            ),
            miopenStatusBadParm
        );
        // V2 with NULL strides: packed.
        let dims2 = [2usize, 3, 4];
        ok(miopenSetTensorDescriptorV2(
            t,
            miopenDouble,
            3,
            dims2.as_ptr(),
            null(),
        ));
        ok(miopenGetTensorDescriptor(
            t,
            &mut dt,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
        ));
        assert_eq!(
            (dt, &dims[..3], &strides[..3]),
            (miopenDouble, &[2, 3, 4][..], &[12, 4, 1][..])
        );
        // Validation.
        assert_eq!(
            miopenSetTensorDescriptor(t, miopenFloat, 0, dims.as_ptr(), null()),
            miopenStatusInvalidValue
        );
        assert_eq!(
            miopenSetTensorDescriptor(t, miopenFloat, 2, null(), null()),
            miopenStatusInvalidValue
        );
        assert_eq!(
            miopenSet4dTensorDescriptor(t, miopenDataType_t(4), 1, 1, 1, 1),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenSet4dTensorDescriptor(t, miopenFloat, 1, 0, 1, 1),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenSet4dTensorDescriptorEx(t, miopenFloat, 1, 2, 1, 1, 2, 0, 1, 1),
            miopenStatusBadParm
        );
        // Lenient: stride 0 on a size-1 dim.
        ok(miopenSet4dTensorDescriptorEx(
            t,
            miopenFloat,
            1,
            2,
            1,
            1,
            0,
            1,
            1,
            1,
        ));
        ok(miopenDestroyTensorDescriptor(t));
    }
}

#[test]
fn convolution_descriptor_setters_and_getters() {
    unsafe {
        let mut c = null_mut();
        ok(miopenCreateConvolutionDescriptor(&mut c));
        ok(miopenInitConvolutionDescriptor(
            c,
            miopenDepthwise,
            1,
            2,
            3,
            4,
            5,
            6,
        ));
        let mut m = miopenTranspose;
        let mut v = [0i32; 6];
        let q = v.as_mut_ptr();
        ok(miopenGetConvolutionDescriptor(
            c,
            &mut m,
            q,
            q.add(1),
            q.add(2),
            q.add(3),
            q.add(4),
            q.add(5),
        ));
        assert_eq!((m, v), (miopenConvolution, [1, 2, 3, 4, 5, 6]));
        let q = v.as_mut_ptr();
        assert_eq!(
            miopenInitConvolutionDescriptor(c, miopenConvolution, -1, 0, 1, 1, 1, 1),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenInitConvolutionDescriptor(c, miopenConvolution, 0, 0, 0, 1, 1, 1),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenInitConvolutionDescriptor(c, miopenConvolutionMode_t(9), 0, 0, 1, 1, 1, 1),
            miopenStatusBadParm
        );
        // N-d.
        let (p, s, d) = ([0, 1, 2], [1, 2, 1], [1, 1, 2]);
        ok(miopenInitConvolutionNdDescriptor(
            c,
            3,
            p.as_ptr(),
            s.as_ptr(),
            d.as_ptr(),
            miopenTranspose,
        ));
        let mut sd = 0;
        ok(miopenGetConvolutionSpatialDim(c, &mut sd));
        assert_eq!(sd, 3);
        let (mut pp, mut ss, mut dd) = ([0i32; 3], [0i32; 3], [0i32; 3]);
        ok(miopenGetConvolutionNdDescriptor(
            c,
            3,
            &mut sd,
            pp.as_mut_ptr(),
            ss.as_mut_ptr(),
            dd.as_mut_ptr(),
            &mut m,
        ));
        assert_eq!((sd, pp, ss, dd, m), (3, p, s, d, miopenTranspose));
        assert_eq!(
            miopenGetConvolutionNdDescriptor(
                c,
                4,
                &mut sd,
                pp.as_mut_ptr(),
                ss.as_mut_ptr(),
                dd.as_mut_ptr(),
                &mut m
            ),
            miopenStatusUnknownError
        );
        assert_eq!(
            miopenGetConvolutionDescriptor(
                c,
                &mut m,
                q,
                q.add(1),
                q.add(2),
                q.add(3),
                q.add(4),
                q.add(5)
            ),
            miopenStatusUnknownError
        );
        assert_eq!(
            miopenSetTransposeConvOutputPadding(c, 1, 1),
            miopenStatusUnknownError
        );
        let adj = [0, 1, 0];
        ok(miopenSetTransposeConvNdOutputPadding(c, 3, adj.as_ptr()));
        // Group count.
        let mut g = 0;
        ok(miopenSetConvolutionGroupCount(c, 4));
        ok(miopenGetConvolutionGroupCount(c, &mut g));
        assert_eq!(g, 4);
        // Attributes.
        let mut val = -5;
        ok(miopenGetConvolutionAttribute(
            c,
            MIOPEN_CONVOLUTION_ATTRIB_FP16_ALT_IMPL,
            &mut val,
        ));
        assert_eq!(val, -1);
        ok(miopenSetConvolutionAttribute(
            c,
            MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC,
            1,
        ));
        ok(miopenGetConvolutionAttribute(
            c,
            MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC,
            &mut val,
        ));
        assert_eq!(val, 1);
        ok(miopenSetConvolutionAttribute(
            c,
            MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE,
            miopenMathDefault.0,
        ));
        ok(miopenGetConvolutionAttribute(
            c,
            MIOPEN_CONVOLUTION_ATTRIB_MATH_TYPE,
            &mut val,
        ));
        assert_eq!(val, 0);
        assert_eq!(
            miopenSetConvolutionAttribute(c, MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC, 2),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenSetConvolutionAttribute(c, miopenConvolutionAttrib_t(7), 0),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenGetConvolutionAttribute(c, miopenConvolutionAttrib_t(-1), &mut val),
            miopenStatusBadParm
        );
        // Find mode.
        let mut fm = miopenConvolutionFindMode_t(0);
        ok(miopenGetConvolutionFindMode(c, &mut fm));
        assert_eq!(fm, miopenConvolutionFindModeDynamicHybrid);
        ok(miopenSetConvolutionFindMode(
            c,
            miopenConvolutionFindModeNormal,
        ));
        ok(miopenGetConvolutionFindMode(c, &mut fm));
        assert_eq!(fm, miopenConvolutionFindModeNormal);
        assert_eq!(
            miopenSetConvolutionFindMode(c, miopenConvolutionFindMode_t(4)),
            miopenStatusBadParm
        );
        // Init resets the group count.
        ok(miopenInitConvolutionDescriptor(
            c,
            miopenConvolution,
            0,
            0,
            1,
            1,
            1,
            1,
        ));
        ok(miopenGetConvolutionGroupCount(c, &mut g));
        assert_eq!(g, 1);
        ok(miopenDestroyConvolutionDescriptor(c));
    }
}

#[test]
fn forward_output_dims() {
    unsafe {
        let x = TensorDesc::packed(DType::F32, &[2, 3, 8, 8]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[4, 3, 3, 3]).unwrap();
        let (xd, wd) = (tensor(&x), tensor(&w));
        let cd = conv_desc(
            &ConvDesc::uniform(2, 1, 2, 1).unwrap(),
            miopenConvolution,
            &[],
        );
        let mut v = [0i32; 4];
        let q = v.as_mut_ptr();
        let (n, c, hh, ww) = (q, q.add(1), q.add(2), q.add(3));
        ok(miopenGetConvolutionForwardOutputDim(
            cd, xd, wd, n, c, hh, ww,
        ));
        assert_eq!(v, [2, 4, 4, 4]);
        assert_eq!(
            miopenGetConvolutionForwardOutputDim(cd, xd, wd, null_mut(), c, hh, ww),
            miopenStatusBadParm
        );
        ok(miopenSetConvolutionGroupCount(cd, 2));
        assert_eq!(
            miopenGetConvolutionForwardOutputDim(cd, xd, wd, n, c, hh, ww),
            miopenStatusBadParm
        );
    }
}

#[test]
fn invalid_calls_return_miopen_statuses() {
    unsafe {
        let h = handle();
        let x = TensorDesc::packed(DType::F32, &[1, 4, 8, 8]).unwrap();
        let w = TensorDesc::packed(DType::F32, &[4, 4, 3, 3]).unwrap();
        let y = TensorDesc::packed(DType::F32, &[1, 4, 8, 8]).unwrap();
        let (xd, wd, yd) = (tensor(&x), tensor(&w), tensor(&y));
        let cd = conv_desc(
            &ConvDesc::uniform(2, 1, 1, 1).unwrap(),
            miopenConvolution,
            &[],
        );
        let xb = vec![0.5f32; 256];
        let wb = vec![0.25f32; 144];
        let mut yb = vec![0f32; 256];
        let (xp, wp, yp) = (
            xb.as_ptr() as *const c_void,
            wb.as_ptr() as *const c_void,
            yb.as_mut_ptr() as *mut c_void,
        );
        let (one, zero) = (1.0f32, 0.0f32);
        let (a, b) = (
            &one as *const f32 as *const c_void,
            &zero as *const f32 as *const c_void,
        );
        let mut ws_size = 0;
        ok(miopenConvolutionForwardGetWorkSpaceSize(
            h,
            wd,
            xd,
            cd,
            yd,
            &mut ws_size,
        ));
        assert!(ws_size > 0);
        let mut ws = vec![0u64; ws_size / 8 + 1];
        let wsp = ws.as_mut_ptr() as *mut c_void;
        // The legacy call works without Find; NULL workspace pointers fall back to scratch.
        ok(miopenConvolutionForward(
            h,
            a,
            xd,
            xp,
            wd,
            wp,
            cd,
            miopenConvFwdAlgorithm_t(3),
            b,
            yd,
            yp,
            wsp,
            ws_size,
        ));
        assert_eq!(yb[9], 0.5 * 0.25 * 36.0);
        ok(miopenConvolutionForward(
            h,
            a,
            xd,
            xp,
            wd,
            wp,
            cd,
            miopenConvolutionFwdAlgoGEMM,
            b,
            yd,
            yp,
            null_mut(),
            ws_size,
        ));
        // Too-small workspace, NULL buffers and scalars.
        assert_eq!(
            miopenConvolutionForward(
                h,
                a,
                xd,
                xp,
                wd,
                wp,
                cd,
                miopenConvolutionFwdAlgoGEMM,
                b,
                yd,
                yp,
                wsp,
                0
            ),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenConvolutionForward(
                h,
                a,
                xd,
                null(),
                wd,
                wp,
                cd,
                miopenConvolutionFwdAlgoGEMM,
                b,
                yd,
                yp,
                wsp,
                ws_size
            ),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenConvolutionForward(
                h,
                null(),
                xd,
                xp,
                wd,
                wp,
                cd,
                miopenConvolutionFwdAlgoGEMM,
                b,
                yd,
                yp,
                wsp,
                ws_size
            ),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenConvolutionForward(
                null_mut(),
                a,
                xd,
                xp,
                wd,
                wp,
                cd,
                miopenConvolutionFwdAlgoGEMM,
                b,
                yd,
                yp,
                wsp,
                ws_size
            ),
            miopenStatusBadParm
        );
        // Mismatched shapes and types.
        let bad_y = tensor(&TensorDesc::packed(DType::F32, &[1, 4, 7, 8]).unwrap());
        assert_eq!(
            miopenConvolutionForward(
                h,
                a,
                xd,
                xp,
                wd,
                wp,
                cd,
                miopenConvolutionFwdAlgoGEMM,
                b,
                bad_y,
                yp,
                wsp,
                ws_size
            ),
            miopenStatusBadParm
        );
        let half_y = tensor(&TensorDesc::packed(DType::F16, &[1, 4, 8, 8]).unwrap());
        assert_eq!(
            miopenConvolutionForward(
                h,
                a,
                xd,
                xp,
                wd,
                wp,
                cd,
                miopenConvolutionFwdAlgoGEMM,
                b,
                half_y,
                yp,
                wsp,
                ws_size
            ),
            miopenStatusBadParm
        );
        let mut int8 = null_mut();
        ok(miopenCreateTensorDescriptor(&mut int8));
        ok(miopenSet4dTensorDescriptor(int8, miopenInt8, 1, 4, 8, 8));
        let mut sz = 0;
        assert_eq!(
            miopenConvolutionForwardGetWorkSpaceSize(h, int8, int8, cd, int8, &mut sz),
            miopenStatusNotImplemented
        );
        ok(miopenSetConvolutionGroupCount(cd, 3));
        assert_eq!(
            miopenConvolutionForwardGetWorkSpaceSize(h, wd, xd, cd, yd, &mut sz),
            miopenStatusBadParm
        );
        ok(miopenSetConvolutionGroupCount(cd, 0));
        assert_eq!(
            miopenConvolutionForwardGetWorkSpaceSize(h, wd, xd, cd, yd, &mut sz),
            miopenStatusBadParm
        );
        ok(miopenSetConvolutionGroupCount(cd, 1));
        // Find argument checks.
        let mut perf = miopenConvAlgoPerf_t {
            algo: 0,
            time: 0.0,
            memory: 0,
        };
        let mut n = 7;
        assert_eq!(
            miopenFindConvolutionForwardAlgorithm(
                h, xd, xp, wd, wp, cd, yd, yp, 0, &mut n, &mut perf, wsp, ws_size, false
            ),
            miopenStatusBadParm
        );
        assert_eq!(n, 0);
        assert_eq!(
            miopenFindConvolutionForwardAlgorithm(
                h,
                xd,
                xp,
                wd,
                wp,
                cd,
                yd,
                yp,
                1,
                null_mut(),
                &mut perf,
                wsp,
                ws_size,
                false
            ),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenFindConvolutionForwardAlgorithm(
                h,
                xd,
                xp,
                wd,
                wp,
                cd,
                yd,
                yp,
                1,
                &mut n,
                null_mut(),
                wsp,
                ws_size,
                false
            ),
            miopenStatusBadParm
        );
        // Find without a workspace still succeeds and reports what it used.
        ok(miopenFindConvolutionForwardAlgorithm(
            h,
            xd,
            xp,
            wd,
            wp,
            cd,
            yd,
            yp,
            4,
            &mut n,
            &mut perf,
            null_mut(),
            0,
            true,
        ));
        assert_eq!(n, 1);
        assert!(perf.memory > 0);
        // Immediate: id 0 is invalid, other ids are accepted.
        assert_eq!(
            miopenConvolutionForwardImmediate(h, wd, wp, xd, xp, cd, yd, yp, wsp, ws_size, 0),
            miopenStatusBadParm
        );
        ok(miopenConvolutionForwardImmediate(
            h, wd, wp, xd, xp, cd, yd, yp, wsp, ws_size, 85,
        ));
        let mut cnt = 9;
        ok(miopenConvolutionForwardGetSolution(
            h,
            wd,
            xd,
            cd,
            yd,
            0,
            &mut cnt,
            null_mut(),
        ));
        assert_eq!(cnt, 0);
        ok(miopenConvolutionForwardGetSolution(
            h,
            wd,
            xd,
            cd,
            yd,
            4,
            null_mut(),
            null_mut(),
        ));
        let mut sws = 0;
        assert_eq!(
            miopenConvolutionForwardGetSolutionWorkspaceSize(h, wd, xd, cd, yd, 0, &mut sws),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenConvolutionForwardCompileSolution(h, wd, xd, cd, yd, 0),
            miopenStatusBadParm
        );
        for d in [xd, wd, yd, bad_y, half_y, int8] {
            ok(miopenDestroyTensorDescriptor(d));
        }
        ok(miopenDestroyConvolutionDescriptor(cd));
        ok(miopenDestroy(h));
    }
}

#[test]
fn bias_calls() {
    unsafe {
        let h = handle();
        let y = TensorDesc::packed_channels_last(DType::F32, &[2, 3, 2, 2]).unwrap();
        let yd = tensor(&y);
        let mut bd = null_mut();
        ok(miopenCreateTensorDescriptor(&mut bd));
        ok(miopenSet4dTensorDescriptor(bd, miopenFloat, 1, 3, 1, 1));
        let packed: Vec<f64> = (0..24).map(|i| i as f64).collect();
        let mut yb: Vec<f32> = buffer(&y, &packed);
        let bias = [10.0f32, 20.0, 30.0];
        let (one, zero, two) = (1.0f32, 0.0f32, 2.0f32);
        let p = |v: &f32| v as *const f32 as *const c_void;
        ok(miopenConvolutionForwardBias(
            h,
            p(&one),
            bd,
            bias.as_ptr() as *const c_void,
            p(&zero),
            yd,
            yb.as_mut_ptr() as *mut c_void,
        ));
        let got = to_packed_f64(&y, &yb).unwrap();
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g, packed[i] + [10.0, 20.0, 30.0][(i / 4) % 3]);
        }
        // y = 2·y + 2·b + 0·y
        ok(miopenConvolutionForwardBias(
            h,
            p(&two),
            bd,
            bias.as_ptr() as *const c_void,
            p(&zero),
            yd,
            yb.as_mut_ptr() as *mut c_void,
        ));
        let got2 = to_packed_f64(&y, &yb).unwrap();
        for (i, g) in got2.iter().enumerate() {
            assert_eq!(*g, 2.0 * got[i] + 2.0 * [10.0, 20.0, 30.0][(i / 4) % 3]);
        }
        let mut db = [0f32; 3];
        ok(miopenConvolutionBackwardBias(
            h,
            p(&one),
            yd,
            yb.as_ptr() as *const c_void,
            p(&zero),
            bd,
            db.as_mut_ptr() as *mut c_void,
        ));
        for (k, &got) in db.iter().enumerate() {
            let want: f64 = (0..24).filter(|i| (i / 4) % 3 == k).map(|i| got2[i]).sum();
            assert_eq!(got as f64, want);
        }
        // Mismatched bias.
        ok(miopenSet4dTensorDescriptor(bd, miopenFloat, 1, 4, 1, 1));
        assert_eq!(
            miopenConvolutionBackwardBias(
                h,
                p(&one),
                yd,
                yb.as_ptr() as *const c_void,
                p(&zero),
                bd,
                db.as_mut_ptr() as *mut c_void
            ),
            miopenStatusBadParm
        );
        assert_eq!(
            miopenConvolutionBackwardBias(
                h,
                p(&one),
                yd,
                null(),
                p(&zero),
                bd,
                db.as_mut_ptr() as *mut c_void
            ),
            miopenStatusBadParm
        );
        ok(miopenDestroyTensorDescriptor(bd));
        ok(miopenDestroyTensorDescriptor(yd));
        ok(miopenDestroy(h));
    }
}

#[test]
fn version_and_backend_selection() {
    unsafe {
        let (mut a, mut b, mut c) = (0usize, 0usize, 0usize);
        ok(miopenGetVersion(&mut a, &mut b, &mut c));
        assert_eq!((a, b, c), (3, 2, 0));
        ok(miopenGetVersion(null_mut(), null_mut(), null_mut()));
        // Environment changes stay inside this test; no other test reads these variables.
        std::env::set_var("HIPCONV_MIOPEN_VERSION", "3.3.0");
        ok(miopenGetVersion(&mut a, &mut b, &mut c));
        assert_eq!((a, b, c), (3, 3, 0));
        std::env::remove_var("HIPCONV_MIOPEN_VERSION");
    }
    assert!(select_backend().is_ok());
}
