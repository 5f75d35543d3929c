//! Compiles `hip-kernels/` into one AMDGPU code object per architecture and embeds them.
//!
//! - hipcc is looked up in `$HIPCC`, `$ROCM_PATH/bin`, `$HIP_PATH/bin`, `PATH`, `/opt/rocm/bin`;
//!   without it the build prints one `cargo:warning` and embeds no code objects.
//! - `HIPCONV_OFFLOAD_ARCH` (comma-separated target ids) overrides the default list.
//! - `HIPCONV_NO_HIP=1` skips compilation.
//! - `HIPCONV_REQUIRE_KERNELS` turns a failed compilation into a build error.
//!
//! For gfx1010/gfx1011/gfx1012 a second, override-safe object is made: the same ELF with
//! `e_flags` and the metadata target string relabelled gfx1030. Everything is written to
//! `OUT_DIR`; `OUT_DIR/kernels.rs` is the generated table that `src/kernels.rs` includes.

#[path = "build/version_script.rs"]
mod version_script;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[allow(dead_code)]
#[path = "src/kernels/elf.rs"]
mod elf;

const KERNEL_DIR: &str = "hip-kernels";
const MAIN_SOURCE: &str = "all.hip";
const DEFAULT_ARCHS: &str = "gfx1010,gfx1011,gfx1012,gfx1030,gfx1031,gfx1100,gfx900,gfx906";
const RDNA1: &[&str] = &["gfx1010", "gfx1011", "gfx1012"];
const OVERRIDE_ARCH: &str = "gfx1030";
/// Environment variables that change the result (all are read below, or by hipcc).
const ENV_VARS: &[&str] = &[
    "HIPCC",
    "ROCM_PATH",
    "HIP_PATH",
    "HIP_CLANG_PATH",
    "PATH",
    "HIPCONV_OFFLOAD_ARCH",
    "HIPCONV_NO_HIP",
    "HIPCONV_REQUIRE_KERNELS",
];

/// (target id, ELF image) pairs.
type Elves = Vec<(String, Vec<u8>)>;

/// One embedded object.
struct Built {
    arch: String,
    compiled_for: String,
    override_safe: bool,
    path: PathBuf,
    len: usize,
}

fn env_set(name: &str) -> bool {
    env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    version_script::emit();
    let start = Instant::now();
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let kernel_dir = manifest.join(KERNEL_DIR);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/kernels/elf.rs");
    println!("cargo:rerun-if-changed={KERNEL_DIR}");
    let sources = kernel_files(&kernel_dir);
    for (name, _) in &sources {
        println!("cargo:rerun-if-changed={KERNEL_DIR}/{name}");
    }
    for v in ENV_VARS {
        println!("cargo:rerun-if-env-changed={v}");
    }

    let archs = arch_list();
    let (built, note) = if env_set("HIPCONV_NO_HIP") {
        (Vec::new(), "skipped: HIPCONV_NO_HIP is set".to_string())
    } else {
        match find_hipcc() {
            Err(searched) => {
                let note = format!("skipped: hipcc not found (searched {searched})");
                println!(
                    "cargo:warning=hipconv: hipcc not found, building without AMD GPU kernels \
                     (set HIPCC or ROCM_PATH; searched {searched})"
                );
                (Vec::new(), note)
            }
            Ok(hipcc) => match compile_all(&hipcc, &kernel_dir, &out, &archs) {
                Ok(built) => {
                    let note = format!("compiled with {} for {}", hipcc.display(), archs.join(","));
                    (built, note)
                }
                Err(e) if env_set("HIPCONV_REQUIRE_KERNELS") => {
                    panic!(
                        "hipconv: kernel compilation failed (HIPCONV_REQUIRE_KERNELS is set):\n{e}"
                    )
                }
                Err(e) => {
                    let first = e.lines().take(6).collect::<Vec<_>>().join(" | ");
                    println!(
                        "cargo:warning=hipconv: kernel compilation with {} failed, building \
                         without AMD GPU kernels: {first}",
                        hipcc.display()
                    );
                    (Vec::new(), format!("skipped: compilation failed: {first}"))
                }
            },
        }
    };
    let note = format!(
        "{note}; build script took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let table = generate(&built, &archs, &sources, &note);
    fs::write(out.join("kernels.rs"), table).expect("write OUT_DIR/kernels.rs");
    fs::write(out.join("hipconv-build-note.txt"), format!("{note}\n")).expect("write build note");
}

/// The kernel files (`*.h`, `*.hip`) by name, sorted, with their absolute paths.
fn kernel_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("h" | "hip"))
        })
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|(n, _)| n == MAIN_SOURCE),
        "{} lacks {MAIN_SOURCE}",
        dir.display()
    );
    files
}

