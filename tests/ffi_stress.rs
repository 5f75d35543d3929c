//! Random sequences of C ABI calls (a stable stand-in for the cargo-fuzz target
//! `fuzz/fuzz_targets/abi_sequence.rs`): 20 000 steps from fixed seeds. No call may crash,
//! return an unknown status, or panic inside the library (panics would be caught at the
//! boundary, so a panic hook counts them).

#[path = "support/abi_driver.rs"]
mod abi_driver;

use abi_driver::{Bytes, Driver, SplitMix};
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            prev(info);
        }));
    });
}

#[test]
fn twenty_thousand_random_calls() {
    count_panics();
    for seed in [1u64, 2, 3, 4] {
        let mut src = SplitMix(seed);
        let mut driver = Driver::default();
        for _ in 0..5_000 {
            driver.step(&mut src);
        }
        assert!(driver.calls > 5_000, "seed {seed}: {} calls", driver.calls);
        assert!(
            driver.successes > 2_000,
            "seed {seed}: {} successes",
            driver.successes
        );
        driver.finish();
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the library panicked");
}

#[test]
fn short_and_empty_byte_streams() {
    count_panics();
    for data in [
        &[][..],
        &[0xff; 7][..],
        &[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9][..],
    ] {
        let mut src = Bytes(data, 0);
        let mut driver = Driver::default();
        for _ in 0..200 {
            driver.step(&mut src);
        }
        driver.finish();
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the library panicked");
}
