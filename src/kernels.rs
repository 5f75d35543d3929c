//! The GPU kernels: code objects compiled by `build.rs` from `hip-kernels/` and embedded in
//! the library, the kernel sources themselves (for run-time compilation on NVIDIA), and the
//! by-value argument types the kernels take.
//!
//! Each architecture in the build list gets one code object holding every kernel. For the
//! RDNA1 chips (gfx1010, gfx1011, gfx1012) there is also an *override-safe* copy: the very
//! same machine code, labelled gfx1030 (ELF `e_flags` and metadata target string), for
//! processes run with `HSA_OVERRIDE_GFX_VERSION=10.3.0`, where the runtime only accepts
//! gfx1030 objects but the silicon is still RDNA1. That copy must only ever be loaded on real
//! RDNA1 hardware: RDNA1 code uses instructions gfx1030 removed (`v_mac_f32`, …).
//!
//! # Kernel signatures
//! `T` is the storage type (`u16` bits for f16/bf16, `f32`, `f64`), `C` the compute type (`f32`,
//! or `f64` for f64); `i64` counts are elements. Any 1-D launch works (grid-stride loops),
//! except that `bias_grad` needs a block of at most [`MAX_BLOCK`] threads.
//! ```text
//! pack_<dt>          (KernelTensor d, const T* src, C* dst)
//! unpack_<dt>        (KernelTensor d, const C* src, T* dst, C alpha, C beta)
//! im2col_<dt>        (KernelGeom g, KernelStrides xs, const T* x, i64 group,
//!                     i64 pixel_start, i64 pixel_len, C* col)
//! gather_pixels_<dt> (KernelGeom g, KernelStrides s, const T* src, i64 ch_start, i64 ch_len,
//!                     i64 pixel_start, i64 pixel_len, C* dst)
//! store_pixels_<dt>  (KernelGeom g, KernelStrides s, const C* src, T* dst, i64 ch_start,
//!                     i64 ch_len, i64 pixel_start, i64 pixel_len, C alpha, C beta)
//! col2im_<dt>        (KernelGeom g, KernelStrides s, const C* col, T* dx, i64 group,
//!                     i64 ch_start, i64 ch_len, i64 image_start, i64 image_len,
//!                     C alpha, C beta)
//! bias_add_<dt>      (KernelTensor d, T* y, const T* b, C alpha)
//! bias_grad_<dt>     (KernelTensor d, const T* dy, T* db, C alpha, C beta)   // one block per channel
//! direct_fwd_<dt>    (KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys,
//!                     const T* x, const T* w, T* y, C alpha, C beta)   // any C/G
//! implicit_fwd_<dt>  (the same parameters as direct_fwd)   // G == 1, 1-D/2-D, 64×128 tiles
//!                                                          // of 256-thread blocks
//! implicit_wgrad_<dt> (the same parameters as direct_wgrad) // G == 1, 1-D/2-D; slices
//!                                                          // along x, 64×128 tiles along y
//! implicit_wgrad_few_<dt> (the same parameters)            // the same for 129–160 taps:
//!                                                          // one 64×160 tile per 64 channels
//! implicit_wgrad_k128_<dt> (the same parameters)           // the same on 128×64 tiles
//!                                                          // (more than 64 channels)
//! stem_fwd_<dt>      (the same parameters as direct_fwd)   // G == 1, 7×7 stride 2, C ≤ 3,
//!                                                          // 4-byte compute types
//! gemm_pointers_<dt> (u64* table, i64 entries, i64 batch, BatchOperand lhs,
//!                     BatchOperand rhs, BatchOperand dst)   // pointer-array GEMM tables
//! ```
//! Each mirrors the [`crate::backend::Backend`] method of the same name (the CPU backend is
//! the reference); `pack`/`unpack`/`bias_*` take the tensor as a [`KernelTensor`].

pub mod elf;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::problem::TensorDesc;

/// An embedded code object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeObject {
    /// The processor the object is labelled for: what the runtime must report to accept it.
    pub arch: &'static str,
    /// The processor the machine code was compiled for (differs from `arch` only for
    /// override-safe objects).
    pub compiled_for: &'static str,
    /// A relabelled RDNA1 object (`arch` is gfx1030, `compiled_for` the real chip).
    pub override_safe: bool,
    /// The ELF image, 4096-byte aligned.
    pub bytes: &'static [u8],
}

/// Forces 4096-byte alignment on embedded code objects.
#[allow(dead_code)] // unused when no object was built
#[repr(C, align(4096))]
struct Aligned<T: ?Sized>(T);

