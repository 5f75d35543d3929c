//! The built `libhipconv.so` exports exactly the documented `miopen*` symbols, each bound to
//! the version node `MIOPEN_HIP_1` (as `nm -D` / `objdump -T` show for MIOpen itself).

use hipconv::ffi::{SYMBOL_VERSION, exported_symbols};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn library() -> PathBuf {
    // Cargo leaves the library built for integration tests in deps/, next to this executable.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libhipconv.so"))
        .find(|p| p.exists())
        .expect("libhipconv.so is missing; build the library first")
}

fn tool_output(tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(tool).args(args).arg(library()).output().ok()?;
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_export_is_versioned_and_nothing_else_is_exported() {
    let Some(nm) = tool_output("nm", &["-D", "--defined-only"]) else {
        eprintln!("nm is not installed: skipping");
        return;
    };
    // Lines look like "0000000000144710 T miopenCreate@@MIOPEN_HIP_1".
    let defined: BTreeSet<String> = nm
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = exported_symbols()
        .iter()
        .map(|s| format!("{s}@@{SYMBOL_VERSION}"))
        .collect();
    let missing: Vec<_> = want.difference(&defined).collect();
    let extra: Vec<_> = defined.difference(&want).collect();
    assert!(
        missing.is_empty(),
        "missing or unversioned exports: {missing:?}"
    );
    assert!(extra.is_empty(), "unexpected exports: {extra:?}");
}

#[test]
fn objdump_shows_the_version_node() {
    let Some(dump) = tool_output("objdump", &["-T"]) else {
        eprintln!("objdump is not installed: skipping");
        return;
    };
    for name in exported_symbols() {
        let found = dump.lines().any(|l| {
            let mut words = l.split_whitespace().rev();
            words.next() == Some(name) && words.next() == Some(SYMBOL_VERSION)
        });
        assert!(
            found,
            "{name} is not listed at {SYMBOL_VERSION} by objdump -T"
        );
    }
}
