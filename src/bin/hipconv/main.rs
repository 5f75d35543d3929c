//! `hipconv`: verify, benchmark and inspect the convolution engine, and switch it on for
//! PyTorch (`run`, `env`, `install`, `uninstall`).

mod preload;
mod table;
mod torch;

use clap::{Parser, Subcommand, ValueEnum};
use hipconv::backend::cuda::CudaDevice;
use hipconv::plan::DEFAULT_WORKSPACE_BUDGET;
use hipconv::suite::{self, SuiteCase};
use hipconv::verify::{BenchRecord, Target, VerifyRecord, bench_case, verify_case};
use hipconv::{DType, Direction};
use indicatif::{ProgressBar, ProgressStyle};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hipconv",
    version,
    about = "Convolutions for GPUs whose MIOpen crashes: verify, benchmark, inspect, and switch \
             them on for PyTorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum BackendArg {
    /// The best available backend (the CPU when no GPU backend is present).
    Auto,
    /// The CPU backend.
    Cpu,
    /// The NVIDIA platform (CUDA driver + NVRTC + cuBLAS), running the HIP kernel sources.
    Cuda,
    /// The AMD platform (HIP runtime + rocBLAS, the embedded code object for the real chip).
    Hip,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum SuiteArg {
    /// The anchor layers (ResNet-50, MobileNet depthwise, dilated, grouped).
    Anchors,
    /// The verification suite (anchors at batch 1 plus 1-D, 3-D, transposed, NHWC, all dtypes).
    Verify,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum DirectionArg {
    All,
    Fwd,
    BwdData,
    BwdW,
}

#[derive(clap::Args)]
struct Common {
    /// Backend to run on.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Run every case in this dtype (f16, bf16, f32, f64) instead of its own.
    #[arg(long, value_parser = parse_dtype)]
    dtype: Option<DType>,
    /// Only cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Which directions to run.
    #[arg(long, value_enum, default_value = "all")]
    direction: DirectionArg,
    /// Workspace budget in bytes (plans tile to stay within it).
    #[arg(long, default_value_t = DEFAULT_WORKSPACE_BUDGET)]
    workspace: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in suite, compare every result with the f64 reference, exit non-zero on
    /// any failure.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// Time the anchor suite (median of --repeats runs per layer and direction).
    Bench {
        #[command(flatten)]
        common: Common,
        /// Which suite to time.
        #[arg(long, value_enum, default_value = "anchors")]
        suite: SuiteArg,
        /// Batch size of the anchor layers.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Timed runs per layer and direction.
        #[arg(long, default_value_t = 7)]
        repeats: usize,
    },
    /// Report what this build and machine provide: backends, embedded kernels, environment,
    /// and whether this Python's torch gets hipconv.
    Doctor {
        #[command(flatten)]
        torch: TorchArgs,
    },
    /// Run a command with hipconv loaded in front of its MIOpen (LD_PRELOAD), e.g.
    /// `hipconv run -- python train.py`; exits with the command's status.
    Run {
        /// Set HIPCONV_BACKEND for the command.
        #[arg(long, value_enum)]
        backend: Option<FfiBackendArg>,
        /// Set HIPCONV_LOG for the command (1: one line per convolution; 2: every call).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=2))]
        log: Option<u32>,
        /// The torch package whose lib/libMIOpen.so hipconv forwards to (default: the one the
        /// command's Python, or python3, would import; HIPCONV_REAL_MIOPEN, if set, wins).
        #[arg(long, value_name = "PATH")]
        torch: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<OsString>,
    },
    /// Print `export` lines that load hipconv in this shell: `eval "$(hipconv env)"`.
    Env {
        #[command(flatten)]
        torch: TorchArgs,
    },
    /// Install hipconv as torch/lib/libMIOpen.so, keeping the original beside it (forwarded
    /// to for everything but convolutions) and checking that the result loads.
    Install {
        #[command(flatten)]
        torch: TorchArgs,
    },
    /// Put the original torch/lib/libMIOpen.so back (after checking its checksum).
    Uninstall {
        #[command(flatten)]
        torch: TorchArgs,
    },
    /// Load a MIOpen library and print its version (used by `install` to check its work in a
    /// separate process).
    #[command(hide = true)]
    ProbeMiopen { path: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum FfiBackendArg {
    /// A GPU when one is present, else pass convolutions to the real MIOpen.
    Auto,
    /// The CPU backend (host pointers only: for tests).
    Cpu,
    /// The AMD backend.
    Hip,
    /// The NVIDIA backend.
    Cuda,
}

impl FfiBackendArg {
    fn name(self) -> &'static str {
        match self {
            FfiBackendArg::Auto => "auto",
            FfiBackendArg::Cpu => "cpu",
            FfiBackendArg::Hip => "hip",
            FfiBackendArg::Cuda => "cuda",
        }
    }
}

#[derive(clap::Args)]
struct TorchArgs {
    /// The torch package directory (the one holding lib/libMIOpen.so); default: ask Python.
    #[arg(long, value_name = "PATH")]
    torch: Option<PathBuf>,
    /// The Python whose `import torch` is meant.
    #[arg(long, default_value = "python3")]
    python: String,
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    DType::from_name(s).ok_or_else(|| format!("unknown dtype {s} (f16, bf16, f32, f64)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify { common } => run_verify(&common),
        Command::Bench {
            common,
            suite,
            batch,
            repeats,
        } => run_bench(&common, suite, batch, repeats),
        Command::Doctor { torch } => {
            doctor(&torch);
            Ok(true)
        }
        Command::Run {
            backend,
            log,
            torch,
            command,
        } => {
            let opts = preload::RunOptions {
                backend: backend.map(FfiBackendArg::name),
                log,
                torch: torch.as_deref(),
            };
            return preload::run(&command, &opts);
        }
        Command::Env { torch } => return env(&torch),
        Command::Install { torch } => return install(&torch),
        Command::Uninstall { torch } => return uninstall(&torch),
        Command::ProbeMiopen { path } => {
            return match torch::probe_main(&path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hipconv probe: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hipconv: {e}");
            ExitCode::from(2)
        }
    }
}

fn target(arg: BackendArg) -> hipconv::Result<Target> {
    match arg {
        BackendArg::Auto => Ok(Target::best()),
        BackendArg::Cpu => Ok(Target::Cpu),
        BackendArg::Cuda => Ok(Target::Cuda(CudaDevice::get(0)?)),
        BackendArg::Hip => Ok(Target::Hip(hipconv::backend::hip::HipDevice::get(0)?)),
    }
}

fn select(cases: Vec<SuiteCase>, common: &Common) -> Vec<SuiteCase> {
    cases
        .into_iter()
        .filter(|c| {
            common
                .filter
                .as_ref()
                .is_none_or(|f| c.name.contains(f.as_str()))
        })
        .map(|mut c| {
            if let Some(dt) = common.dtype {
                c.problem = c.problem.with_dtype(dt);
            }
            c
        })
        .collect()
}

fn directions(case: &SuiteCase, arg: DirectionArg) -> Vec<Direction> {
    let all = suite::directions(case);
    let keep = |d: Direction| match arg {
        DirectionArg::All => true,
        DirectionArg::Fwd => d == Direction::Forward,
        DirectionArg::BwdData => d == Direction::BackwardData,
        DirectionArg::BwdW => d == Direction::BackwardWeights,
    };
    all.into_iter().filter(|&d| keep(d)).collect()
}

fn progress(len: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Every (case, direction) pair to run, in suite order.
fn jobs(cases: &[SuiteCase], arg: DirectionArg) -> Vec<(&SuiteCase, Direction)> {
    cases
        .iter()
        .flat_map(|c| directions(c, arg).into_iter().map(move |d| (c, d)))
        .collect()
}

fn run_verify(common: &Common) -> hipconv::Result<bool> {
    let target = target(common.backend)?;
    let cases = select(suite::verify_suite()?, common);
    let jobs = jobs(&cases, common.direction);
    let bar = progress(jobs.len(), common.json);
    let mut records: Vec<VerifyRecord> = Vec::new();
    for (i, (case, dir)) in jobs.iter().enumerate() {
        bar.set_message(format!(
            "{} {} {}",
            case.name,
            dir.name(),
            case.problem.dtype()
        ));
        records.push(verify_case(
            target,
            case,
            *dir,
            common.workspace,
            1000 + i as u64,
        )?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let failed = records.iter().filter(|r| !r.passed).count();
    if common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&records).unwrap_or_default()
        );
    } else {
        println!(
            "hipconv verify: backend {}, workspace budget {} bytes",
            target.name(),
            common.workspace
        );
        table::print_verify(&records);
        println!("{} passed, {} failed", records.len() - failed, failed);
    }
    Ok(failed == 0 && !records.is_empty())
}

fn run_bench(
    common: &Common,
    suite_arg: SuiteArg,
    batch: usize,
    repeats: usize,
) -> hipconv::Result<bool> {
    let target = target(common.backend)?;
    let dtype = common.dtype.unwrap_or(DType::F32);
    let cases = match suite_arg {
        SuiteArg::Anchors => suite::anchors(batch, dtype, false)?,
        SuiteArg::Verify => suite::verify_suite()?,
    };
    let cases = select(cases, common);
    let jobs = jobs(&cases, common.direction);
    let bar = progress(jobs.len(), common.json);
    let mut records: Vec<BenchRecord> = Vec::new();
    for (case, dir) in jobs {
        bar.set_message(format!("{} {}", case.name, dir.name()));
        records.push(bench_case(target, case, dir, common.workspace, repeats)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&records).unwrap_or_default()
        );
    } else {
        println!(
            "hipconv bench: backend {}, batch {batch}, median of {repeats}",
            target.name()
        );
        table::print_bench(&records);
    }
    Ok(true)
}

fn env(args: &TorchArgs) -> ExitCode {
    match preload::env_lines(args.torch.as_deref(), args.python.as_ref()) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hipconv env: {e}");
            ExitCode::FAILURE
        }
    }
}

fn install(args: &TorchArgs) -> ExitCode {
    let done = preload::find_lib().and_then(|lib| {
        let layout = torch::locate(args.torch.as_deref(), &args.python)?;
        torch::install(&layout, &lib)
    });
    match done {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hipconv install: {e}");
            ExitCode::FAILURE
        }
    }
}