#[allow(clippy::all)]
mod generated {
    use super::{Aligned, CodeObject};
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// Every kernel source file as (file name, contents): `common.h` and the `.hip` files. A
/// CUDA backend compiles [`KERNEL_MAIN_SOURCE`] with NVRTC, handing it the others as headers.
pub const KERNEL_SOURCES: &[(&str, &str)] = generated::KERNEL_SOURCES;

/// The translation unit that includes every kernel file.
pub const KERNEL_MAIN_SOURCE: &str = "all.hip";

/// The architectures the build was asked for (`HIPCONV_OFFLOAD_ARCH` or the default list),
/// whether or not they were compiled.
pub const OFFLOAD_ARCHS: &[&str] = generated::OFFLOAD_ARCHS;

/// One line on how the code objects were built, or why none were.
pub const BUILD_NOTE: &str = generated::BUILD_NOTE;

/// The label override-safe objects carry.
pub const OVERRIDE_ARCH: &str = "gfx1030";

/// The RDNA1 processors that get override-safe copies.
pub const RDNA1_ARCHS: &[&str] = &["gfx1010", "gfx1011", "gfx1012"];

/// Kernel operations; entry points are named `<op>_<dtype>`.
pub const KERNEL_OPS: &[&str] = &[
    "pack",
    "pack_raw",
    "unpack",
    "im2col",
    "im2col_raw",
    "im2col32",
    "im2col32_raw",
    "gather_pixels",
    "gather_pixels_raw",
    "store_pixels",
    "col2im",
    "col2im32",
    "col2im32s2",
    "bias_add",
    "bias_grad",
    "direct_fwd",
    "direct_fwd3",
    "direct_bwd_data",
    "direct_bwd_data3",
    "direct_bwd_data_split",
    "direct_wgrad",
    "direct_wgrad3",
    "sum_batches",
    "winograd_filter",
    "winograd_data",
    "winograd_output",
    "winograd_grad",
    "winograd_filter_grad",
    "gemm_pointers",
    "implicit_fwd",
    "implicit_wgrad",
    "implicit_wgrad_few",
    "implicit_wgrad_k128",
    "stem_fwd",
];

/// Every kernel entry point in every code object.
pub const KERNEL_NAMES: &[&str] = &[
    "pack_f16",
    "pack_bf16",
    "pack_f32",
    "pack_f64",
    "pack_raw_f16",
    "pack_raw_bf16",
    "pack_raw_f32",
    "pack_raw_f64",
    "unpack_f16",
    "unpack_bf16",
    "unpack_f32",
    "unpack_f64",
    "im2col_f16",
    "im2col_bf16",
    "im2col_f32",
    "im2col_f64",
    "im2col_raw_f16",
    "im2col_raw_bf16",
    "im2col_raw_f32",
    "im2col_raw_f64",
    "im2col32_f16",
    "im2col32_bf16",
    "im2col32_f32",
    "im2col32_f64",
    "im2col32_raw_f16",
    "im2col32_raw_bf16",
    "im2col32_raw_f32",
    "im2col32_raw_f64",
    "gather_pixels_f16",
    "gather_pixels_bf16",
    "gather_pixels_f32",
    "gather_pixels_f64",
    "gather_pixels_raw_f16",
    "gather_pixels_raw_bf16",
    "gather_pixels_raw_f32",
    "gather_pixels_raw_f64",
    "store_pixels_f16",
    "store_pixels_bf16",
    "store_pixels_f32",
    "store_pixels_f64",
    "col2im_f16",
    "col2im_bf16",
    "col2im_f32",
    "col2im_f64",
    "col2im32_f16",
    "col2im32_bf16",
    "col2im32_f32",
    "col2im32_f64",
    "col2im32s2_f16",
    "col2im32s2_bf16",
    "col2im32s2_f32",
    "col2im32s2_f64",
    "bias_add_f16",
    "bias_add_bf16",
    "bias_add_f32",
    "bias_add_f64",
    "bias_grad_f16",
    "bias_grad_bf16",
    "bias_grad_f32",
    "bias_grad_f64",
    "direct_fwd_f16",
    "direct_fwd_bf16",
    "direct_fwd_f32",
    "direct_fwd_f64",
    "direct_fwd3_f16",
    "direct_fwd3_bf16",
    "direct_fwd3_f32",
    "direct_fwd3_f64",
    "direct_bwd_data_f16",
    "direct_bwd_data_bf16",
    "direct_bwd_data_f32",
    "direct_bwd_data_f64",
    "direct_bwd_data3_f16",
    "direct_bwd_data3_bf16",
    "direct_bwd_data3_f32",
    "direct_bwd_data3_f64",
    "direct_bwd_data_split_f16",
    "direct_bwd_data_split_bf16",
    "direct_bwd_data_split_f32",
    "direct_bwd_data_split_f64",
    "direct_wgrad_f16",
    "direct_wgrad_bf16",
    "direct_wgrad_f32",
    "direct_wgrad_f64",
    "direct_wgrad3_f16",
    "direct_wgrad3_bf16",
    "direct_wgrad3_f32",
    "direct_wgrad3_f64",
    "sum_batches_f16",
    "sum_batches_bf16",
    "sum_batches_f32",
    "sum_batches_f64",
    "winograd_filter_f16",
    "winograd_filter_bf16",
    "winograd_filter_f32",
    "winograd_filter_f64",
    "winograd_data_f16",
    "winograd_data_bf16",
    "winograd_data_f32",
    "winograd_data_f64",
    "winograd_output_f16",
    "winograd_output_bf16",
    "winograd_output_f32",
    "winograd_output_f64",
    "winograd_grad_f16",
    "winograd_grad_bf16",
    "winograd_grad_f32",
    "winograd_grad_f64",
    "winograd_filter_grad_f16",
    "winograd_filter_grad_bf16",
    "winograd_filter_grad_f32",
    "winograd_filter_grad_f64",
    "gemm_pointers_f16",
    "gemm_pointers_bf16",
    "gemm_pointers_f32",
    "gemm_pointers_f64",
    "implicit_fwd_f16",
    "implicit_fwd_bf16",
    "implicit_fwd_f32",
    "implicit_fwd_f64",
    "implicit_wgrad_f16",
    "implicit_wgrad_bf16",
    "implicit_wgrad_f32",
    "implicit_wgrad_f64",
    "implicit_wgrad_few_f16",
    "implicit_wgrad_few_bf16",
    "implicit_wgrad_few_f32",
    "implicit_wgrad_few_f64",
    "implicit_wgrad_k128_f16",
    "implicit_wgrad_k128_bf16",
    "implicit_wgrad_k128_f32",
    "implicit_wgrad_k128_f64",
    "stem_fwd_f16",
    "stem_fwd_bf16",
    "stem_fwd_f32",
    "stem_fwd_f64",
];

/// Largest block size a kernel may be launched with (`HC_MAX_BLOCK` in `common.h`).
pub const MAX_BLOCK: u32 = 1024;

/// The entry point of `op` for tensors of `dtype`, e.g. `im2col_bf16`.
pub fn kernel_name(op: &str, dtype: DType) -> String {
    format!("{op}_{}", dtype.name())
}

/// Every embedded code object (empty when the library was built without hipcc).
pub fn code_objects() -> &'static [CodeObject] {
    generated::CODE_OBJECTS
}

