//! `hipconv run` and `hipconv env`: loading hipconv in front of a program's MIOpen with
//! `LD_PRELOAD` (preload mode), without touching any installed file.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The file name of hipconv's C library.
pub const LIB_NAME: &str = "libhipconv.so";
/// Environment variable naming the library explicitly.
pub const LIB_ENV: &str = "HIPCONV_LIB";
/// Environment variable naming the MIOpen a preloaded hipconv forwards to.
pub const REAL_ENV: &str = "HIPCONV_REAL_MIOPEN";

/// torch's MIOpen (of `torch`, or of the torch `python` would import), for a preloaded
/// hipconv to forward to: `lib/libMIOpen.so`, or the original kept beside it when
/// `hipconv install` has put hipconv there (a hipconv told to forward to itself would serve
/// alone).
///
/// hipconv decides how it runs when it is loaded. A program linked to MIOpen has it loaded by
/// then, and hipconv finds it as the next library in the search order; Python loads torch (and
/// its MIOpen) only later, at `import torch`, so hipconv has to be told where that MIOpen is,
/// or it would serve every MIOpen function alone (batch norm and RNN would fail).
pub fn torch_miopen(torch: Option<&Path>, python: &OsStr) -> Option<PathBuf> {
    let dir = match torch {
        Some(t) => t.to_path_buf(),
        None => super::torch::find_torch_quickly(python)?,
    };
    let layout = super::torch::Layout::new(&dir);
    if layout.original.is_file() && super::torch::installed_by_size(&layout) {
        return Some(layout.original);
    }
    layout.miopen.is_file().then_some(layout.miopen)
}

/// The Python of a command: its program when that is a Python interpreter, else `python3`.
pub fn interpreter(command: &[OsString]) -> OsString {
    command
        .first()
        .filter(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python"))
        })
        .cloned()
        .unwrap_or_else(|| OsString::from("python3"))
}

/// Where the library may be, in order: next to the executable, in `../lib`, then in the cargo
/// profile directories of the current directory (`target/release`, `target/debug`).
pub fn candidates(exe_dir: Option<&Path>, cwd: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = exe_dir {
        out.push(dir.join(LIB_NAME));
        out.push(dir.join("../lib").join(LIB_NAME));
    }
    if let Some(cwd) = cwd {
        for profile in ["release", "debug"] {
            out.push(cwd.join("target").join(profile).join(LIB_NAME));
        }
    }
    out
}

/// The library to preload: `HIPCONV_LIB`, else the first of [`candidates`] that exists, as an
/// absolute path.
pub fn find_lib() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(LIB_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return std::fs::canonicalize(&path)
            .ok()
            .filter(|p| p.is_file())
            .ok_or_else(|| format!("{LIB_ENV}={} is not a file", path.display()));
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let cwd = std::env::current_dir().ok();
    let places = candidates(exe_dir.as_deref(), cwd.as_deref());
    places
        .iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| {
            let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
            format!(
                "cannot find {LIB_NAME} (looked in {}); build it with `cargo build --release` \
                 or set {LIB_ENV} to its path",
                looked.join(", ")
            )
        })
}

/// The entries of an `LD_PRELOAD` value (the loader splits on colons and whitespace).
pub fn entries(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ':' || c.is_whitespace())
        .filter(|e| !e.is_empty())
}

/// `LD_PRELOAD` with `lib` first, keeping every other entry of `existing` (a previous copy of
/// `lib` is not repeated).
pub fn preload_value(lib: &Path, existing: Option<&str>) -> String {
    let lib = lib.to_string_lossy();
    let mut out = vec![lib.as_ref()];
    out.extend(entries(existing.unwrap_or("")).filter(|e| *e != lib));
    out.join(":")
}

/// The first `LD_PRELOAD` entry that is a hipconv library, if any.
pub fn hipconv_entry(value: &str) -> Option<&str> {
    entries(value).find(|e| {
        Path::new(e)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libhipconv"))
    })
}

