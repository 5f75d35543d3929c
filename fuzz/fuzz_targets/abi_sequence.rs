//! Fuzzes random sequences of MIOpen C ABI calls: the input bytes choose the calls, the
//! objects (live, destroyed, NULL, garbage, wrong kind) and every argument. Run with
//! `cargo +nightly fuzz run abi_sequence` from the repository root. The same driver runs on
//! stable from fixed seeds in `tests/ffi_stress.rs`.

#![no_main]

#[path = "../../tests/support/abi_driver.rs"]
mod abi_driver;

use abi_driver::{Bytes, Driver};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes(data, 0);
    let mut driver = Driver::default();
    // Two bytes per choice at least; stop once the input is used up.
    while src.1 < data.len() && driver.calls < 4096 {
        driver.step(&mut src);
    }
    driver.finish();
});