/// The source text of one kernel file.
pub fn kernel_source(file: &str) -> Option<&'static str> {
    KERNEL_SOURCES
        .iter()
        .find(|(n, _)| *n == file)
        .map(|&(_, s)| s)
}

fn find_in<'a>(table: &'a [CodeObject], arch: &str) -> Option<&'a CodeObject> {
    let want = elf::processor(arch);
    table
        .iter()
        .find(|o| !o.override_safe && elf::processor(o.arch) == want)
}

fn find_override_safe_in<'a>(table: &'a [CodeObject], real: &str) -> Option<&'a CodeObject> {
    let want = elf::processor(real);
    table
        .iter()
        .find(|o| o.override_safe && elf::processor(o.compiled_for) == want)
}

fn select_in<'a>(table: &'a [CodeObject], reported: &str, real: &str) -> Option<&'a CodeObject> {
    let (reported, real) = (elf::processor(reported), elf::processor(real));
    if is_rdna1(real) {
        match reported {
            r if r == real => find_in(table, real),
            OVERRIDE_ARCH => find_override_safe_in(table, real),
            // any other label would put another chip's code on RDNA1 silicon
            _ => None,
        }
    } else {
        find_in(table, reported)
    }
}

/// Whether `arch` (a processor or target id) is an RDNA1 chip with an override-safe copy.
pub fn is_rdna1(arch: &str) -> bool {
    RDNA1_ARCHS.contains(&elf::processor(arch))
}

/// The object compiled for `arch` and labelled as such (features after `:` are ignored).
pub fn find(arch: &str) -> Option<&'static CodeObject> {
    find_in(code_objects(), arch)
}

/// The override-safe copy of the code compiled for the RDNA1 chip `real` (labelled gfx1030).
pub fn find_override_safe(real: &str) -> Option<&'static CodeObject> {
    find_override_safe_in(code_objects(), real)
}

