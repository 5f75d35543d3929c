//! Keeps `include/hipconv/miopen.h` and the Rust exports in sync: the same enums with the same
//! values, the same functions, and for each function the same parameter names and types
//! (C types mapped to their Rust ABI equivalents) and return type.

use hipconv::ffi::{ALL_ENUMS, implemented_symbols};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Removes `/* */` and `//` comments and preprocessor lines.
fn strip_c(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        let end = rest.find("*/").expect("unterminated comment");
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap())
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `typedef enum { a = 1, … } name;` blocks.
fn header_enums(src: &str) -> BTreeMap<String, Vec<(String, i32)>> {
    let mut out = BTreeMap::new();
    let mut rest = src;
    while let Some(i) = rest.find("typedef enum") {
        rest = &rest[i..];
        let open = rest.find('{').unwrap();
        let close = rest.find('}').unwrap();
        let body = &rest[open + 1..close];
        let semi = rest[close..].find(';').unwrap();
        let name = rest[close + 1..close + semi].trim().to_string();
        let values = body
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (n, v) = e.split_once('=').expect("every enumerator has a value");
                (n.trim().to_string(), v.trim().parse().unwrap())
            })
            .collect();
        out.insert(name, values);
        rest = &rest[close..];
    }
    out
}

/// Maps a C parameter or return type to the Rust type the exports use.
fn rust_type(c: &str) -> String {
    let c = squash(&c.replace('*', " * "));
    let mut words: Vec<&str> = c.split(' ').collect();
    let stars = words.iter().filter(|w| **w == "*").count();
    assert!(stars <= 1, "{c}");
    // `const T` (no pointer) is a top-level const: irrelevant to the ABI.
    let pointee_const = words.first() == Some(&"const");
    if pointee_const {
        words.remove(0);
    }
    let base = words[0];
    let base = match base {
        "int" => "i32",
        "size_t" => "usize",
        "uint64_t" => "u64",
        "float" => "f32",
        "bool" => "bool",
        "void" => "c_void",
        "char" => "c_char",
        other => other,
    };
    if stars == 1 {
        format!("*{} {base}", if pointee_const { "const" } else { "mut" })
    } else {
        base.to_string()
    }
}

/// A function's parameters (name, Rust type) and return type.
type Signature = (Vec<(String, String)>, String);

fn header_functions(src: &str) -> BTreeMap<String, Signature> {
    let mut out = BTreeMap::new();
    for decl in src.split(';') {
        let decl = squash(decl);
        if decl.contains("typedef")
            || decl.contains('{')
            || decl.contains('}')
            || !decl.contains('(')
        {
            continue;
        }
        let open = decl.find('(').unwrap();
        let head = decl[..open].trim();
        let (ret, name) = head.rsplit_once(' ').unwrap();
        let params = decl[open + 1..decl.rfind(')').unwrap()]
            .split(',')
            .map(str::trim)
            .map(|p| {
                let p = p.replace('*', "* ");
                let (ty, name) = p.trim().rsplit_once(' ').unwrap();
                (name.to_string(), rust_type(ty))
            })
            .collect();
        out.insert(name.to_string(), (params, rust_type(ret)));
    }
    out
}

/// `pub unsafe extern "C" fn name(p: T, …) -> R` items of the ffi sources.
fn rust_functions() -> BTreeMap<String, Signature> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("src/ffi")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let mut rest = src.as_str();
        let marker = "pub unsafe extern \"C\" fn ";
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let open = rest.find('(').unwrap();
            let name = rest[..open].trim().to_string();
            let close = rest.find(") ->").unwrap();
            let params = rest[open + 1..close]
                .split(',')
                .map(squash)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (n, t) = p.split_once(':').unwrap();
                    (
                        n.trim().trim_start_matches('_').to_string(),
                        t.trim().to_string(),
                    )
                })
                .collect();
            let brace = rest[close..].find('{').unwrap();
            let ret = squash(&rest[close + 4..close + brace]);
            if name.starts_with("miopen") {
                out.insert(name, (params, ret));
            }
        }
    }
    out
}

fn header() -> String {
    strip_c(&std::fs::read_to_string(root().join("include/hipconv/miopen.h")).unwrap())
}

#[test]
fn enums_match() {
    let h = header_enums(&header());
    let rust: BTreeMap<String, Vec<(String, i32)>> = ALL_ENUMS
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.iter().map(|(a, b)| (a.to_string(), *b)).collect(),
            )
        })
        .collect();
    assert_eq!(h, rust);
}

#[test]
fn functions_match() {
    let h = header_functions(&header());
    let r = rust_functions();
    let exported: BTreeSet<String> = implemented_symbols()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let declared: BTreeSet<String> = h.keys().cloned().collect();
    let defined: BTreeSet<String> = r.keys().cloned().collect();
    assert_eq!(declared, exported, "header vs export list");
    assert_eq!(defined, exported, "Rust definitions vs export list");
    for (name, sig) in &h {
        assert_eq!(Some(sig), r.get(name), "signature of {name}");
    }
    assert!(h.len() >= 60, "{} functions", h.len());
}

#[test]
fn type_mapping_is_sane() {
    assert_eq!(rust_type("const int*"), "*const i32");
    assert_eq!(
        rust_type("const miopenTensorDescriptor_t"),
        "miopenTensorDescriptor_t"
    );
    assert_eq!(rust_type("size_t*"), "*mut usize");
    assert_eq!(rust_type("const char*"), "*const c_char");
}
