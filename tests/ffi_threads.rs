//! Independent handles used from 8 threads at once: every result matches the reference.
//! Descriptors are shared between the threads (read-only), as a caller may do.

use hipconv::ffi::*;
use hipconv::host::{max_rel_error, to_packed_f64};
use hipconv::verify::test_values;
use hipconv::{ConvDesc, ConvProblem, DType, TensorDesc, reference};
use std::ffi::c_void;
use std::ptr::null_mut;

fn ok(status: miopenStatus_t) {
    assert_eq!(status, miopenStatusSuccess);
}

/// A descriptor handle that may cross threads (the library locks descriptor state).
#[derive(Clone, Copy)]
struct Shared(usize);

fn tensor(t: &TensorDesc) -> Shared {
    let mut d = null_mut();
    let dims: Vec<i32> = t.dims().iter().map(|&v| v as i32).collect();
    let strides: Vec<i32> = t.strides().iter().map(|&v| v as i32).collect();
    unsafe {
        ok(miopenCreateTensorDescriptor(&mut d));
        ok(miopenSetTensorDescriptor(
            d,
            miopenFloat,
            dims.len() as i32,
            dims.as_ptr(),
            strides.as_ptr(),
        ));
    }
    Shared(d as usize)
}

struct Case {
    problem: ConvProblem,
    x: Shared,
    w: Shared,
    y: Shared,
    conv: Shared,
}

fn case(x: &[usize], w: &[usize], pad: usize, stride: usize, groups: usize) -> Case {
    let conv = ConvDesc::uniform(2, pad, stride, 1)
        .unwrap()
        .with_groups(groups)
        .unwrap();
    let xd = TensorDesc::packed(DType::F32, x).unwrap();
    let wd = TensorDesc::packed(DType::F32, w).unwrap();
    let problem = ConvProblem::forward_packed(xd, wd, conv).unwrap();
    let mut c = null_mut();
    unsafe {
        ok(miopenCreateConvolutionDescriptor(&mut c));
        ok(miopenInitConvolutionDescriptor(
            c,
            miopenConvolution,
            pad as i32,
            pad as i32,
            stride as i32,
            stride as i32,
            1,
            1,
        ));
        ok(miopenSetConvolutionGroupCount(c, groups as i32));
    }
    Case {
        x: tensor(problem.x()),
        w: tensor(problem.w()),
        y: tensor(problem.y()),
        conv: Shared(c as usize),
        problem,
    }
}

