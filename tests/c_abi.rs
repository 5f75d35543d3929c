//! C clients against the shipped header and the built `libhipconv.so`: compiled with `cc`,
//! linked like any program that uses MIOpen, run natively and (when installed) under valgrind.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding `libhipconv.so`: the profile directory above this test's `deps/`.
/// Cargo builds the library's cdylib together with its rlib before running integration tests.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libhipconv.so").exists(),
        "{} has no libhipconv.so; build the library first (cargo build --lib)",
        dir.display()
    );
    dir
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles `tests/c/<name>.c` against `include/` and links it to the library, as `<name>-<tag>`.
fn build_client(name: &str, tag: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{tag}"));
    let lib = lib_dir();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11",
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c").join(format!("{name}.c")))
        .arg("-o")
        .arg(&out)
        .arg(format!("-L{}", lib.display()))
        .arg("-lhipconv")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lm")
        .status()
        .expect("run cc");
    assert!(status.success(), "compiling {name}.c failed");
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env_remove("HIPCONV_BACKEND")
        .env_remove("HIPCONV_MIOPEN_VERSION")
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

fn summary(stdout: &str) -> (usize, usize) {
    let line = stdout.lines().last().unwrap_or_default();
    let mut it = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let passed = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let failed = it.next().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    (passed, failed)
}

#[test]
fn c_client_runs_every_direction_through_find_and_immediate() {
    let exe = build_client("conv_client", "native");
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
    let stdout = run(&mut Command::new(&exe));
    let (passed, failed) = summary(&stdout);
    assert_eq!(failed, 0, "{stdout}");
    // 17 cases × 3 directions × 2 paths, plus the error-path checks.
    assert_eq!(passed, 17 * 6 + 1, "{stdout}");
}

#[test]
fn c_client_is_clean_under_valgrind() {
    if !have("valgrind") {
        eprintln!("valgrind is not installed: skipping");
        return;
    }
    let exe = build_client("conv_client", "valgrind");
    let stdout = run(Command::new("valgrind")
        .args(["--error-exitcode=1", "--leak-check=no", "--quiet"])
        .arg(&exe)
        .env("RAYON_NUM_THREADS", "2"));
    let (passed, failed) = summary(&stdout);
    assert_eq!(failed, 0, "{stdout}");
    assert_eq!(passed, 17 * 6 + 1, "{stdout}");
}
