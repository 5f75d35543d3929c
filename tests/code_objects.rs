//! Checks on the embedded GPU code objects (no GPU needed): every requested architecture has
//! every kernel, every object disassembles for its real processor, the RDNA1 objects avoid the
//! instructions their silicon lacks or mishandles, and each override-safe object differs from
//! its source only in the label.
//!
//! When the library was built without hipcc the tests print why and pass, unless
//! `HIPCONV_REQUIRE_KERNELS` is set. Likewise when the LLVM tools are missing.

use hipconv::kernels::{self, CodeObject, elf};
use std::path::{Path, PathBuf};
use std::process::Command;

fn required() -> bool {
    std::env::var_os("HIPCONV_REQUIRE_KERNELS").is_some()
}

/// The embedded objects, or `None` (after printing why) when there are none to test.
fn objects() -> Option<&'static [CodeObject]> {
    let objs = kernels::code_objects();
    if objs.is_empty() {
        assert!(
            !required(),
            "no code objects were built but HIPCONV_REQUIRE_KERNELS is set: {}",
            kernels::BUILD_NOTE
        );
        eprintln!(
            "SKIPPED: no code objects in this build ({})",
            kernels::BUILD_NOTE
        );
        return None;
    }
    Some(objs)
}

fn llvm_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["LLVM_BIN", "ROCM_PATH"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(v);
            dirs.push(if var == "ROCM_PATH" {
                p.join("llvm/bin")
            } else {
                p
            });
        }
    }
    dirs.push("/opt/rocm/llvm/bin".into());
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e
                .file_name()
                .to_str()?
                .strip_prefix("llvm-")?
                .parse()
                .ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, p)| p));
    dirs
}

