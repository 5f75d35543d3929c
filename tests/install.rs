//! `hipconv run`, `env`, `install`, `uninstall` and `doctor` on stand-ins.
//!
//! The stand-in MIOpen is `tests/c/standin_miopen.c`: its handles and descriptors come from a
//! copy of hipconv it links to (`libhipconv_real.so`), its symbols are versioned
//! `MIOPEN_HIP_1` like MIOpen's, its `miopenConvolutionForward` writes a mark (-7777) instead
//! of computing, and its batch-norm inference (which hipconv only forwards) works.
//! `tests/c/run_client.c` runs one convolution and one batch norm and prints who served them.
//! A fake torch tree holds the stand-in as `lib/libMIOpen.so`.

#[path = "support/cc.rs"]
mod cc;

use cc::{command, compile, lib_dir, link_to, scratch};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HIPCONV: &str = env!("CARGO_BIN_EXE_hipconv");

struct Setup {
    dir: PathBuf,
    /// Holds the stand-in and its hipconv copy.
    real_dir: PathBuf,
    /// The stand-in MIOpen.
    standin: PathBuf,
    /// The library under test.
    main: PathBuf,
}

fn setup(tag: &str) -> Setup {
    let dir = scratch(&format!("install-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let real_dir = dir.join("real");
    std::fs::create_dir_all(&real_dir).unwrap();
    let main = lib_dir().join("libhipconv.so");
    std::fs::copy(&main, real_dir.join("libhipconv_real.so")).unwrap();
    let script = real_dir.join("miopen.map");
    std::fs::write(&script, "MIOPEN_HIP_1 { global: miopen*; local: *; };\n").unwrap();
    let standin = real_dir.join("libstandin_miopen.so");
    let mut link = link_to(&real_dir, "libhipconv_real.so");
    link.push(format!("-Wl,--version-script={}", script.display()));
    compile("standin_miopen", &standin, true, &link);
    Setup {
        dir,
        real_dir,
        standin,
        main,
    }
}

/// `hipconv ARGS` with hipconv's variables cleared and `HIPCONV_LIB` at the library under test.
fn hipconv(s: &Setup) -> Command {
    let mut cmd = command(HIPCONV);
    cmd.env("HIPCONV_LIB", &s.main).env_remove(FAIL_ENV);
    cmd
}

const FAIL_ENV: &str = "HIPCONV_TEST_FAIL_AFTER";

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd`, asserts its exit code, returns stdout + stderr.
fn expect_code(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().expect("run hipconv");
    let (o, e) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}\nstdout:\n{o}\nstderr:\n{e}"
    );
    format!("{o}{e}")
}

/// A fake torch package: `torch/__init__.py`, `torch/lib/libMIOpen.so` (the stand-in) and two
/// other files.
fn fake_torch(s: &Setup, name: &str) -> PathBuf {
    let torch = s.dir.join(name).join("torch");
    let lib = torch.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(torch.join("__init__.py"), "# not really torch\n").unwrap();
    std::fs::write(lib.join("libtorch_hip.so"), b"\x7fELF not a library").unwrap();
    std::fs::copy(&s.standin, lib.join("libMIOpen.so")).unwrap();
    std::fs::set_permissions(
        lib.join("libMIOpen.so"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    torch
}

/// Every file under `root` (relative path → mode and bytes).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(rel, (mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `run_client` linked with `link` (trailing linker arguments).
fn client(s: &Setup, name: &str, link: Vec<String>) -> PathBuf {
    let out = s.dir.join(name);
    compile("run_client", &out, false, &link);
    out
}

/// `run_client` loading `torch_lib/libMIOpen.so` at run time, whatever it is then (linked
/// against a hipconv copy, which defines every symbol the client uses).
fn torch_client(s: &Setup, name: &str, torch_lib: &Path) -> PathBuf {
    let link_dir = s.dir.join("link");
    std::fs::create_dir_all(&link_dir).unwrap();
    std::fs::copy(&s.main, link_dir.join("libMIOpen.so")).unwrap();
    let link = vec![
        format!("-L{}", link_dir.display()),
        "-l:libMIOpen.so".to_string(),
        format!("-Wl,-rpath,{}", torch_lib.display()),
    ];
    client(s, name, link)
}

/// Runs a client; returns stdout + stderr.
fn run_client(cmd: &mut Command) -> String {
    expect_code(cmd, 0)
}

#[test]
fn run_preloads_hipconv_in_front_of_the_real_miopen() {
    let s = setup("run");
    let mut link = link_to(&s.real_dir, "libstandin_miopen.so");
    link.extend(link_to(&s.real_dir, "libhipconv_real.so"));
    let exe = client(&s, "run_client", link);
    // Without hipconv, the stand-in's convolution runs.
    let out = run_client(command(&exe).env("HIPCONV_LOG", "1"));
    assert!(out.contains("served by the stand-in"), "{out}");
    assert!(!out.contains("hipconv: conv"), "{out}");
    assert!(out.contains("batch norm: served by the stand-in"), "{out}");
    // Under `hipconv run`, hipconv computes it (on the CPU: the client passes host memory),
    // and HIPCONV_LOG=1 logs the mode and the call. (An empty HIPCONV_REAL_MIOPEN keeps
    // `hipconv run` from asking Python for a torch.)
    let out = run_client(
        hipconv(&s)
            .args(["run", "--backend", "cpu", "--log", "1", "--"])
            .arg(&exe)
            .env("HIPCONV_REAL_MIOPEN", ""),
    );
    assert!(out.contains("served by hipconv"), "{out}");
    assert!(out.contains("batch norm: served by the stand-in"), "{out}");
    assert!(
        out.contains("forwarding to the next MIOpen in the search order (RTLD_NEXT)"),
        "{out}"
    );
    assert!(
        out.contains("hipconv: conv fwd N1 C1 4x4 K1 3x3 s1x1 p0x0 d1x1 g1 NCHW f32 on cpu: "),
        "{out}"
    );
    // The same through the environment, as `eval "$(hipconv env)"` leaves it.
    let out = run_client(
        hipconv(&s)
            .args(["run", "--"])
            .arg(&exe)
            .env("HIPCONV_REAL_MIOPEN", "")
            .env("HIPCONV_BACKEND", "cpu")
            .env("HIPCONV_LOG", "2"),
    );
    assert!(out.contains("served by hipconv"), "{out}");
    assert!(out.contains("hipconv: miopenConvolutionForward\n"), "{out}");
}

#[test]
fn run_serves_programs_that_load_miopen_late() {
    // Python loads torch, and torch's MIOpen, at `import torch`: after the preloaded hipconv
    // has initialised. `hipconv run` points hipconv at torch's MIOpen for that.
    let s = setup("late");
    let torch = fake_torch(&s, "site");
    let lib = torch.join("lib");
    let link_dir = s.dir.join("link");
    std::fs::create_dir_all(&link_dir).unwrap();
    std::fs::copy(&s.main, link_dir.join("libMIOpen.so")).unwrap();
    let module = s.dir.join("libclient_module.so");
    let link = vec![
        "-DRUN_CLIENT_LIBRARY".to_string(),
        format!("-L{}", link_dir.display()),
        "-l:libMIOpen.so".to_string(),
        format!("-Wl,-rpath,{}", lib.display()),
    ];
    compile("run_client", &module, true, &link);
    let loader = s.dir.join("late_loader");
    compile("late_loader", &loader, false, &["-ldl".to_string()]);

    let out = run_client(command(&loader).arg(&module).arg("run_client_main"));
    assert!(out.contains("served by the stand-in"), "{out}");
    assert!(out.contains("batch norm: served by the stand-in"), "{out}");

    let forwarding = format!(
        "hipconv: forwarding to {}; convolutions run in hipconv",
        lib.join("libMIOpen.so").display()
    );
    let out = run_client(
        hipconv(&s)
            .args(["run", "--backend", "cpu", "--log", "1", "--torch"])
            .arg(&torch)
            .arg("--")
            .arg(&loader)
            .arg(&module)
            .arg("run_client_main"),
    );
    assert!(out.contains(&forwarding), "{out}");
    assert!(out.contains("served by hipconv"), "{out}");
    assert!(out.contains("batch norm: served by the stand-in"), "{out}");

    // With hipconv also installed in that torch, the preloaded copy forwards to the original
    // kept beside it.
    expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
    let out = run_client(
        hipconv(&s)
            .args(["run", "--backend", "cpu", "--log", "1", "--torch"])
            .arg(&torch)
            .arg("--")
            .arg(&loader)
            .arg(&module)
            .arg("run_client_main"),
    );
    let original = format!(
        "hipconv: forwarding to {}; convolutions run in hipconv",
        lib.join("libMIOpen.hipconv-orig.so").display()
    );
    assert!(out.contains(&original), "{out}");
    assert!(out.contains("served by hipconv"), "{out}");
    assert!(out.contains("batch norm: served by the stand-in"), "{out}");
    expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 0);

    // `hipconv env` finds torch through Python (without importing it) and says the same.
    let python = s.dir.join("python-stand-in");
    std::fs::write(&python, format!("#!/bin/sh\necho {}\n", torch.display())).unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = hipconv(&s)
        .args(["env", "--python"])
        .arg(&python)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "export LD_PRELOAD={}\nexport HIPCONV_REAL_MIOPEN={}\n",
            s.main.display(),
            lib.join("libMIOpen.so").display()
        )
    );
}

#[test]
fn run_keeps_ld_preload_and_returns_the_exit_code() {
    let s = setup("run-env");
    let out = expect_code(
        hipconv(&s)
            .args(["run", "--", "sh", "-c", "echo \"[$LD_PRELOAD]\"; exit 7"])
            .env("LD_PRELOAD", "/nonexistent/libother.so"),
        7,
    );
    let want = format!("[{}:/nonexistent/libother.so]", s.main.display());
    assert!(out.contains(&want), "{out}");
    let out = expect_code(hipconv(&s).args(["run", "--", "/nonexistent/program"]), 127);
    assert!(out.contains("cannot run /nonexistent/program"), "{out}");
}

#[test]
fn env_prints_exports_for_eval() {
    let s = setup("env");
    // (The loader complains on stderr about the missing /x/liba.so; stdout is what counts.)
    let out = hipconv(&s)
        .arg("env")
        .env("LD_PRELOAD", "/x/liba.so")
        .env("HIPCONV_BACKEND", "cpu")
        .env("HIPCONV_REAL_MIOPEN", "")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "export LD_PRELOAD={}:/x/liba.so\nexport HIPCONV_BACKEND=cpu\n",
            s.main.display()
        )
    );
    // A shell that evaluates it gets the variable; evaluating twice adds nothing.
    let script =
        format!("eval \"$({HIPCONV} env)\"; eval \"$({HIPCONV} env)\"; echo \"[$LD_PRELOAD]\"");
    let out = expect_code(
        hipconv(&s)
            .args(["run", "--", "sh", "-c"])
            .arg(&script)
            .env("HIPCONV_REAL_MIOPEN", ""),
        0,
    );
    assert!(out.contains(&format!("[{}]", s.main.display())), "{out}");
}

#[test]
fn the_library_is_found_next_to_the_program_or_in_lib() {
    let s = setup("find-lib");
    for (exe_rel, lib_rel) in [
        ("flat/hipconv", "flat/libhipconv.so"),
        ("prefix/bin/hipconv", "prefix/lib/libhipconv.so"),
    ] {
        let exe = s.dir.join(exe_rel);
        let lib = s.dir.join(lib_rel);
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        if std::fs::hard_link(HIPCONV, &exe).is_err() {
            std::fs::copy(HIPCONV, &exe).unwrap();
        }
        std::fs::copy(&s.main, &lib).unwrap();
        let out = expect_code(
            command(&exe)
                .arg("env")
                .env_remove("HIPCONV_LIB")
                .env("HIPCONV_REAL_MIOPEN", "")
                .current_dir(&s.dir),
            0,
        );
        let lib = std::fs::canonicalize(&lib).unwrap();
        assert_eq!(out, format!("export LD_PRELOAD={}\n", lib.display()));
    }
    let out = expect_code(
        command(HIPCONV)
            .arg("env")
            .env("HIPCONV_LIB", "/nonexistent/libhipconv.so"),
        1,
    );
    assert!(
        out.contains("HIPCONV_LIB=/nonexistent/libhipconv.so is not a file"),
        "{out}"
    );
}

#[test]
fn install_then_uninstall_leaves_the_tree_byte_identical() {
    let s = setup("roundtrip");
    let torch = fake_torch(&s, "site");
    let lib = torch.join("lib");
    let before = snapshot(&torch);
    let original_sha = sha256(&lib.join("libMIOpen.so"));

    let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
    assert!(out.contains("kept the original as"), "{out}");
    assert!(
        out.contains("verified: it loads, answers miopenGetVersion (3.2.0), forwarding to"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(lib.join("libMIOpen.so")).unwrap(),
        std::fs::read(&s.main).unwrap()
    );
    assert_eq!(
        std::fs::read(lib.join("libMIOpen.hipconv-orig.so")).unwrap(),
        before[Path::new("lib/libMIOpen.so")].1
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lib.join("libMIOpen.hipconv.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["original_sha256"], original_sha.as_str());
    assert_eq!(manifest["installed_sha256"], sha256(&s.main).as_str());
    assert_eq!(manifest["hipconv_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["original_miopen_version"], "3.2.0");
    assert_eq!(
        std::fs::metadata(lib.join("libMIOpen.so"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );

    // A program linked to torch's libMIOpen.so now gets hipconv's convolution, with the
    // original serving everything else.
    let exe = torch_client(&s, "client-installed", &lib);
    let out = run_client(
        command(&exe)
            .env("HIPCONV_BACKEND", "cpu")
            .env("HIPCONV_LOG", "1"),
    );
    assert!(out.contains("served by hipconv"), "{out}");
    assert!(
        out.contains("libMIOpen.hipconv-orig.so; convolutions run in hipconv"),
        "{out}"
    );

    // doctor sees it.
    let out = expect_code(hipconv(&s).arg("doctor").arg("--torch").arg(&torch), 0);
    assert!(
        out.contains("✓ libMIOpen.so is hipconv 0.1.0 (this build)"),
        "{out}"
    );
    assert!(
        out.contains("✓ this Python's torch gets hipconv (installed as libMIOpen.so)"),
        "{out}"
    );

    // Installing again changes nothing.
    let installed = snapshot(&torch);
    let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
    assert!(out.contains("is already installed"), "{out}");
    assert_eq!(snapshot(&torch), installed);

    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 0);
    assert!(out.contains("restored the original"), "{out}");
    assert!(
        snapshot(&torch) == before,
        "the tree differs after uninstall"
    );
    let out = run_client(command(&exe).env("HIPCONV_BACKEND", "cpu"));
    assert!(out.contains("served by the stand-in"), "{out}");

    // Uninstalling again is a no-op.
    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 0);
    assert!(out.contains("hipconv is not installed"), "{out}");
    assert!(snapshot(&torch) == before);

    let out = expect_code(hipconv(&s).arg("doctor").arg("--torch").arg(&torch), 0);
    assert!(
        out.contains("✓ libMIOpen.so is the original MIOpen"),
        "{out}"
    );
    assert!(
        out.contains("✗ this Python's torch does not get hipconv"),
        "{out}"
    );
    let out = expect_code(
        hipconv(&s)
            .arg("doctor")
            .arg("--torch")
            .arg(&torch)
            .env("LD_PRELOAD", &s.main),
        0,
    );
    assert!(out.contains("but HIPCONV_REAL_MIOPEN is not set"), "{out}");
    assert!(
        out.contains("✗ this Python's torch does not get hipconv"),
        "{out}"
    );
    let out = expect_code(
        hipconv(&s)
            .arg("doctor")
            .arg("--torch")
            .arg(&torch)
            .env("LD_PRELOAD", &s.main)
            .env("HIPCONV_REAL_MIOPEN", lib.join("libMIOpen.so")),
        0,
    );
    assert!(out.contains("✓ LD_PRELOAD loads hipconv"), "{out}");
    assert!(
        out.contains("✓ this Python's torch gets hipconv in this shell (LD_PRELOAD)"),
        "{out}"
    );
}

#[test]
fn torch_is_found_through_python() {
    let s = setup("python");
    let torch = fake_torch(&s, "venv");
    let before = snapshot(&torch);
    let python = s.dir.join("python-stand-in");
    std::fs::write(
        &python,
        format!("#!/bin/sh\necho some banner\necho {}\n", torch.display()),
    )
    .unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = expect_code(hipconv(&s).arg("install").arg("--python").arg(&python), 0);
    assert!(
        out.contains(&format!("installed {}", s.main.display())),
        "{out}"
    );
    expect_code(hipconv(&s).arg("uninstall").arg("--python").arg(&python), 0);
    assert!(snapshot(&torch) == before);
    let out = expect_code(
        hipconv(&s)
            .arg("install")
            .arg("--python")
            .arg("/nonexistent/python3"),
        1,
    );
    assert!(out.contains("cannot run /nonexistent/python3"), "{out}");
}

#[test]
fn an_interrupted_install_leaves_a_working_original() {
    let s = setup("interrupted");
    for step in ["backup", "manifest", "copy", "swap", "verify"] {
        for then in ["install", "uninstall"] {
            let torch = fake_torch(&s, &format!("{step}-{then}"));
            let lib = torch.join("lib");
            let before = snapshot(&torch);
            let exe = torch_client(&s, &format!("client-{step}-{then}"), &lib);
            let code = if step == "verify" { 1 } else { 99 };
            let out = expect_code(
                hipconv(&s)
                    .arg("install")
                    .arg("--torch")
                    .arg(&torch)
                    .env(FAIL_ENV, step),
                code,
            );
            if step == "verify" {
                assert!(
                    out.contains("the original libMIOpen.so is back in place"),
                    "{out}"
                );
                assert!(snapshot(&torch) == before, "rollback left changes");
            }
            // libMIOpen.so works: the original, or hipconv forwarding to it.
            let out = run_client(command(&exe).env("HIPCONV_BACKEND", "cpu"));
            let expect = if step == "swap" {
                "served by hipconv"
            } else {
                "served by the stand-in"
            };
            assert!(out.contains(expect), "after {step}: {out}");
            if step != "swap" {
                assert_eq!(
                    std::fs::read(lib.join("libMIOpen.so")).unwrap(),
                    before[Path::new("lib/libMIOpen.so")].1,
                    "after {step}"
                );
            }
            // Either finishing the installation or undoing it works from here.
            if then == "install" {
                let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
                assert!(out.contains("verified"), "after {step}: {out}");
                let out = run_client(command(&exe).env("HIPCONV_BACKEND", "cpu"));
                assert!(out.contains("served by hipconv"), "after {step}: {out}");
            }
            expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 0);
            assert!(
                snapshot(&torch) == before,
                "after {step} and {then}, uninstall did not restore the tree"
            );
        }
    }
}

#[test]
fn read_only_directories_are_refused() {
    let s = setup("read-only");
    let torch = fake_torch(&s, "ro");
    let lib = torch.join("lib");
    let before = snapshot(&torch);
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 1);
    assert!(
        out.contains("is not writable (read-only, mode 555)"),
        "{out}"
    );
    assert!(out.contains("nothing was changed"), "{out}");
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(snapshot(&torch) == before);

    // Installed, then made read-only: uninstall refuses too, and changes nothing.
    expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
    let installed = snapshot(&torch);
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 1);
    assert!(out.contains("is not writable"), "{out}");
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(snapshot(&torch) == installed);
    expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 0);
    assert!(snapshot(&torch) == before);
}

#[test]
fn unexpected_layouts_are_refused() {
    let s = setup("layouts");
    // No libMIOpen.so.
    let torch = fake_torch(&s, "no-miopen");
    std::fs::remove_file(torch.join("lib/libMIOpen.so")).unwrap();
    let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 1);
    assert!(out.contains("libMIOpen.so does not exist"), "{out}");
    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 1);
    assert!(out.contains("libMIOpen.so does not exist"), "{out}");

    // Already hipconv, but no manifest: the original is unknown.
    let torch = fake_torch(&s, "bare-hipconv");
    std::fs::copy(&s.main, torch.join("lib/libMIOpen.so")).unwrap();
    let before = snapshot(&torch);
    let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 1);
    assert!(
        out.contains("is already a hipconv library but there is no"),
        "{out}"
    );
    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 1);
    assert!(out.contains("original MIOpen is unknown"), "{out}");
    assert!(snapshot(&torch) == before);

    // A symbolic link (a system ROCm layout).
    let torch = fake_torch(&s, "symlink");
    let miopen = torch.join("lib/libMIOpen.so");
    std::fs::remove_file(&miopen).unwrap();
    std::os::unix::fs::symlink(&s.standin, &miopen).unwrap();
    let out = expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 1);
    assert!(out.contains("is a symbolic link"), "{out}");

    // A backup whose checksum no longer matches the manifest is never restored.
    let torch = fake_torch(&s, "tampered");
    expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
    std::fs::write(
        torch.join("lib/libMIOpen.hipconv-orig.so"),
        b"something else",
    )
    .unwrap();
    let tampered = snapshot(&torch);
    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 1);
    assert!(out.contains("does not match the manifest"), "{out}");
    assert!(snapshot(&torch) == tampered);
}

#[test]
fn a_reinstalled_torch_is_left_alone() {
    let s = setup("reinstalled");
    let torch = fake_torch(&s, "site");
    expect_code(hipconv(&s).arg("install").arg("--torch").arg(&torch), 0);
    // pip puts a new libMIOpen.so in place; hipconv's backup and manifest stay behind.
    let fresh = b"\x7fELF a newer MIOpen".to_vec();
    std::fs::write(torch.join("lib/libMIOpen.so"), &fresh).unwrap();
    let out = expect_code(hipconv(&s).arg("uninstall").arg("--torch").arg(&torch), 0);
    assert!(out.contains("torch was probably reinstalled"), "{out}");
    assert_eq!(
        std::fs::read(torch.join("lib/libMIOpen.so")).unwrap(),
        fresh
    );
    assert!(!torch.join("lib/libMIOpen.hipconv-orig.so").exists());
    assert!(!torch.join("lib/libMIOpen.hipconv.json").exists());
}
