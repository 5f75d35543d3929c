//! # hipconv
//!
//! Convolutions for AMD GPUs whose MIOpen crashes (RDNA1 under `HSA_OVERRIDE_GFX_VERSION`),
//! built from im2col/col2im kernels and a vendor GEMM, with a CPU backend that doubles as the
//! numeric reference's partner and the default when no GPU is present.
//!
//! A [`ConvProblem`] (tensor + convolution descriptors) becomes a [`ConvPlan`] (path, tiles,
//! workspace), which a backend executes. The Rust API wraps all of it:
//!
//! ```
//! use hipconv::{Conv, ConvDesc, ConvProblem, DType, TensorDesc};
//!
//! // N=1, C=3, 8×8 input; K=4 filters of 3×3; padding 1, stride 1, dilation 1.
//! let x = TensorDesc::packed(DType::F32, &[1, 3, 8, 8])?;
//! let w = TensorDesc::packed(DType::F32, &[4, 3, 3, 3])?;
//! let problem = ConvProblem::forward_packed(x, w, ConvDesc::uniform(2, 1, 1, 1)?)?;
//! assert_eq!(problem.y().dims(), &[1, 4, 8, 8]);
//!
//! let conv = Conv::new(problem).with_workspace_budget(1 << 20);
//! let x = vec![1.0f32; 3 * 8 * 8];
//! let w = vec![0.5f32; 4 * 3 * 3 * 3];
//! let mut y = vec![0.0f32; 4 * 8 * 8];
//! conv.forward(&x, &w, &mut y)?;
//! assert_eq!(y[9], 13.5); // an interior pixel: 27 taps × 0.5
//! # Ok::<(), hipconv::Error>(())
//! ```

pub mod backend;
pub mod dtype;
pub mod error;
pub mod exec;
pub mod ffi;
pub mod host;
pub mod kernels;
pub mod plan;
pub mod problem;
pub mod reference;
pub mod subgrid;
pub mod suite;
pub mod verify;
pub mod winograd;

mod api;

pub use api::{Conv, Scale};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use plan::ConvPlan;
pub use problem::{ConvDesc, ConvProblem, Direction, Layout, TensorDesc};
