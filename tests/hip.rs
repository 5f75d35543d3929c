//! The HIP backend. Everywhere: without an AMD GPU (or without ROCm) opening a device is an
//! error, never a panic, and `doctor_lines` still describes the platform. On an AMD GPU: every
//! direction and dtype matches the f64 reference with poisoned guard bands intact, and the
//! workspace cache hands a freed block back out. Skips, saying why, when no device opens.

mod common;
use common::*;
use half::{bf16, f16};
use hipconv::backend::Backend;
use hipconv::backend::hip::{HipBackend, HipDevice, doctor_lines};
use hipconv::exec::{Buffers, execute};
use hipconv::host::{max_rel_error, to_packed_f64};
use hipconv::plan::{ConvPlan, PlanOptions};
use hipconv::verify::operands;
use hipconv::{ConvProblem, DType, Direction, Element, Error, reference};

fn device() -> Option<&'static HipDevice> {
    match HipDevice::get(0) {
        Ok(d) => {
            eprintln!(
                "hip device 0: {} ({}), kernels {} <- {}",
                d.name(),
                d.arch_report().describe(),
                d.code_object().arch,
                d.code_object().compiled_for
            );
            Some(d)
        }
        Err(e) => {
            eprintln!("hip tests skipped: {e}");
            None
        }
    }
}

#[test]
fn opening_without_a_device_is_an_error() {
    let lines = doctor_lines();
    for (ok, l) in &lines {
        eprintln!("  {} {l}", if *ok { "✓" } else { "✗" });
    }
    assert!(lines.iter().any(|(_, l)| l.starts_with("HIP runtime")));
    if let Err(e) = HipDevice::get(0) {
        assert!(
            matches!(
                e,
                Error::LibraryNotFound { .. }
                    | Error::Runtime { .. }
                    | Error::BadParm { .. }
                    | Error::NoKernelForArch { .. }
            ),
            "{e}"
        );
        // asking again gives the same kind of answer (no half-initialised state)
        assert!(HipDevice::get(0).is_err());
    }
    assert!(HipDevice::get(i32::MAX).is_err());
}

/// Runs `dir` of `p` on the device and returns the max relative error against the reference.
fn run<T: Element>(
    dev: &'static HipDevice,
    p: &ConvProblem,
    dir: Direction,
    budget: usize,
    seed: u64,
) -> f64 {
    let mut rng = Rng::new(seed);
    let (ad, bd, od) = operands(p, dir);
    let a = round_to(p.dtype(), &random_packed(ad, &mut rng));
    let b = round_to(p.dtype(), &random_packed(bd, &mut rng));
    let size = T::DTYPE.size();
    let (ha, hb) = (guarded::<T>(ad, &a), guarded::<T>(bd, &b));
    let ho = vec![poison::<T>(); od.element_space().unwrap() + 2 * GUARD];
    let (da, db, dout) = (
        dev.alloc(ha.len() * size).unwrap(),
        dev.alloc(hb.len() * size).unwrap(),
        dev.alloc(ho.len() * size).unwrap(),
    );
    da.upload(&ha).unwrap();
    db.upload(&hb).unwrap();
    dout.upload(&ho).unwrap();
    let plan = ConvPlan::with_options(p, dir, PlanOptions::gpu(budget)).unwrap();
    let ws = dev
        .workspace(plan.workspace_bytes(), std::ptr::null_mut())
        .unwrap();
    let at = |buf: &hipconv::backend::hip::DeviceBuffer| buf.addr() + (GUARD * size) as u64;
    let (x, w, y) = match dir {
        Direction::Forward => (at(&da), at(&db), at(&dout)),
        Direction::BackwardData => (at(&dout), at(&db), at(&da)),
        Direction::BackwardWeights => (at(&da), at(&dout), at(&db)),
    };
    let backend = HipBackend::new(dev, std::ptr::null_mut());
    // SAFETY: every buffer was allocated on this device for its descriptor's extent (inside its
    // guard bands) and the workspace for the plan.
    unsafe {
        execute(
            &backend,
            &plan,
            Buffers {
                x,
                w,
                y,
                workspace: ws.addr(),
            },
            1.0,
            0.0,
        )
        .unwrap()
    };
    backend.synchronize().unwrap();
    drop(ws);
    let mut back = ho.clone();
    dout.download(&mut back).unwrap();
    assert_guards_intact(od, &back, &format!("{} {}", p.summary(), dir.name()));
    let got = to_packed_f64(od, &back[GUARD..back.len() - GUARD]).unwrap();
    let want = match dir {
        Direction::Forward => reference::forward(p, &a, &b),
        Direction::BackwardData => reference::backward_data(p, &a, &b),
        Direction::BackwardWeights => reference::backward_weights(p, &a, &b),
    };
    max_rel_error(&got, &want, 1e-6)
}

#[test]
fn every_direction_and_dtype_matches_the_reference() {
    let Some(dev) = device() else { return };
    for dtype in DType::ALL {
        let cases = [
            problem(
                dtype,
                2,
                8,
                &[9, 9],
                6,
                &[3, 3],
                &[1, 1],
                &[2, 1],
                &[1, 1],
                2,
                0,
            )
            .unwrap(),
            problem(
                dtype,
                3,
                16,
                &[7, 7],
                16,
                &[1, 1],
                &[0, 0],
                &[1, 1],
                &[1, 1],
                1,
                1,
            )
            .unwrap(),
            problem(
                dtype,
                2,
                12,
                &[10, 10],
                12,
                &[3, 3],
                &[1, 1],
                &[1, 1],
                &[2, 2],
                12,
                0,
            )
            .unwrap(),
            problem(
                dtype,
                1,
                4,
                &[5, 6, 7],
                4,
                &[3, 3, 3],
                &[1, 1, 1],
                &[1, 1, 1],
                &[1, 1, 1],
                1,
                2,
            )
            .unwrap(),
        ];
        for p in &cases {
            for dir in Direction::ALL {
                for budget in [0usize, 1 << 16, 256 << 20] {
                    let err = match dtype {
                        DType::F16 => run::<f16>(dev, p, dir, budget, 7),
                        DType::BF16 => run::<bf16>(dev, p, dir, budget, 7),
                        DType::F32 => run::<f32>(dev, p, dir, budget, 7),
                        DType::F64 => run::<f64>(dev, p, dir, budget, 7),
                    };
                    assert!(
                        err <= tolerance(dtype),
                        "{} {} budget {budget}: {err}",
                        p.summary(),
                        dir.name()
                    );
                }
            }
        }
    }
}

#[test]
fn workspace_blocks_are_reused() {
    let Some(dev) = device() else { return };
    let stream = std::ptr::null_mut();
    let first = dev.workspace(100_000, stream).unwrap();
    let (addr, bytes) = (first.addr(), first.bytes());
    assert!(bytes >= 100_000);
    assert_eq!(addr % 256, 0);
    drop(first);
    let again = dev.workspace(90_000, stream).unwrap();
    assert_eq!((again.addr(), again.bytes()), (addr, bytes));
    // a second live request gets another block
    let other = dev.workspace(90_000, stream).unwrap();
    assert_ne!(other.addr(), addr);
    drop((again, other));
    dev.release_cached().unwrap();
    assert_eq!(dev.cached_workspace_bytes(), 0);
}