/// An LLVM tool (`llvm-objdump`, `llvm-readobj`): the newest one found (older ones do not
/// know newer processors); a disassembler must also list the amdgcn target.
fn llvm_tool(name: &str) -> Option<PathBuf> {
    let mut names = vec![name.to_string()];
    names.extend((14..=22).rev().map(|v| format!("{name}-{v}")));
    let mut best: Option<(u32, PathBuf)> = None;
    for dir in llvm_dirs() {
        for n in &names {
            let p = dir.join(n);
            if !p.is_file() {
                continue;
            }
            let Ok(out) = Command::new(&p).arg("--version").output() else {
                continue;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains("LLVM version")
                || (name == "llvm-objdump" && !text.contains("amdgcn"))
            {
                continue;
            }
            let version = text
                .split("LLVM version ")
                .nth(1)
                .and_then(|v| v.split('.').next())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if best.as_ref().is_none_or(|(b, _)| version > *b) {
                best = Some((version, p));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// The tool, or `None` (after printing why) when the test must be skipped.
fn tool_or_skip(name: &str) -> Option<PathBuf> {
    let tool = llvm_tool(name);
    if tool.is_none() {
        assert!(
            !required(),
            "{name} not found but HIPCONV_REQUIRE_KERNELS is set \
             (looked in LLVM_BIN, $ROCM_PATH/llvm/bin, /opt/rocm/llvm/bin, PATH, /usr/lib/llvm-*/bin)"
        );
        eprintln!("SKIPPED: {name} not found");
    }
    tool
}

/// A scratch directory for this test process.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hipconv-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn object_file(dir: &Path, o: &CodeObject) -> PathBuf {
    let kind = if o.override_safe { "as" } else { "native" };
    let p = dir.join(format!(
        "{}-{kind}-{}.co",
        o.compiled_for.replace(':', "_"),
        o.arch
    ));
    std::fs::write(&p, o.bytes).unwrap();
    p
}

fn run(tool: &Path, args: &[&str], file: &Path) -> String {
    let out = Command::new(tool).args(args).arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} {} failed: {}",
        tool.display(),
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn source_of(objs: &'static [CodeObject], o: &CodeObject) -> &'static CodeObject {
    objs.iter()
        .find(|s| !s.override_safe && s.arch == o.compiled_for)
        .expect("override-safe object without its source")
}

#[test]
fn every_requested_arch_has_every_kernel() {
    let Some(objs) = objects() else { return };
    let mut want: Vec<String> = kernels::KERNEL_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    for arch in kernels::OFFLOAD_ARCHS {
        let o = kernels::find(arch).unwrap_or_else(|| panic!("no code object for {arch}"));
        assert_eq!(o.compiled_for, *arch);
        if kernels::is_rdna1(arch) && !arch.contains(':') {
            let safe = kernels::find_override_safe(arch)
                .unwrap_or_else(|| panic!("no override-safe {arch}"));
            assert_eq!(safe.arch, kernels::OVERRIDE_ARCH);
        }
    }
    for o in objs {
        let names = elf::kernel_names(o.bytes).unwrap();
        assert_eq!(
            names, want,
            "kernels of {} (compiled for {})",
            o.arch, o.compiled_for
        );
        let syms: Vec<String> = elf::symbols(o.bytes)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        for k in kernels::KERNEL_NAMES {
            assert!(syms.iter().any(|s| s == k), "{}: no symbol {k}", o.arch);
        }
    }
    eprintln!("{} objects, {} kernels each", objs.len(), want.len());
}

#[test]
fn headers_and_labels_match_the_arch() {
    let Some(objs) = objects() else { return };
    for o in objs {
        assert_eq!(o.bytes.as_ptr() as usize % 4096, 0);
        let h = elf::header(o.bytes).unwrap();
        assert_eq!(h.machine, elf::EM_AMDGPU);
        assert_eq!(h.os_abi, elf::ELFOSABI_AMDGPU_HSA);
        let flags = h.flags;
        assert_eq!(
            Some(flags & elf::EF_AMDGPU_MACH),
            elf::mach_of(o.arch),
            "{}",
            o.arch
        );
        let (_, target) = elf::metadata_target(o.bytes).unwrap();
        assert!(target.starts_with(&format!("{}{}", elf::TARGET_PREFIX, elf::processor(o.arch))));
        if o.override_safe {
            assert_eq!(flags, 0x036, "override-safe e_flags");
            assert_eq!(target, "amdgcn-amd-amdhsa--gfx1030");
        }
    }
}

#[test]
fn override_safe_objects_differ_only_in_the_label() {
    let Some(objs) = objects() else { return };
    let readobj = llvm_tool("llvm-readobj");
    let dir = scratch("relabel");
    let mut checked = 0;
    for o in objs.iter().filter(|o| o.override_safe) {
        let src = source_of(objs, o);
        assert_eq!(o.bytes.len(), src.bytes.len());
        let (label, src_target) = elf::metadata_target(src.bytes).unwrap();
        assert_eq!(src_target, format!("amdgcn-amd-amdhsa--{}", src.arch));
        let diff = elf::differing_offsets(src.bytes, o.bytes);
        assert!(!diff.is_empty());
        for at in &diff {
            assert!(
                elf::E_FLAGS.contains(at) || label.contains(at),
                "{} as gfx1030: byte {at:#x} differs outside e_flags and the target string",
                src.arch
            );
        }
        assert_eq!(elf::labelled_arch(o.bytes).unwrap(), Some("gfx1030"));
        if let Some(tool) = &readobj {
            let text = run(tool, &["--file-headers"], &object_file(&dir, o));
            assert!(text.contains("EF_AMDGPU_MACH_AMDGCN_GFX1030"), "{text}");
            assert!(
                !text.contains("XNACK") && !text.contains("SRAMECC"),
                "{text}"
            );
            let text = run(tool, &["--file-headers"], &object_file(&dir, src));
            let mach = format!("EF_AMDGPU_MACH_AMDGCN_{}", src.arch.to_uppercase());
            assert!(text.contains(&mach), "{text}");
        }
        checked += 1;
    }
    let rdna1 = kernels::OFFLOAD_ARCHS
        .iter()
        .filter(|a| kernels::RDNA1_ARCHS.contains(a))
        .count();
    assert_eq!(checked, rdna1);
    if readobj.is_none() {
        assert!(
            !required(),
            "llvm-readobj not found but HIPCONV_REQUIRE_KERNELS is set"
        );
        eprintln!(
            "llvm-readobj not found: checked the relabelled headers with the built-in reader only"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Instructions the disassembler could not decode for the given processor.
fn undecodable(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let code = l.split("//").next().unwrap_or("").trim_start();
            code.starts_with(".long") || code.starts_with(".short") || code.contains("<unknown>")
        })
        .collect()
}

/// The instruction text of each kernel, keyed by symbol name.
fn kernel_bodies(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_suffix(">:")
            .and_then(|l| l.split_once(" <"))
            .map(|(_, n)| n)
        {
            out.push((name.to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            let code = line.split("//").next().unwrap_or("").trim();
            if !code.is_empty() {
                body.push(code.to_string());
            }
        }
    }
    out
}

#[test]
fn objects_disassemble_for_their_real_processor() {
    let Some(objs) = objects() else { return };
    let Some(objdump) = tool_or_skip("llvm-objdump") else {
        return;
    };
    let dir = scratch("disasm");
    let mut native = std::collections::HashMap::new();
    for o in objs {
        let mcpu = format!("--mcpu={}", elf::processor(o.compiled_for));
        let text = run(&objdump, &["-d", &mcpu], &object_file(&dir, o));
        let bad = undecodable(&text);
        assert!(
            bad.is_empty(),
            "{} ({mcpu}): undecodable words: {:?}",
            o.arch,
            &bad[..bad.len().min(5)]
        );
        let bodies = kernel_bodies(&text);
        let insns: usize = bodies.iter().map(|(_, b)| b.len()).sum();
        assert!(insns > 1000, "{}: only {insns} instructions", o.arch);
        for k in kernels::KERNEL_NAMES {
            assert!(
                bodies.iter().any(|(n, b)| n == k && !b.is_empty()),
                "{}: no code for {k}",
                o.arch
            );
        }
        if elf::processor(o.compiled_for).starts_with("gfx101") {
            for forbidden in ["s_inst_prefetch", "v_dot"] {
                let hits: Vec<_> = text
                    .lines()
                    .filter(|l| l.contains(forbidden))
                    .take(3)
                    .collect();
                assert!(
                    hits.is_empty(),
                    "{} code for {}: {forbidden}: {hits:?}",
                    o.arch,
                    o.compiled_for
                );
            }
        }
        // alpha/beta blending must not be fused: the f64 store kernels have no other
        // floating-point arithmetic, so any v_fma_f64 there would come from the blend
        for k in ["store_pixels_f64", "unpack_f64"] {
            let (_, body) = bodies.iter().find(|(n, _)| n == k).unwrap();
            assert!(
                body.iter().any(|l| l.starts_with("v_mul_f64")),
                "{}: {k} has no v_mul_f64",
                o.arch
            );
            assert!(
                body.iter().any(|l| l.starts_with("v_add_f64")),
                "{}: {k} has no v_add_f64",
                o.arch
            );
            assert!(
                !body.iter().any(|l| l.starts_with("v_fma_f64")),
                "{}: {k} fuses the blend",
                o.arch
            );
        }
        // the machine code of an override-safe object is its source's, instruction for instruction
        let listing: Vec<(String, Vec<String>)> = bodies;
        if o.override_safe {
            let src: &Vec<(String, Vec<String>)> =
                native.get(o.compiled_for).expect("sources come first");
            assert!(
                &listing == src,
                "{}: code differs from its source",
                o.compiled_for
            );
        } else {
            native.insert(o.compiled_for, listing);
        }
        eprintln!(
            "{:>8} ({}): {insns} instructions, all decodable",
            o.arch, o.compiled_for
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn symbols_agree_with_llvm_readobj() {
    let Some(objs) = objects() else { return };
    let Some(readobj) = tool_or_skip("llvm-readobj") else {
        return;
    };
    let dir = scratch("symbols");
    for o in objs.iter().filter(|o| !o.override_safe) {
        let text = run(&readobj, &["--symbols"], &object_file(&dir, o));
        for k in kernels::KERNEL_NAMES {
            assert!(
                text.contains(&format!("Name: {k} (")),
                "{}: readobj lists no {k}",
                o.arch
            );
            assert!(
                text.contains(&format!("Name: {k}.kd (")),
                "{}: readobj lists no {k}.kd",
                o.arch
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A stand-in for the CUDA headers / NVRTC built-ins: declarations only, enough to compile the
/// kernel sources to PTX with clang, which checks they are valid CUDA.
const CUDA_STUB: &str = r#"
#define __device__ __attribute__((device))
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define __forceinline__ __inline__ __attribute__((always_inline))
#include "__clang_cuda_builtin_vars.h"
__device__ unsigned int __float_as_uint(float);
__device__ float __uint_as_float(unsigned int);
__device__ float __fmul_rn(float, float);
__device__ float __fadd_rn(float, float);
__device__ double __dmul_rn(double, double);
__device__ double __dadd_rn(double, double);
__device__ void __syncthreads(void);
"#;

fn clang_for_cuda() -> Option<PathBuf> {
    let mut names = vec!["clang++".to_string()];
    names.extend((14..=22).rev().map(|v| format!("clang++-{v}")));
    llvm_dirs()
        .into_iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)).collect::<Vec<_>>())
        .find(|p| p.is_file())
}

/// The exported sources compile as CUDA (clang's CUDA mode with a stub runtime header), in the
/// three CUDA flavours `common.h` distinguishes: clang, nvcc, and NVRTC.
#[test]
fn kernel_sources_are_valid_cuda() {
    let Some(clang) = clang_for_cuda() else {
        eprintln!("SKIPPED: no clang++ for a CUDA syntax check");
        return;
    };
    let dir = scratch("cuda");
    for (name, text) in kernels::KERNEL_SOURCES {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(dir.join("stub.h"), CUDA_STUB).unwrap();
    let base = |extra: &[&str]| {
        let mut c = Command::new(&clang);
        c.current_dir(&dir)
            .args([
                "-x",
                "cuda",
                "--cuda-gpu-arch=sm_80",
                "-nocudainc",
                "-nocudalib",
                "--cuda-device-only",
            ])
            .args([
                "-std=c++14",
                "-Wall",
                "-Werror",
                "-include",
                "stub.h",
                "-D__CUDACC__",
            ])
            .args(extra);
        c
    };
    // can this clang target NVPTX at all?
    std::fs::write(dir.join("probe.cu"), "__global__ void probe() {}\n").unwrap();
    let probe = base(&["-fsyntax-only", "probe.cu"]).output().unwrap();
    if !probe.status.success() {
        eprintln!(
            "SKIPPED: {} cannot compile CUDA: {}",
            clang.display(),
            String::from_utf8_lossy(&probe.stderr)
        );
        return;
    }
    for flavour in [&[][..], &["-D__NVCC__"], &["-D__CUDACC_RTC__"]] {
        let ptx = dir.join("all.ptx");
        let mut args: Vec<&str> = flavour.to_vec();
        let ptx_arg = ptx.to_str().unwrap();
        args.extend(["-S", "-o", ptx_arg, kernels::KERNEL_MAIN_SOURCE]);
        let out = base(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{flavour:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ptx = std::fs::read_to_string(&ptx).unwrap();
        for k in kernels::KERNEL_NAMES {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{flavour:?}: no PTX entry {k}"
            );
        }
    }
    // every file stands on its own
    for (name, _) in kernels::KERNEL_SOURCES
        .iter()
        .filter(|(n, _)| n.ends_with(".hip"))
    {
        let out = base(&["-fsyntax-only", name]).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