/// The requested target ids, validated and deduplicated.
fn arch_list() -> Vec<String> {
    let raw = env::var("HIPCONV_OFFLOAD_ARCH")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ARCHS.to_string());
    let mut out: Vec<String> = Vec::new();
    for a in raw.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let mut parts = a.split(':');
        let proc_ok = parts.next().is_some_and(|p| {
            p.len() > 3 && p.starts_with("gfx") && p[3..].chars().all(|c| c.is_ascii_hexdigit())
        });
        let features_ok = parts.all(|f| {
            f.len() > 1
                && (f.ends_with('+') || f.ends_with('-'))
                && f[..f.len() - 1].chars().all(|c| c.is_ascii_alphanumeric())
        });
        assert!(
            proc_ok && features_ok,
            "HIPCONV_OFFLOAD_ARCH: {a:?} is not a target id like gfx1010 or gfx90a:xnack-"
        );
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    assert!(
        !out.is_empty(),
        "HIPCONV_OFFLOAD_ARCH names no architecture"
    );
    out
}

fn executable(p: &Path) -> bool {
    p.is_file()
}

/// Finds hipcc; on failure returns the places searched.
fn find_hipcc() -> Result<PathBuf, String> {
    if let Some(h) = env::var_os("HIPCC").filter(|h| !h.is_empty()) {
        let p = PathBuf::from(&h);
        if p.components().count() > 1 {
            return if executable(&p) {
                Ok(p)
            } else {
                Err(format!("HIPCC={}", p.display()))
            };
        }
        // a bare name: look it up in PATH
        return env::var_os("PATH")
            .iter()
            .flat_map(env::split_paths)
            .map(|d| d.join(&p))
            .find(|c| executable(c))
            .ok_or_else(|| format!("HIPCC={} in PATH", p.display()));
    }
    let mut candidates = Vec::new();
    for var in ["ROCM_PATH", "HIP_PATH"] {
        if let Some(root) = env::var_os(var).filter(|r| !r.is_empty()) {
            candidates.push(PathBuf::from(root).join("bin").join("hipcc"));
        }
    }
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join("hipcc")));
    }
    candidates.push(PathBuf::from("/opt/rocm/bin/hipcc"));
    candidates
        .iter()
        .find(|c| executable(c))
        .cloned()
        .ok_or_else(|| {
            let mut dirs: Vec<String> = Vec::new();
            for c in &candidates {
                let d = c.parent().unwrap_or(c).display().to_string();
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
            dirs.join(", ")
        })
}

fn file_stem(arch: &str) -> String {
    arch.replace(':', "_")
        .replace('+', "on")
        .replace('-', "off")
}

