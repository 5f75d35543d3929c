//! C clients against the shipped header and the built `libhipconv.so`: compiled with `cc`,
//! linked like any program that uses MIOpen, run natively and (when installed) under valgrind.

#[path = "support/cc.rs"]
mod cc;

use cc::{command, compile, have, lib_dir, link_to, run, scratch, summary};
use std::path::PathBuf;
use std::process::Command;

/// 17 cases × 3 directions × 2 paths, plus the error-path checks.
const EXPECTED_PASSES: usize = 17 * 6 + 1;

fn build_client(tag: &str) -> PathBuf {
    let out = scratch("c_abi").join(format!("conv_client-{tag}"));
    let mut link = link_to(&lib_dir(), "libhipconv.so");
    link.push("-lm".into());
    compile("conv_client", &out, false, &link);
    out
}

#[test]
fn c_client_runs_every_direction_through_find_and_immediate() {
    let exe = build_client("native");
    // The program records MIOpen's version requirement, as programs linked to MIOpen do.
    if have("objdump") {
        let p = Command::new("objdump")
            .arg("-p")
            .arg(&exe)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&p.stdout);
        assert!(
            text.contains("MIOPEN_HIP_1"),
            "no MIOPEN_HIP_1 version need:\n{text}"
        );
    }
    // The client's buffers are host memory: the CPU backend, also on machines with a GPU.
    let stdout = run(command(&exe).env("HIPCONV_BACKEND", "cpu"));
    assert_eq!(summary(&stdout), (EXPECTED_PASSES, 0), "{stdout}");
}

#[test]
fn c_client_is_clean_under_valgrind() {
    if !have("valgrind") {
        eprintln!("valgrind is not installed: skipping");
        return;
    }
    let exe = build_client("valgrind");
    let stdout = run(command("valgrind")
        .args(["--error-exitcode=1", "--leak-check=no", "--quiet"])
        .arg(&exe)
        .env("HIPCONV_BACKEND", "cpu")
        .env("RAYON_NUM_THREADS", "2"));
    assert_eq!(summary(&stdout), (EXPECTED_PASSES, 0), "{stdout}");
}
