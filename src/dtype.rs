//! Element types: the storage types hipconv accepts and the compute type each one uses.

use half::{bf16, f16};
use serde::Serialize;

/// The storage type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
}

impl DType {
    /// All supported types, narrowest first.
    pub const ALL: [DType; 4] = [DType::F16, DType::BF16, DType::F32, DType::F64];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The type arithmetic runs in: f64 for f64, f32 for everything else.
    pub fn compute(self) -> DType {
        match self {
            DType::F64 => DType::F64,
            _ => DType::F32,
        }
    }

    /// Lower-case name as used on the command line and in kernel names.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// Parses [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A storage element: converts to and from the two compute types.
pub trait Element: Copy + Send + Sync + 'static + std::fmt::Debug {
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Widens to f32 (exact for f16/bf16/f32).
    fn to_f32(self) -> f32;
    /// Widens to f64 (exact for every element type).
    fn to_f64(self) -> f64;
    /// Rounds from f32 to nearest.
    fn from_f32(v: f32) -> Self;
    /// Rounds from f64 to nearest.
    fn from_f64(v: f64) -> Self;
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// An element a tile (column matrix, gathered block, packed weights) can hold: a compute type,
/// or a 16-bit storage type kept as it is for GEMMs that take half operands.
pub trait TileElement: Element {
    /// The additive identity (all-zero bits in every type).
    const ZERO: Self;
    /// Converts any element into this type (exact from itself and from narrower types).
    fn from_elem<T: Element>(v: T) -> Self;
}

/// A compute type: a [`TileElement`] with arithmetic, used for GEMM and accumulation.
pub trait Compute:
    TileElement
    + Default
    + PartialEq
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
{
    /// The multiplicative identity.
    const ONE: Self;
    /// Rounds this value into any element type.
    fn to_elem<T: Element>(self) -> T;
}

impl TileElement for f16 {
    const ZERO: Self = f16::ZERO;
    fn from_elem<T: Element>(v: T) -> Self {
        f16::from_f64(v.to_f64())
    }
}

impl TileElement for bf16 {
    const ZERO: Self = bf16::ZERO;
    fn from_elem<T: Element>(v: T) -> Self {
        bf16::from_f64(v.to_f64())
    }
}

impl TileElement for f32 {
    const ZERO: Self = 0.0;
    fn from_elem<T: Element>(v: T) -> Self {
        v.to_f32()
    }
}

impl TileElement for f64 {
    const ZERO: Self = 0.0;
    fn from_elem<T: Element>(v: T) -> Self {
        v.to_f64()
    }
}

impl Compute for f32 {
    const ONE: Self = 1.0;
    fn to_elem<T: Element>(self) -> T {
        T::from_f32(self)
    }
}

impl Compute for f64 {
    const ONE: Self = 1.0;
    fn to_elem<T: Element>(self) -> T {
        T::from_f64(self)
    }
}
