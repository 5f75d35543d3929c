//! Building and running the C programs of `tests/c/` against the built `libhipconv.so`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding the `libhipconv.so` built with this test: cargo leaves the library it
/// builds for integration tests in `deps/`, next to the test executable (the copy in the
/// profile directory above is only refreshed by `cargo build`).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        if dir.join("libhipconv.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "no libhipconv.so next to {}; build the library first",
        exe.display()
    );
}

/// True when `tool --version` runs.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A scratch directory for this test binary.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `tests/c/<source>.c` to `out` with the header on the include path; `link` are the
/// trailing linker arguments.
pub fn compile(source: &str, out: &Path, shared: bool, link: &[String]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"]);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    } else {
        cmd.arg("-Wpedantic");
    }
    let status = cmd
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c").join(format!("{source}.c")))
        .arg("-o")
        .arg(out)
        .args(link)
        .status()
        .expect("run cc");
    assert!(status.success(), "compiling {source}.c failed");
}

/// Linker arguments for a library `file` in `dir` (by file name, with an rpath).
pub fn link_to(dir: &Path, file: &str) -> Vec<String> {
    vec![
        format!("-L{}", dir.display()),
        format!("-l:{file}"),
        format!("-Wl,-rpath,{}", dir.display()),
    ]
}

/// A command for `program` with hipconv's environment variables cleared (set them afterwards).
/// `LD_LIBRARY_PATH` is cleared too: cargo points it at the profile directory, whose copy of the
/// library may be older than the one the clients are linked to (found through their RUNPATH).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "LD_LIBRARY_PATH",
        "HIPCONV_BACKEND",
        "HIPCONV_MIOPEN_VERSION",
        "HIPCONV_REAL_MIOPEN",
        "HIPCONV_LOG",
        "LD_PRELOAD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd`, asserts success and returns (stdout, stderr).
pub fn run_full(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// Runs `cmd`, asserts success and returns stdout.
pub fn run(cmd: &mut Command) -> String {
    run_full(cmd).0
}

/// The (passed, failed) counts of a "N passed, M failed" last line.
pub fn summary(stdout: &str) -> (usize, usize) {
    let line = stdout.lines().last().unwrap_or_default();
    let mut it = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let passed = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let failed = it.next().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    (passed, failed)
}
