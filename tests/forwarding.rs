//! Replace and preload modes, with a second copy of hipconv playing the real MIOpen.
//!
//! The "real MIOpen" is `libfake_miopen.so` (`tests/c/fake_miopen.c`): one non-convolution
//! function of its own, linked to `libhipconv_real.so`, a copy of the built library that
//! provides handles, descriptors and convolutions. The library under test is `libhipconv.so`.

#[path = "support/cc.rs"]
mod cc;

use cc::{command, compile, lib_dir, link_to, run_full, scratch, summary};
use std::path::{Path, PathBuf};

struct Setup {
    /// Holds the real library and its hipconv copy.
    real_dir: PathBuf,
    /// `libfake_miopen.so`.
    fake: PathBuf,
    /// `libhipconv_real.so`.
    copy: PathBuf,
    /// The library under test.
    main: PathBuf,
    /// Scratch directory for the clients.
    dir: PathBuf,
}

fn setup(tag: &str) -> Setup {
    let dir = scratch(&format!("forwarding-{tag}"));
    let real_dir = dir.join("real");
    std::fs::create_dir_all(&real_dir).unwrap();
    let main = lib_dir().join("libhipconv.so");
    let copy = real_dir.join("libhipconv_real.so");
    std::fs::copy(&main, &copy).unwrap();
    let fake = real_dir.join("libfake_miopen.so");
    compile(
        "fake_miopen",
        &fake,
        true,
        &link_to(&real_dir, "libhipconv_real.so"),
    );
    Setup {
        real_dir,
        fake,
        copy,
        main,
        dir,
    }
}

/// A client linked to the library under test.
fn client_on_main(s: &Setup, source: &str) -> PathBuf {
    let out = s.dir.join(format!("{source}-main"));
    let mut link = link_to(s.main.parent().unwrap(), "libhipconv.so");
    link.extend(["-lm".to_string(), "-ldl".to_string()]);
    compile(source, &out, false, &link);
    out
}

/// A client linked to the real library (for preloading the library under test).
fn client_on_real(s: &Setup, source: &str) -> PathBuf {
    let out = s.dir.join(format!("{source}-real"));
    let mut link = link_to(&s.real_dir, "libfake_miopen.so");
    link.extend(link_to(&s.real_dir, "libhipconv_real.so"));
    link.extend(["-lm".to_string(), "-ldl".to_string()]);
    compile(source, &out, false, &link);
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a forwarding client with `HIPCONV_LOG=1`; returns stdout and asserts what hipconv
/// logged about its mode.
fn run_logged(cmd: &mut std::process::Command, expect_log: Option<&str>) -> String {
    let (out, err) = run_full(cmd.env("HIPCONV_LOG", "1"));
    match expect_log {
        Some(text) => assert!(err.contains(text), "expected {text:?} in stderr:\n{err}"),
        None => assert!(
            !err.contains("forwarding to"),
            "unexpected forwarding:\n{err}"
        ),
    }
    out
}

#[test]
fn standalone_stubs_the_functions_hipconv_lacks() {
    let s = setup("standalone");
    let exe = client_on_main(&s, "forward_client");
    let out = run_logged(command(&exe).arg("standalone"), None);
    assert!(out.contains("routing ok (standalone)"), "{out}");
}

#[test]
fn replace_mode_forwards_objects_and_other_functions() {
    let s = setup("replace");
    let forwarding = format!(
        "forwarding to {}; convolutions run in hipconv",
        path(&s.fake)
    );
    let exe = client_on_main(&s, "forward_client");
    let out = run_logged(
        command(&exe)
            .args(["forwarded", path(&s.copy)])
            .env("HIPCONV_REAL_MIOPEN", &s.fake)
            .env("HIPCONV_BACKEND", "cpu"),
        Some(&forwarding),
    );
    assert!(out.contains("routing ok (forwarded)"), "{out}");
    // Every convolution case, computed by hipconv on the real library's descriptors…
    let conv = client_on_main(&s, "conv_client");
    let out = run_logged(
        command(&conv)
            .env("HIPCONV_REAL_MIOPEN", &s.fake)
            .env("HIPCONV_BACKEND", "cpu"),
        Some(&forwarding),
    );
    assert_eq!(summary(&out), (17 * 6 + 1, 0), "{out}");
    // …and passed through to the real library (HIPCONV_BACKEND=auto).
    let out = run_logged(
        command(&conv).env("HIPCONV_REAL_MIOPEN", &s.fake),
        Some("convolutions run in the real MIOpen"),
    );
    assert_eq!(summary(&out), (17 * 6 + 1, 0), "{out}");
}

#[test]
fn replace_mode_ignores_unusable_targets() {
    let s = setup("self");
    let exe = client_on_main(&s, "forward_client");
    // hipconv itself.
    let out = run_logged(
        command(&exe)
            .arg("standalone")
            .env("HIPCONV_REAL_MIOPEN", &s.main)
            .env("HIPCONV_BACKEND", "cpu"),
        None,
    );
    assert!(out.contains("routing ok (standalone)"), "{out}");
    // A missing file.
    let out = run_logged(
        command(&exe)
            .arg("standalone")
            .env("HIPCONV_REAL_MIOPEN", "/nonexistent/libMIOpen.so"),
        Some("cannot open HIPCONV_REAL_MIOPEN"),
    );
    assert!(out.contains("routing ok (standalone)"), "{out}");
}

#[test]
fn preload_mode_interposes_in_front_of_the_real_library() {
    let s = setup("preload");
    let forwarding = "forwarding to the next MIOpen in the search order (RTLD_NEXT); convolutions run in hipconv";
    let exe = client_on_real(&s, "forward_client");
    let out = run_logged(
        command(&exe)
            .args(["forwarded", path(&s.copy)])
            .env("LD_PRELOAD", &s.main)
            .env("HIPCONV_BACKEND", "cpu"),
        Some(forwarding),
    );
    assert!(out.contains("routing ok (forwarded)"), "{out}");
    let conv = client_on_real(&s, "conv_client");
    let out = run_logged(
        command(&conv)
            .env("LD_PRELOAD", &s.main)
            .env("HIPCONV_BACKEND", "cpu"),
        Some(forwarding),
    );
    assert_eq!(summary(&out), (17 * 6 + 1, 0), "{out}");
}

#[test]
fn installed_layout_finds_the_original_next_to_hipconv() {
    // hipconv installed as libMIOpen.so, the original renamed beside it.
    let s = setup("installed");
    let lib = s.dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(&s.main, lib.join("libMIOpen.so")).unwrap();
    let original = lib.join("libMIOpen.hipconv-orig.so");
    std::fs::copy(&s.fake, &original).unwrap();
    let exe = s.dir.join("forward_client-installed");
    let mut link = link_to(&lib, "libMIOpen.so");
    link.extend(["-lm".to_string(), "-ldl".to_string()]);
    compile("forward_client", &exe, false, &link);
    let forwarding = format!("forwarding to {}", path(&original));
    let out = run_logged(
        command(&exe)
            .args(["forwarded", path(&s.copy)])
            .env("HIPCONV_BACKEND", "cpu"),
        Some(&forwarding),
    );
    assert!(out.contains("routing ok (forwarded)"), "{out}");
}
