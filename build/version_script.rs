//! The linker version script of the cdylib: defines the version node `MIOPEN_HIP_1` (MIOpen's
//! own node name) for every `miopen*` symbol and hides everything else.
//!
//! The symbols themselves are bound to the node by `.symver` directives next to their
//! definitions (`src/ffi/exports.rs`), because rustc already passes its own anonymous
//! version script that lists every exported symbol by name, and an explicit name in that
//! script wins over a pattern in this one.

use std::path::PathBuf;

/// The version node name.
pub const NODE: &str = "MIOPEN_HIP_1";

/// Writes the script into `OUT_DIR` and passes it to the cdylib link only.
pub fn emit() {
    println!("cargo:rerun-if-changed=build/version_script.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let path = out.join("hipconv.map");
    let script = format!("{NODE} {{\n  global:\n    miopen*;\n  local:\n    *;\n}};\n");
    std::fs::write(&path, script).expect("write the linker version script");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            path.display()
        );
    }
}