/// Runs the three directions of `c` on handle `h` (legacy path, no Find) and checks them.
fn run(h: miopenHandle_t, c: &Case, seed: u64) {
    let p = &c.problem;
    let (xd, wd, yd) = (
        c.x.0 as miopenTensorDescriptor_t,
        c.w.0 as miopenTensorDescriptor_t,
        c.y.0 as miopenTensorDescriptor_t,
    );
    let cd = c.conv.0 as miopenConvolutionDescriptor_t;
    let as32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let vx = test_values(p.x().element_count(), seed);
    let vw = test_values(p.w().element_count(), seed + 1);
    let vy = test_values(p.y().element_count(), seed + 2);
    let (x, w, dy) = (as32(&vx), as32(&vw), as32(&vy));
    let mut y = vec![0f32; vy.len()];
    let mut dx = vec![0f32; vx.len()];
    let mut dw = vec![0f32; vw.len()];
    let (one, zero) = (1.0f32, 0.0f32);
    let (a, b) = (
        &one as *const f32 as *const c_void,
        &zero as *const f32 as *const c_void,
    );
    let cp = |v: &Vec<f32>| v.as_ptr() as *const c_void;
    unsafe {
        let mut sizes = [0usize; 3];
        ok(miopenConvolutionForwardGetWorkSpaceSize(
            h,
            wd,
            xd,
            cd,
            yd,
            &mut sizes[0],
        ));
        ok(miopenConvolutionBackwardDataGetWorkSpaceSize(
            h,
            yd,
            wd,
            cd,
            xd,
            &mut sizes[1],
        ));
        ok(miopenConvolutionBackwardWeightsGetWorkSpaceSize(
            h,
            yd,
            xd,
            cd,
            wd,
            &mut sizes[2],
        ));
        let size = *sizes.iter().max().unwrap();
        let mut ws = vec![0u64; size.div_ceil(8)];
        let wsp = ws.as_mut_ptr() as *mut c_void;
        ok(miopenConvolutionForward(
            h,
            a,
            xd,
            cp(&x),
            wd,
            cp(&w),
            cd,
            miopenConvolutionFwdAlgoGEMM,
            b,
            yd,
            y.as_mut_ptr() as *mut c_void,
            wsp,
            size,
        ));
        ok(miopenConvolutionBackwardData(
            h,
            a,
            yd,
            cp(&dy),
            wd,
            cp(&w),
            cd,
            miopenConvolutionBwdDataAlgoGEMM,
            b,
            xd,
            dx.as_mut_ptr() as *mut c_void,
            wsp,
            size,
        ));
        ok(miopenConvolutionBackwardWeights(
            h,
            a,
            yd,
            cp(&dy),
            xd,
            cp(&x),
            cd,
            miopenConvolutionBwdWeightsAlgoGEMM,
            b,
            wd,
            dw.as_mut_ptr() as *mut c_void,
            wsp,
            size,
        ));
    }
    let check = |got: &[f32], d: &TensorDesc, want: Vec<f64>| {
        let got = to_packed_f64(d, got).unwrap();
        let err = max_rel_error(&got, &want, 1e-3);
        assert!(err < 2e-5, "{} err {err}", p.summary());
    };
    check(&y, p.y(), reference::forward(p, &vx, &vw));
    check(&dx, p.x(), reference::backward_data(p, &vy, &vw));
    check(&dw, p.w(), reference::backward_weights(p, &vx, &vy));
}

#[test]
fn eight_threads_with_their_own_handles() {
    let cases = vec![
        case(&[2, 4, 12, 12], &[8, 4, 3, 3], 1, 1, 1),
        case(&[1, 6, 15, 13], &[6, 2, 3, 3], 1, 2, 3),
        case(&[3, 8, 9, 9], &[4, 8, 1, 1], 0, 1, 1),
        case(&[2, 4, 10, 10], &[4, 1, 5, 5], 2, 1, 4),
    ];
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let cases = &cases;
            s.spawn(move || {
                let mut h = null_mut();
                unsafe { ok(miopenCreate(&mut h)) };
                for i in 0..6u64 {
                    let c = &cases[((t + i) % cases.len() as u64) as usize];
                    run(h, c, t * 100 + i * 7);
                    // Streams change between calls, as PyTorch does before every operation.
                    unsafe {
                        ok(miopenSetStream(
                            h,
                            (t as usize * 16 + 16) as miopenAcceleratorQueue_t,
                        ))
                    };
                }
                unsafe { ok(miopenDestroy(h)) };
            });
        }
    });
    for c in cases {
        unsafe {
            for d in [c.x, c.w, c.y] {
                ok(miopenDestroyTensorDescriptor(
                    d.0 as miopenTensorDescriptor_t,
                ));
            }
            ok(miopenDestroyConvolutionDescriptor(
                c.conv.0 as miopenConvolutionDescriptor_t,
            ));
        }
    }
}

#[test]
fn concurrent_create_and_destroy() {
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    let (mut h, mut t, mut c) = (null_mut(), null_mut(), null_mut());
                    unsafe {
                        ok(miopenCreate(&mut h));
                        ok(miopenCreateTensorDescriptor(&mut t));
                        ok(miopenCreateConvolutionDescriptor(&mut c));
                        ok(miopenSet4dTensorDescriptor(t, miopenFloat, 1, 2, 3, 4));
                        ok(miopenDestroyConvolutionDescriptor(c));
                        ok(miopenDestroyTensorDescriptor(t));
                        ok(miopenDestroy(h));
                        assert_eq!(miopenDestroy(h), miopenStatusBadParm);
                    }
                }
            });
        }
    });
}