/// Quotes `value` for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:,+=@%".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The lines `hipconv env` prints: `export` statements for `eval`. `HIPCONV_REAL_MIOPEN` is
/// added (see [`torch_miopen`]) unless it is set already.
pub fn env_lines(torch: Option<&Path>, python: &OsStr) -> Result<Vec<String>, String> {
    let lib = find_lib()?;
    let existing = std::env::var("LD_PRELOAD").ok();
    let mut lines = vec![format!(
        "export LD_PRELOAD={}",
        shell_quote(&preload_value(&lib, existing.as_deref()))
    )];
    if std::env::var_os(REAL_ENV).is_none()
        && let Some(real) = torch_miopen(torch, python)
    {
        lines.push(format!(
            "export {REAL_ENV}={}",
            shell_quote(&real.to_string_lossy())
        ));
    }
    if let Some(backend) = std::env::var("HIPCONV_BACKEND")
        .ok()
        .filter(|b| !b.is_empty())
    {
        lines.push(format!("export HIPCONV_BACKEND={}", shell_quote(&backend)));
    }
    Ok(lines)
}

/// How `hipconv run` sets up the command.
pub struct RunOptions<'a> {
    /// `HIPCONV_BACKEND` for the command.
    pub backend: Option<&'a str>,
    /// `HIPCONV_LOG` for the command.
    pub log: Option<u32>,
    /// The torch whose MIOpen hipconv forwards to (default: the command's Python's).
    pub torch: Option<&'a Path>,
}

/// Runs `command` with hipconv preloaded, replacing this process (so the exit status, signals
/// and the terminal are the command's). Unless `HIPCONV_REAL_MIOPEN` is set (even empty), it
/// points at torch's MIOpen ([`torch_miopen`]). Returns only when the command cannot start.
pub fn run(command: &[OsString], opts: &RunOptions) -> ExitCode {
    let lib = match find_lib() {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("hipconv run: {e}");
            return ExitCode::from(127);
        }
    };
    let Some((program, args)) = command.split_first() else {
        eprintln!("hipconv run: no command given (usage: hipconv run -- COMMAND [ARGS…])");
        return ExitCode::from(2);
    };
    let existing = std::env::var("LD_PRELOAD").ok();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LD_PRELOAD", preload_value(&lib, existing.as_deref()));
    if std::env::var_os(REAL_ENV).is_none()
        && let Some(real) = torch_miopen(opts.torch, &interpreter(command))
    {
        cmd.env(REAL_ENV, real);
    }
    if let Some(backend) = opts.backend {
        cmd.env("HIPCONV_BACKEND", backend);
    }
    if let Some(level) = opts.log {
        cmd.env("HIPCONV_LOG", level.to_string());
    }
    let err = cmd.exec();
    eprintln!(
        "hipconv run: cannot run {}: {err}",
        program.to_string_lossy()
    );
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_value_prepends_and_keeps_the_rest() {
        let lib = Path::new("/opt/hipconv/libhipconv.so");
        assert_eq!(preload_value(lib, None), "/opt/hipconv/libhipconv.so");
        assert_eq!(preload_value(lib, Some("")), "/opt/hipconv/libhipconv.so");
        assert_eq!(
            preload_value(lib, Some("/a/libx.so /b/liby.so")),
            "/opt/hipconv/libhipconv.so:/a/libx.so:/b/liby.so"
        );
        assert_eq!(
            preload_value(lib, Some("/a/libx.so:/opt/hipconv/libhipconv.so")),
            "/opt/hipconv/libhipconv.so:/a/libx.so"
        );
    }

    #[test]
    fn finds_hipconv_entries() {
        assert_eq!(
            hipconv_entry("/a/libx.so:/b/libhipconv.so"),
            Some("/b/libhipconv.so")
        );
        assert_eq!(hipconv_entry("/a/libx.so"), None);
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("/a/b.so:/c.so"), "/a/b.so:/c.so");
        assert_eq!(shell_quote("/a b/it's.so"), r"'/a b/it'\''s.so'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn python_commands_name_their_interpreter() {
        let cmd = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(interpreter(&cmd(&["python", "train.py"])), "python");
        assert_eq!(
            interpreter(&cmd(&["/venv/bin/python3.11", "-m", "x"])),
            "/venv/bin/python3.11"
        );
        assert_eq!(interpreter(&cmd(&["./launch.sh"])), "python3");
    }

    #[test]
    fn candidate_order() {
        let c = candidates(Some(Path::new("/x/bin")), Some(Path::new("/w")));
        let c: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            c,
            [
                "/x/bin/libhipconv.so",
                "/x/bin/../lib/libhipconv.so",
                "/w/target/release/libhipconv.so",
                "/w/target/debug/libhipconv.so"
            ]
        );
    }
}