/// The object to load when the runtime reports `reported` and the silicon is `real`
/// (pass `reported` twice when the real chip is unknown):
/// - RDNA1 silicon reported as itself: its own code;
/// - RDNA1 silicon reported as gfx1030 (the override): the override-safe copy of its code;
/// - RDNA1 silicon reported as anything else: none (no label is safe);
/// - any other silicon: the object compiled for what the runtime reports.
pub fn select(reported: &str, real: &str) -> Option<&'static CodeObject> {
    select_in(code_objects(), reported, real)
}

/// Like [`select`], with an error that says what is missing.
pub fn select_or_err(reported: &str, real: &str) -> Result<&'static CodeObject> {
    select(reported, real).ok_or_else(|| {
        let hint = if code_objects().is_empty() {
            format!("this build has no GPU code ({BUILD_NOTE})")
        } else if is_rdna1(real) && elf::processor(reported) != elf::processor(real) {
            format!(
                "the runtime reports {reported} on {real} silicon; only {real} itself or \
                 {OVERRIDE_ARCH} (HSA_OVERRIDE_GFX_VERSION=10.3.0) can be served"
            )
        } else {
            format!(
                "built for {}; rebuild with HIPCONV_OFFLOAD_ARCH including {reported}",
                OFFLOAD_ARCHS.join(",")
            )
        };
        Error::NoKernelForArch {
            arch: reported.to_string(),
            hint,
        }
    })
}

/// A whole tensor in the fixed form kernels take by value (`KernelTensor` in `common.h`):
/// dims and element strides in (n, c, s0, s1, s2) order, spatial axes front-padded with
/// size 1 / stride 0, so the packed (row-major) index order is the descriptor's.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelTensor {
    pub dims: [i64; 5],
    pub strides: [i64; 5],
}