fn uninstall(args: &TorchArgs) -> ExitCode {
    let done = torch::locate(args.torch.as_deref(), &args.python)
        .and_then(|layout| torch::uninstall(&layout));
    match done {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hipconv uninstall: {e}");
            ExitCode::FAILURE
        }
    }
}

fn doctor(args: &TorchArgs) {
    println!("hipconv {}", env!("CARGO_PKG_VERSION"));
    println!("  ✓ cpu backend: {} threads", rayon::current_num_threads());
    match CudaDevice::get(0) {
        Ok(d) => println!(
            "  ✓ cuda backend: {} (sm_{}{}), kernels compiled by NVRTC",
            d.name(),
            d.arch().0,
            d.arch().1
        ),
        Err(e) => println!("  ✗ cuda backend: {e}"),
    }
    let objects = hipconv::kernels::code_objects();
    if objects.is_empty() {
        println!(
            "  ✗ AMD code objects: none embedded ({})",
            hipconv::kernels::BUILD_NOTE
        );
    } else {
        let names: Vec<String> = objects
            .iter()
            .map(|o| {
                if o.override_safe {
                    format!("{}←{}", o.arch, o.compiled_for)
                } else {
                    o.arch.to_string()
                }
            })
            .collect();
        println!("  ✓ AMD code objects: {}", names.join(", "));
    }
    for (ok, line) in hipconv::backend::hip::doctor_lines() {
        println!("  {} {line}", if ok { "✓" } else { "✗" });
    }
    println!("PyTorch:");
    for (ok, line) in torch::doctor_lines(args.torch.as_deref(), &args.python) {
        println!("  {} {line}", if ok { "✓" } else { "✗" });
    }
}