/// Compiles every architecture (in as many parallel hipcc runs as cargo allows), extracts one
/// ELF per architecture and makes the override-safe copies.
fn compile_all(
    hipcc: &Path,
    kernel_dir: &Path,
    out: &Path,
    archs: &[String],
) -> Result<Vec<Built>, String> {
    let jobs = env::var("NUM_JOBS")
        .ok()
        .and_then(|j| j.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .clamp(1, archs.len());
    let work = out.join("hip-build");
    fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    let chunks: Vec<Vec<String>> = (0..jobs)
        .map(|j| archs.iter().skip(j).step_by(jobs).cloned().collect())
        .collect();
    let results: Vec<Result<Elves, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(j, chunk)| {
                let work = &work;
                s.spawn(move || compile_chunk(hipcc, kernel_dir, work, j, chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("compile thread"))
            .collect()
    });

    let mut elves: Elves = Vec::new();
    for r in results {
        elves.extend(r?);
    }
    // keep the requested order
    elves.sort_by_key(|(a, _)| archs.iter().position(|x| x == a));

    let objects = out.join("code-objects");
    fs::create_dir_all(&objects).map_err(|e| format!("create {}: {e}", objects.display()))?;
    let mut built = Vec::new();
    let mut save =
        |arch: &str, compiled_for: &str, bytes: &[u8], name: String| -> Result<(), String> {
            let path = objects.join(name);
            fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
            built.push(Built {
                arch: arch.to_string(),
                compiled_for: compiled_for.to_string(),
                override_safe: arch != compiled_for,
                path,
                len: bytes.len(),
            });
            Ok(())
        };
    for (arch, bytes) in &elves {
        save(arch, arch, bytes, format!("{}.co", file_stem(arch)))?;
    }
    for (arch, bytes) in &elves {
        if RDNA1.contains(&arch.as_str()) {
            let relabelled = elf::relabel(bytes, arch, OVERRIDE_ARCH)
                .map_err(|e| format!("relabel {arch}: {e}"))?;
            save(
                OVERRIDE_ARCH,
                arch,
                &relabelled,
                format!("{arch}-as-{OVERRIDE_ARCH}.co"),
            )?;
        }
    }
    Ok(built)
}

/// One hipcc run for several architectures; returns (arch, ELF) pairs.
fn compile_chunk(
    hipcc: &Path,
    kernel_dir: &Path,
    work: &Path,
    job: usize,
    archs: &[String],
) -> Result<Elves, String> {
    let bundle = work.join(format!("kernels-{job}.bundle"));
    let mut cmd = Command::new(hipcc);
    cmd.env("HIP_PLATFORM", "amd")
        .current_dir(kernel_dir)
        .arg("--genco")
        .arg("-O3")
        // the kernels call no device-library function, so no ROCm bitcode is needed
        .arg("-nogpulib")
        .arg("-Wall");
    for a in archs {
        cmd.arg(format!("--offload-arch={a}"));
    }
    cmd.arg(MAIN_SOURCE).arg("-o").arg(&bundle);
    let t = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("run {}: {e}", hipcc.display()))?;
    let log = format!(
        "{cmd:?}\nstatus: {}\ntime: {:.2} s\n{}{}",
        output.status,
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = fs::write(work.join(format!("kernels-{job}.log")), &log);
    if !output.status.success() {
        return Err(log);
    }
    let bytes = fs::read(&bundle).map_err(|e| format!("read {}: {e}", bundle.display()))?;
    let entries = match elf::offload_bundle_entries(&bytes) {
        Ok(e) => e
            .into_iter()
            .filter_map(|(id, r)| {
                Some((elf::bundle_target_id(&id)?.to_string(), bytes[r].to_vec()))
            })
            .collect::<Vec<_>>(),
        Err(_) if archs.len() == 1 && elf::header(&bytes).is_ok() => {
            vec![(archs[0].clone(), bytes)]
        }
        Err(_) => unbundle_with_tool(&bundle, work, archs)?,
    };
    let mut out = Vec::new();
    for a in archs {
        let (_, elf_bytes) = entries
            .iter()
            .find(|(id, _)| id == a)
            .ok_or_else(|| format!("{} has no entry for {a}", bundle.display()))?;
        let flags = elf::e_flags(elf_bytes).map_err(|e| format!("{a}: {e}"))?;
        if let Some(m) = elf::mach_of(a)
            && flags & elf::EF_AMDGPU_MACH != m
        {
            return Err(format!(
                "{a}: code object e_flags {flags:#x}, expected machine {m:#x}"
            ));
        }
        out.push((a.clone(), elf_bytes.clone()));
    }
    Ok(out)
}

/// Fallback for bundles this script cannot read itself (e.g. compressed): clang-offload-bundler.
fn unbundle_with_tool(bundle: &Path, work: &Path, archs: &[String]) -> Result<Elves, String> {
    let tool = find_bundler().ok_or("bundle format unknown and clang-offload-bundler not found")?;
    let mut out = Vec::new();
    for a in archs {
        let elf_path = work.join(format!("{}.unbundled.o", file_stem(a)));
        let status = Command::new(&tool)
            .arg("--unbundle")
            .arg("--type=o")
            .arg(format!("--input={}", bundle.display()))
            .arg(format!("--output={}", elf_path.display()))
            .arg(format!("--targets=hipv4-amdgcn-amd-amdhsa--{a}"))
            .status()
            .map_err(|e| format!("run {}: {e}", tool.display()))?;
        if !status.success() {
            return Err(format!("{} failed for {a}", tool.display()));
        }
        out.push((a.clone(), fs::read(&elf_path).map_err(|e| e.to_string())?));
    }
    Ok(out)
}

fn find_bundler() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (var, sub) in [
        ("HIP_CLANG_PATH", ""),
        ("ROCM_PATH", "llvm/bin"),
        ("HIP_PATH", "../llvm/bin"),
    ] {
        if let Some(v) = env::var_os(var).filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(v).join(sub));
        }
    }
    dirs.push("/opt/rocm/llvm/bin".into());
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("llvm-")?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, p)| p));
    if let Some(path) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&path));
    }
    dirs.iter()
        .map(|d| d.join("clang-offload-bundler"))
        .find(|p| executable(p))
}

fn generate(
    built: &[Built],
    archs: &[String],
    sources: &[(String, PathBuf)],
    note: &str,
) -> String {
    let mut s = String::from("// Generated by build.rs. Do not edit.\n\n");
    writeln!(s, "pub(super) const BUILD_NOTE: &str = {note:?};").unwrap();
    writeln!(s, "pub(super) const OFFLOAD_ARCHS: &[&str] = &{archs:?};").unwrap();
    s.push_str("pub(super) const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for (name, path) in sources {
        writeln!(
            s,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    s.push_str("];\n\n");
    for (i, b) in built.iter().enumerate() {
        writeln!(
            s,
            "static OBJECT_{i}: Aligned<[u8; {}]> = Aligned(*include_bytes!({:?}));",
            b.len,
            b.path.display().to_string()
        )
        .unwrap();
    }
    s.push_str("\npub(super) static CODE_OBJECTS: &[CodeObject] = &[\n");
    for (i, b) in built.iter().enumerate() {
        writeln!(
            s,
            "    CodeObject {{ arch: {:?}, compiled_for: {:?}, override_safe: {}, bytes: &OBJECT_{i}.0 }},",
            b.arch, b.compiled_for, b.override_safe
        )
        .unwrap();
    }
    s.push_str("];\n");
    if built.is_empty() {
        // keep the type in use when no object was built
        s.push_str("#[allow(dead_code)]\nconst _: Option<&Aligned<[u8]>> = None;\n");
    }
    s
}