impl KernelTensor {
    /// The fixed form of a descriptor with 1 to 3 spatial dims.
    pub fn of(d: &TensorDesc) -> Result<Self> {
        let (dims, strides) = (d.dims(), d.strides());
        if !(3..=5).contains(&dims.len()) {
            return Err(Error::unsupported(format!(
                "{} spatial dims in a kernel tensor (1 to 3 supported)",
                dims.len().saturating_sub(2)
            )));
        }
        let mut out = KernelTensor {
            dims: [1; 5],
            strides: [0; 5],
        };
        let pad = 5 - dims.len();
        for (i, (&n, &s)) in dims.iter().zip(strides).enumerate() {
            let at = if i < 2 { i } else { i + pad };
            out.dims[at] = n as i64;
            out.strides[at] = s as i64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{KernelGeom, KernelStrides};

    fn obj(arch: &'static str, compiled_for: &'static str) -> CodeObject {
        CodeObject {
            arch,
            compiled_for,
            override_safe: arch != compiled_for,
            bytes: &[],
        }
    }

    #[test]
    fn names_are_ops_times_dtypes() {
        let mut want = Vec::new();
        for op in KERNEL_OPS {
            for d in DType::ALL {
                want.push(kernel_name(op, d));
            }
        }
        assert_eq!(KERNEL_NAMES, want.as_slice());
    }

    #[test]
    fn selection_never_crosses_silicon() {
        let table = [
            obj("gfx1010", "gfx1010"),
            obj("gfx1012", "gfx1012"),
            obj("gfx1030", "gfx1030"),
            obj("gfx1030", "gfx1010"),
            obj("gfx1030", "gfx1012"),
        ];
        let pick = |rep, real| select_in(&table, rep, real).map(|o| (o.arch, o.compiled_for));
        assert_eq!(pick("gfx1010", "gfx1010"), Some(("gfx1010", "gfx1010")));
        assert_eq!(pick("gfx1030", "gfx1010"), Some(("gfx1030", "gfx1010")));
        assert_eq!(pick("gfx1030", "gfx1012"), Some(("gfx1030", "gfx1012")));
        assert_eq!(pick("gfx1030", "gfx1030"), Some(("gfx1030", "gfx1030")));
        assert_eq!(
            pick("gfx1030:xnack-", "gfx1010:xnack-"),
            Some(("gfx1030", "gfx1010"))
        );
        // no override-safe copy of gfx1011 in this table, and no other label is safe on RDNA1
        assert_eq!(pick("gfx1030", "gfx1011"), None);
        assert_eq!(pick("gfx1012", "gfx1010"), None);
        assert_eq!(pick("gfx1100", "gfx1100"), None);
        assert_eq!(find_in(&table, "gfx1030").unwrap().compiled_for, "gfx1030");
        assert_eq!(
            find_override_safe_in(&table, "gfx1012").unwrap().arch,
            "gfx1030"
        );
    }

    #[test]
    fn embedded_objects_are_consistent() {
        for o in code_objects() {
            assert_eq!(
                o.bytes.as_ptr() as usize % 4096,
                0,
                "{} not aligned",
                o.arch
            );
            assert_eq!(o.override_safe, o.arch != o.compiled_for);
            if o.override_safe {
                assert_eq!(o.arch, OVERRIDE_ARCH);
                assert!(is_rdna1(o.compiled_for));
            }
        }
        assert!(!OFFLOAD_ARCHS.is_empty());
        assert!(!BUILD_NOTE.is_empty());
    }

    #[test]
    fn sources_are_exported() {
        let main = kernel_source(KERNEL_MAIN_SOURCE).unwrap();
        for (name, text) in KERNEL_SOURCES {
            assert!(!text.is_empty());
            if name.ends_with(".hip") && *name != KERNEL_MAIN_SOURCE {
                assert!(
                    main.contains(&format!("#include \"{name}\"")),
                    "{name} not in all.hip"
                );
                assert!(text.contains("#include \"common.h\""));
            }
        }
        assert!(kernel_source("common.h").is_some());
    }

    /// Fields of a `struct <name> { ... };` in common.h as (name, array length).
    fn c_fields(name: &str) -> Vec<(String, usize)> {
        let src = kernel_source("common.h").unwrap();
        let body = src.split(&format!("struct {name} {{")).nth(1).unwrap();
        let body = body.split("};").next().unwrap();
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(|l| {
                let decl = l.strip_prefix("hc_i64 ").expect("all fields are hc_i64");
                let decl = decl.trim_end_matches(';');
                match decl.split_once('[') {
                    Some((n, len)) => (n.to_string(), len.trim_end_matches(']').parse().unwrap()),
                    None => (decl.to_string(), 1),
                }
            })
            .collect()
    }

    fn fields(list: &[(&str, usize)]) -> Vec<(String, usize)> {
        list.iter().map(|&(n, l)| (n.to_string(), l)).collect()
    }

    #[test]
    fn header_structs_match_rust_layouts() {
        let geom = [
            ("n", 1),
            ("c", 1),
            ("k", 1),
            ("groups", 1),
            ("c_per_group", 1),
            ("k_per_group", 1),
            ("input", 3),
            ("kernel", 3),
            ("output", 3),
            ("pad", 3),
            ("stride", 3),
            ("dilation", 3),
            ("input_len", 1),
            ("kernel_len", 1),
            ("output_len", 1),
        ];
        assert_eq!(c_fields("KernelGeom"), fields(&geom));
        let count: usize = geom.iter().map(|f| f.1).sum();
        assert_eq!(std::mem::size_of::<KernelGeom>(), count * 8);
        // spot-check the Rust order through a value
        let g = KernelGeom {
            input: [7, 8, 9],
            output_len: 42,
            ..Default::default()
        };
        // SAFETY: KernelGeom is repr(C) and made of i64 only.
        let words: &[i64; 27] = unsafe { &*(&g as *const KernelGeom as *const [i64; 27]) };
        assert_eq!((words[6], words[8], words[26]), (7, 9, 42));

        assert_eq!(
            c_fields("KernelStrides"),
            fields(&[("n", 1), ("c", 1), ("spatial", 3)])
        );
        assert_eq!(
            c_fields("BatchOperand"),
            fields(&[("base", 1), ("outer", 1), ("inner", 1)])
        );
        assert_eq!(
            std::mem::size_of::<crate::backend::kernel_ops::BatchOperand>(),
            3 * 8
        );
        assert_eq!(std::mem::size_of::<KernelStrides>(), 5 * 8);
        assert_eq!(
            c_fields("KernelTensor"),
            fields(&[("dims", 5), ("strides", 5)])
        );
        assert_eq!(std::mem::size_of::<KernelTensor>(), 10 * 8);
    }

    #[test]
    fn kernel_tensor_front_pads_spatial_axes() {
        let d = TensorDesc::packed_channels_last(DType::F16, &[2, 3, 4, 5]).unwrap();
        let t = KernelTensor::of(&d).unwrap();
        assert_eq!(t.dims, [2, 3, 1, 4, 5]);
        assert_eq!(t.strides, [60, 1, 0, 15, 3]);
        let d = TensorDesc::packed(DType::F32, &[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(KernelTensor::of(&d).unwrap().dims, [1, 2, 3, 4, 5]);
        let d = TensorDesc::packed(DType::F32, &[1, 2, 3, 4, 5, 6]).unwrap();
        assert!(KernelTensor::of(&d).is_err());
    }
}
