//! `hipconv install` / `uninstall` (replace mode, done safely) and the PyTorch part of
//! `hipconv doctor`.
//!
//! Install keeps the original `torch/lib/libMIOpen.so` beside it as
//! `libMIOpen.hipconv-orig.so` (the name hipconv's replace mode looks for), records both
//! checksums in `libMIOpen.hipconv.json`, and puts hipconv's library in place by writing a
//! temporary file in the same directory, syncing it and renaming it over the old one, so
//! `libMIOpen.so` is always either the original or a complete hipconv. The steps, in order:
//!
//! 1. `backup`: the original is copied to `libMIOpen.hipconv-orig.so` (checksum compared);
//! 2. `manifest`: the manifest is written;
//! 3. `copy`: hipconv is written to a temporary file; 4. `swap`: it is renamed over
//!    `libMIOpen.so`;
//! 5. `verify`: a child process loads the result, which must forward to the backup and answer
//!    `miopenGetVersion` with the original's version; on failure the original is put back.
//!
//! An interruption after any step leaves a working `libMIOpen.so`, and both `install` (which
//! resumes) and `uninstall` (which cleans up) handle every intermediate state. The test hook
//! `HIPCONV_TEST_FAIL_AFTER=<step>` stops the process right after that step (for `verify`: makes
//! the verification fail).

use super::preload;
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library PyTorch ROCm wheels load.
pub const MIOPEN: &str = "libMIOpen.so";
/// Where the original goes (the name replace mode looks for next to itself).
pub const ORIGINAL: &str = hipconv::ffi::forward::ORIGINAL_NAME;
/// The record of an installation.
pub const MANIFEST: &str = "libMIOpen.hipconv.json";
/// Test hook: stop after the named step.
pub const FAIL_ENV: &str = "HIPCONV_TEST_FAIL_AFTER";
/// What the Python interpreter prints to locate torch.
const TORCH_SCRIPT: &str = "import torch,os;print(os.path.dirname(torch.__file__))";
/// The same without importing torch.
const SPEC_SCRIPT: &str = "import importlib.util as u,os;s=u.find_spec('torch');\
                           print(os.path.dirname(s.origin) if s and s.origin else '')";

/// The files of one torch installation.
pub struct Layout {
    /// The torch package directory.
    pub torch: PathBuf,
    /// `torch/lib`.
    pub dir: PathBuf,
    /// `torch/lib/libMIOpen.so`.
    pub miopen: PathBuf,
    /// `torch/lib/libMIOpen.hipconv-orig.so`.
    pub original: PathBuf,
    /// `torch/lib/libMIOpen.hipconv.json`.
    pub manifest: PathBuf,
}

impl Layout {
    /// The layout of the torch package at `torch`.
    pub fn new(torch: &Path) -> Self {
        let dir = torch.join("lib");
        Layout {
            torch: torch.to_path_buf(),
            miopen: dir.join(MIOPEN),
            original: dir.join(ORIGINAL),
            manifest: dir.join(MANIFEST),
            dir,
        }
    }

    /// Temporary files this tool may leave behind when interrupted.
    fn temporaries(&self) -> Vec<PathBuf> {
        [MIOPEN, ORIGINAL, MANIFEST]
            .iter()
            .map(|name| self.dir.join(temp_name(name)))
            .collect()
    }
}

fn temp_name(name: &str) -> String {
    format!(".{name}.hipconv-tmp")
}

/// The torch package directory of `python`'s `import torch`.
pub fn find_torch(python: &str) -> Result<PathBuf, String> {
    let out = Command::new(python)
        .args(["-c", TORCH_SCRIPT])
        .output()
        .map_err(|e| format!("cannot run {python}: {e} (pass --torch PATH)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(format!(
            "{python} cannot import torch: {last} (pass --torch PATH or --python PYTHON)"
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text.lines().last().unwrap_or("").trim();
    if path.is_empty() {
        return Err(format!("{python} printed no torch directory"));
    }
    Ok(PathBuf::from(path))
}

/// The torch package directory `python` would import, found without importing it (fast: no
/// GPU runtime is loaded); `None` when Python or torch is missing.
pub fn find_torch_quickly(python: &OsStr) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", SPEC_SCRIPT])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text.lines().next_back()?.trim();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// The layout of `--torch PATH`, or of the torch `python` imports.
pub fn locate(torch: Option<&Path>, python: &str) -> Result<Layout, String> {
    let torch = match torch {
        Some(t) => t.to_path_buf(),
        None => find_torch(python)?,
    };
    Ok(Layout::new(&torch))
}

/// What one pass over a file tells.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it contains hipconv's marker (the original's file name, which hipconv's replace
    /// mode looks for and no MIOpen contains).
    pub hipconv: bool,
}

/// Hashes `path` and looks for hipconv's marker in the same pass.
pub fn inspect(path: &Path) -> std::io::Result<FileInfo> {
    let mut file = File::open(path)?;
    let needle = ORIGINAL.as_bytes();
    let finder = Finder::new(needle);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 8 << 20];
    // The last `needle.len() - 1` bytes of the previous chunk, to see markers across chunks.
    let mut carry: Vec<u8> = Vec::new();
    let (mut size, mut found) = (0u64, false);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        size += n as u64;
        if !found {
            let head = &chunk[..chunk.len().min(needle.len())];
            let mut seam = carry.clone();
            seam.extend_from_slice(head);
            found = finder.find(&seam).is_some() || finder.find(chunk).is_some();
            let keep = needle.len() - 1;
            if chunk.len() >= keep {
                carry = chunk[chunk.len() - keep..].to_vec();
            } else {
                carry.extend_from_slice(chunk);
                let excess = carry.len().saturating_sub(keep);
                carry.drain(..excess);
            }
        }
    }
    Ok(FileInfo {
        sha256: hex(&hasher.finalize()),
        size,
        hipconv: found,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `libMIOpen.hipconv.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The hipconv version that installed.
    pub hipconv_version: String,
    /// When (UTC, RFC 3339).
    pub installed_at: String,
    /// The backup's file name, next to the manifest.
    pub original_file: String,
    /// SHA-256 of the original `libMIOpen.so`.
    pub original_sha256: String,
    /// Its size in bytes.
    pub original_size: u64,
    /// What its `miopenGetVersion` answered, when it could be loaded.
    pub original_miopen_version: Option<String>,
    /// SHA-256 of the hipconv library installed as `libMIOpen.so`.
    pub installed_sha256: String,
    /// Its size in bytes.
    pub installed_size: u64,
    /// Where it was copied from.
    pub installed_from: String,
}

/// Whether `libMIOpen.so` looks like the hipconv the manifest records, judged by its size
/// alone (cheap: the original can be a gigabyte; `install` and `uninstall` use checksums).
pub fn installed_by_size(layout: &Layout) -> bool {
    let Ok(Some(m)) = read_manifest(layout) else {
        return false;
    };
    fs::metadata(&layout.miopen).is_ok_and(|md| md.len() == m.installed_size)
}

fn read_manifest(layout: &Layout) -> Result<Option<Manifest>, String> {
    match fs::read_to_string(&layout.manifest) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "{} is not a hipconv manifest ({e}); remove it only if you know where it came \
                 from",
                layout.manifest.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", layout.manifest.display())),
    }
}

/// Now as `YYYY-MM-DDThh:mm:ssZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_string(secs)
}

/// Seconds since 1970 as `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian calendar).
pub fn utc_string(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from a day count, with eras of 400 years starting on 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Stops the process after `step` when the test hook asks for it.
fn step(name: &str) {
    if std::env::var(FAIL_ENV).is_ok_and(|v| v == name) {
        eprintln!("hipconv: stopping after step {name} ({FAIL_ENV})");
        std::process::exit(99);
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies `src` to `dir/name` through a synced temporary file and a rename; the new file gets
/// `mode`. `after_write` names the step between writing and renaming.
fn copy_atomic(
    src: &Path,
    dir: &Path,
    name: &str,
    mode: u32,
    after_write: Option<&str>,
) -> std::io::Result<()> {
    let tmp = dir.join(temp_name(name));
    {
        let mut from = File::open(src)?;
        let mut to = File::create(&tmp)?;
        std::io::copy(&mut from, &mut to)?;
        to.set_permissions(fs::Permissions::from_mode(mode))?;
        to.sync_all()?;
    }
    if let Some(s) = after_write {
        step(s);
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Writes `bytes` to `dir/name` through a synced temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(temp_name(name));
    {
        let mut to = File::create(&tmp)?;
        to.write_all(bytes)?;
        to.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn remove_if_present(path: &Path) -> std::io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let path = path.display().to_string();
    let what = what.to_string();
    move |e| format!("{what} {path}: {e}")
}

/// Refuses directories that are read-only (by mode, even for root) or cannot be written.
fn check_writable(dir: &Path) -> Result<(), String> {
    let refuse = |why: String| {
        format!(
            "refusing: {} is not writable ({why}); nothing was changed. Install into a torch \
             you own (e.g. in a virtual environment), or use `hipconv run -- …`, which changes \
             no files",
            dir.display()
        )
    };
    let meta = fs::metadata(dir).map_err(io("cannot read", dir))?;
    let mode = meta.permissions().mode();
    if mode & 0o222 == 0 {
        return Err(refuse(format!("read-only, mode {:o}", mode & 0o7777)));
    }
    let probe = dir.join(".hipconv-write-test");
    File::create(&probe).map_err(|e| refuse(e.to_string()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Checks that `dir/libMIOpen.so` is a regular file in a torch `lib` directory.
fn check_layout(layout: &Layout) -> Result<(), String> {
    if !layout.dir.is_dir() {
        return Err(format!(
            "unexpected layout: {} is not a directory (is {} a torch installation?)",
            layout.dir.display(),
            layout.torch.display()
        ));
    }
    let meta = fs::symlink_metadata(&layout.miopen).map_err(|_| {
        format!(
            "unexpected layout: {} does not exist (is this a ROCm build of PyTorch?)",
            layout.miopen.display()
        )
    })?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "unexpected layout: {} is a symbolic link, as in a system ROCm installation; \
             `hipconv install` only replaces the copy inside a PyTorch wheel (use `hipconv run`)",
            layout.miopen.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "unexpected layout: {} is not a regular file",
            layout.miopen.display()
        ));
    }
    Ok(())
}

/// What a child process saw when it loaded a MIOpen library.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `miopenGetVersion`'s answer, `major.minor.patch`.
    pub version: String,
    /// hipconv's "forwarding to …" log line, when the library is hipconv forwarding.
    pub forwarding: Option<String>,
}

/// Loads `path` in a child process (`hipconv probe-miopen`) with hipconv's logging on and the
/// variables that would redirect it cleared.
pub fn probe(path: &Path) -> Result<Probe, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = Command::new(exe)
        .arg("probe-miopen")
        .arg(path)
        .env_remove("HIPCONV_REAL_MIOPEN")
        .env_remove("LD_PRELOAD")
        .env("HIPCONV_LOG", "1")
        .output()
        .map_err(|e| format!("cannot start the probe: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let version = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MIOpen "))
        .map(|v| v.trim().to_string());
    match version {
        Some(version) if out.status.success() => Ok(Probe {
            version,
            forwarding: stderr
                .lines()
                .find(|l| l.starts_with("hipconv: forwarding to "))
                .map(|l| l.trim_start_matches("hipconv: ").to_string()),
        }),
        _ => {
            let why = stderr
                .lines()
                .chain(stdout.lines())
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .to_string();
            Err(format!(
                "loading {} failed ({}): {why}",
                path.display(),
                out.status
            ))
        }
    }
}

/// The child side of [`probe`]: loads `path`, calls `miopenGetVersion`, prints `MIOpen x.y.z`.
pub fn probe_main(path: &Path) -> Result<(), String> {
    type GetVersion = unsafe extern "C" fn(*mut usize, *mut usize, *mut usize) -> i32;
    // SAFETY: loading a library runs its constructors; this process exists to do just that.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: `miopenGetVersion` has this C signature in every MIOpen and in hipconv.
    let get: libloading::Symbol<GetVersion> =
        unsafe { lib.get(b"miopenGetVersion\0") }.map_err(|e| e.to_string())?;
    let (mut major, mut minor, mut patch) = (0usize, 0usize, 0usize);
    // SAFETY: three valid out-pointers.
    let status = unsafe { get(&mut major, &mut minor, &mut patch) };
    if status != 0 {
        return Err(format!("miopenGetVersion returned status {status}"));
    }
    println!("MIOpen {major}.{minor}.{patch}");
    Ok(())
}

/// What `install` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// hipconv was put in place.
    Fresh,
    /// A different hipconv build replaced the installed one.
    Updated,
    /// The same hipconv was already installed.
    Already,
}

/// The state of a torch `lib` directory.
enum State {
    /// `libMIOpen.so` is hipconv, described by the manifest, with a good backup.
    Installed(Manifest),
    /// `libMIOpen.so` is not hipconv.
    Original,
}

/// Installs `lib` (hipconv's cdylib) as `layout.miopen`, printing what it does.
pub fn install(layout: &Layout, lib: &Path) -> Result<Installed, String> {
    check_layout(layout)?;
    let ours = inspect(lib).map_err(io("cannot read", lib))?;
    if !ours.hipconv {
        return Err(format!(
            "{} is not a hipconv library (no replace-mode marker)",
            lib.display()
        ));
    }
    let current = inspect(&layout.miopen).map_err(io("cannot read", &layout.miopen))?;
    let manifest = read_manifest(layout)?;
    let state = classify(layout, &current, manifest.as_ref(), &ours)?;
    if let State::Installed(m) = &state
        && current.sha256 == ours.sha256
    {
        println!(
            "hipconv {} is already installed in {} (since {}); nothing to do",
            m.hipconv_version,
            layout.dir.display(),
            m.installed_at
        );
        let line = verify(layout, m).map_err(|e| {
            format!("but the installed library fails to load: {e}; `hipconv uninstall` restores the original")
        })?;
        println!("verified: {line}");
        return Ok(Installed::Already);
    }
    check_writable(&layout.dir)?;
    for t in layout.temporaries() {
        remove_if_present(&t).map_err(io("cannot remove", &t))?;
    }
    let mode = fs::metadata(&layout.miopen)
        .map_err(io("cannot read", &layout.miopen))?
        .permissions()
        .mode()
        & 0o7777;
    let (manifest, outcome) = match state {
        State::Installed(m) => {
            println!(
                "updating hipconv in {} (installed {}, sha256 {} → {})",
                layout.dir.display(),
                m.installed_at,
                short(&m.installed_sha256),
                short(&ours.sha256)
            );
            (m, Installed::Updated)
        }
        State::Original => {
            if let Some(old) = &manifest {
                if old.original_sha256 == current.sha256 {
                    println!("resuming an interrupted installation");
                } else {
                    println!(
                        "replacing the backup of an earlier torch installation (its \
                         libMIOpen.so has changed since)"
                    );
                }
            }
            let version = match probe(&layout.miopen) {
                Ok(p) => p.version,
                Err(e) => {
                    return Err(format!(
                        "the original MIOpen does not load here, so hipconv could not forward \
                         to it: {e}; nothing was changed"
                    ));
                }
            };
            println!(
                "original: {} (MIOpen {version}, {} bytes, sha256 {})",
                layout.miopen.display(),
                current.size,
                short(&current.sha256)
            );
            copy_atomic(&layout.miopen, &layout.dir, ORIGINAL, mode, None)
                .map_err(io("cannot copy the original to", &layout.original))?;
            let copy = inspect(&layout.original).map_err(io("cannot read", &layout.original))?;
            if copy.sha256 != current.sha256 {
                let _ = fs::remove_file(&layout.original);
                return Err(format!(
                    "the copy {} does not match the original; nothing was changed",
                    layout.original.display()
                ));
            }
            println!("kept the original as {}", layout.original.display());
            step("backup");
            let m = Manifest {
                hipconv_version: String::new(),
                installed_at: String::new(),
                original_file: ORIGINAL.to_string(),
                original_sha256: current.sha256.clone(),
                original_size: current.size,
                original_miopen_version: Some(version),
                installed_sha256: String::new(),
                installed_size: 0,
                installed_from: String::new(),
            };
            (m, Installed::Fresh)
        }
    };
    let manifest = Manifest {
        hipconv_version: env!("CARGO_PKG_VERSION").to_string(),
        installed_at: utc_now(),
        installed_sha256: ours.sha256.clone(),
        installed_size: ours.size,
        installed_from: lib.display().to_string(),
        ..manifest
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n";
    write_atomic(&layout.dir, MANIFEST, json.as_bytes())
        .map_err(io("cannot write", &layout.manifest))?;
    step("manifest");
    copy_atomic(lib, &layout.dir, MIOPEN, mode, Some("copy"))
        .map_err(io("cannot install hipconv as", &layout.miopen))?;
    step("swap");
    match verify(layout, &manifest) {
        Ok(line) => {
            println!("installed {} as {}", lib.display(), layout.miopen.display());
            println!("verified: {line}");
            println!("undo with `hipconv uninstall`");
            Ok(outcome)
        }
        Err(e) => {
            let undo = restore(layout, &manifest);
            match undo {
                Ok(()) => Err(format!(
                    "the installed library failed verification: {e}; the original \
                     libMIOpen.so is back in place"
                )),
                Err(u) => Err(format!(
                    "the installed library failed verification: {e}; restoring the original \
                     also failed: {u}. hipconv (which forwards to {}) is still installed",
                    layout.original.display()
                )),
            }
        }
    }
}

/// Loads the installed library in a child process: it must forward to the backup and report
/// the original's version.
fn verify(layout: &Layout, manifest: &Manifest) -> Result<String, String> {
    if std::env::var(FAIL_ENV).is_ok_and(|v| v == "verify") {
        return Err(format!("verification made to fail ({FAIL_ENV}=verify)"));
    }
    let p = probe(&layout.miopen)?;
    let Some(line) = p.forwarding else {
        return Err("it did not find the original MIOpen next to it".to_string());
    };
    if !line.contains(ORIGINAL) {
        return Err(format!("it forwards elsewhere: {line}"));
    }
    if let Some(v) = &manifest.original_miopen_version
        && *v != p.version
    {
        return Err(format!(
            "miopenGetVersion answers {} instead of the original's {v}",
            p.version
        ));
    }
    Ok(format!(
        "it loads, answers miopenGetVersion ({}), {line}",
        p.version
    ))
}

/// Puts the backup back as `libMIOpen.so` (checksum checked before and after) and removes the
/// backup and the manifest.
fn restore(layout: &Layout, manifest: &Manifest) -> Result<(), String> {
    let backup = inspect(&layout.original).map_err(io("cannot read", &layout.original))?;
    if backup.sha256 != manifest.original_sha256 {
        return Err(format!(
            "the backup {} does not match the manifest (sha256 {}, expected {}); nothing was \
             changed",
            layout.original.display(),
            short(&backup.sha256),
            short(&manifest.original_sha256)
        ));
    }
    let mode = fs::metadata(&layout.original)
        .map_err(io("cannot read", &layout.original))?
        .permissions()
        .mode()
        & 0o7777;
    copy_atomic(&layout.original, &layout.dir, MIOPEN, mode, None)
        .map_err(io("cannot restore", &layout.miopen))?;
    let now = inspect(&layout.miopen).map_err(io("cannot read", &layout.miopen))?;
    if now.sha256 != manifest.original_sha256 {
        return Err(format!(
            "{} does not match the original after the copy; the backup {} is kept",
            layout.miopen.display(),
            layout.original.display()
        ));
    }
    fs::remove_file(&layout.original).map_err(io("cannot remove", &layout.original))?;
    fs::remove_file(&layout.manifest).map_err(io("cannot remove", &layout.manifest))?;
    sync_dir(&layout.dir).map_err(io("cannot sync", &layout.dir))
}

/// Decides whether `current` is an installed hipconv (with a manifest and a matching backup),
/// an original, or something to refuse.
fn classify(
    layout: &Layout,
    current: &FileInfo,
    manifest: Option<&Manifest>,
    ours: &FileInfo,
) -> Result<State, String> {
    let is_hipconv = current.hipconv || current.sha256 == ours.sha256;
    if !is_hipconv {
        return Ok(State::Original);
    }
    let Some(m) = manifest else {
        return Err(format!(
            "{} is already a hipconv library but there is no {MANIFEST}, so the original MIOpen \
             is unknown; reinstall torch to get it back (e.g. `pip install --force-reinstall \
             torch` from the same index), then run `hipconv install`",
            layout.miopen.display()
        ));
    };
    let backup = inspect(&layout.original).map_err(|e| {
        format!(
            "{} is hipconv but its backup {} cannot be read ({e}); reinstall torch",
            layout.miopen.display(),
            layout.original.display()
        )
    })?;
    if backup.sha256 != m.original_sha256 {
        return Err(format!(
            "the backup {} does not match {MANIFEST} (sha256 {}, expected {}); nothing was \
             changed",
            layout.original.display(),
            short(&backup.sha256),
            short(&m.original_sha256)
        ));
    }
    Ok(State::Installed(m.clone()))
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// What `uninstall` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Uninstalled {
    /// The original is back.
    Restored,
    /// There was nothing to undo (possibly after cleaning up leftovers).
    NotInstalled,
}

/// Restores the original `libMIOpen.so`, printing what it does.
pub fn uninstall(layout: &Layout) -> Result<Uninstalled, String> {
    check_layout(layout).or_else(|e| {
        // A missing libMIOpen.so is still restorable when a backup is recorded.
        if layout.manifest.exists() && layout.original.exists() {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    let manifest = read_manifest(layout)?;
    let current = match inspect(&layout.miopen) {
        Ok(info) => Some(info),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", layout.miopen.display())),
    };
    let temporaries: Vec<PathBuf> = layout
        .temporaries()
        .into_iter()
        .filter(|t| t.exists())
        .collect();
    let Some(m) = manifest else {
        if current.as_ref().is_some_and(|c| c.hipconv) {
            return Err(format!(
                "{} is a hipconv library but there is no {MANIFEST}, so the original MIOpen is \
                 unknown; reinstall torch to get it back",
                layout.miopen.display()
            ));
        }
        let mut leftovers = temporaries;
        if layout.original.exists() {
            let backup = inspect(&layout.original).map_err(io("cannot read", &layout.original))?;
            if current.as_ref().map(|c| &c.sha256) != Some(&backup.sha256) {
                return Err(format!(
                    "{} exists without {MANIFEST} and differs from {}; leaving both alone",
                    layout.original.display(),
                    layout.miopen.display()
                ));
            }
            leftovers.push(layout.original.clone());
        }
        if !leftovers.is_empty() {
            check_writable(&layout.dir)?;
            for f in &leftovers {
                fs::remove_file(f).map_err(io("cannot remove", f))?;
            }
            println!(
                "removed what an interrupted installation left in {}",
                layout.dir.display()
            );
        }
        println!(
            "hipconv is not installed in {} ({MIOPEN} is not hipconv); nothing to undo",
            layout.dir.display()
        );
        return Ok(Uninstalled::NotInstalled);
    };
    check_writable(&layout.dir)?;
    for t in &temporaries {
        fs::remove_file(t).map_err(io("cannot remove", t))?;
    }
    let current_sha = current.as_ref().map(|c| c.sha256.as_str());
    if current_sha == Some(m.original_sha256.as_str()) {
        // The installation stopped before the swap: libMIOpen.so is still the original.
        remove_if_present(&layout.original).map_err(io("cannot remove", &layout.original))?;
        fs::remove_file(&layout.manifest).map_err(io("cannot remove", &layout.manifest))?;
        sync_dir(&layout.dir).map_err(io("cannot sync", &layout.dir))?;
        println!(
            "hipconv is not installed in {} ({MIOPEN} is the original); removed the backup and \
             manifest of an interrupted installation",
            layout.dir.display()
        );
        return Ok(Uninstalled::NotInstalled);
    }
    let is_hipconv = current
        .as_ref()
        .is_none_or(|c| c.hipconv || c.sha256 == m.installed_sha256);
    if !is_hipconv {
        // Something else (a reinstalled torch) owns libMIOpen.so now; the backup is stale.
        remove_if_present(&layout.original).map_err(io("cannot remove", &layout.original))?;
        fs::remove_file(&layout.manifest).map_err(io("cannot remove", &layout.manifest))?;
        sync_dir(&layout.dir).map_err(io("cannot sync", &layout.dir))?;
        println!(
            "{} is neither hipconv nor the original recorded in {MANIFEST} (torch was probably \
             reinstalled): left as is; removed hipconv's stale backup and manifest",
            layout.miopen.display()
        );
        return Ok(Uninstalled::NotInstalled);
    }
    restore(layout, &m)?;
    let version = m
        .original_miopen_version
        .as_deref()
        .map_or(String::new(), |v| format!("MIOpen {v}, "));
    println!(
        "restored the original {} ({version}sha256 {} verified); removed {ORIGINAL} and \
         {MANIFEST}",
        layout.miopen.display(),
        short(&m.original_sha256)
    );
    Ok(Uninstalled::Restored)
}

/// `hipconv doctor`'s PyTorch lines: where torch is, whether its libMIOpen.so is hipconv,
/// whether `LD_PRELOAD` loads hipconv, and the verdict.
pub fn doctor_lines(torch: Option<&Path>, python: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let lib = preload::find_lib();
    match &lib {
        Ok(p) => out.push((true, format!("hipconv library: {}", p.display()))),
        Err(e) => out.push((false, format!("hipconv library: {e}"))),
    }
    let preload = std::env::var("LD_PRELOAD").unwrap_or_default();
    let entry = preload::hipconv_entry(&preload).map(str::to_string);
    let real = std::env::var(preload::REAL_ENV)
        .ok()
        .filter(|r| !r.is_empty());
    match (&entry, &real) {
        (Some(e), Some(r)) => out.push((
            true,
            format!(
                "LD_PRELOAD loads hipconv ({e}), forwarding to {}={r}",
                preload::REAL_ENV
            ),
        )),
        (Some(e), None) => out.push((
            false,
            format!(
                "LD_PRELOAD loads hipconv ({e}) but {} is not set: Python loads torch's MIOpen \
                 after hipconv has started, so hipconv would serve alone and batch norm / RNN \
                 would fail (`hipconv run` and `hipconv env` set it)",
                preload::REAL_ENV
            ),
        )),
        (None, _) => out.push((
            false,
            "LD_PRELOAD does not load hipconv (use `hipconv run -- …` or `eval \"$(hipconv \
             env)\"`)"
                .to_string(),
        )),
    }
    let preloaded = entry.is_some() && real.is_some();
    let layout = match locate(torch, python) {
        Ok(l) => l,
        Err(e) => {
            out.push((false, format!("torch: {e}")));
            return out;
        }
    };
    out.push((true, format!("torch: {}", layout.torch.display())));
    let installed = match inspect(&layout.miopen) {
        Err(e) => {
            out.push((
                false,
                format!(
                    "{}: {e} (not a ROCm build of PyTorch?)",
                    layout.miopen.display()
                ),
            ));
            false
        }
        Ok(current) => {
            let manifest = read_manifest(&layout);
            let ours = lib
                .as_ref()
                .ok()
                .and_then(|p| inspect(p).ok())
                .map(|i| i.sha256);
            let same_as_ours = ours.as_deref() == Some(current.sha256.as_str());
            match manifest {
                Err(e) => {
                    out.push((false, e));
                    false
                }
                Ok(Some(m)) if current.hipconv || current.sha256 == m.installed_sha256 => {
                    let backup = fs::metadata(&layout.original).map(|md| md.len());
                    let backup_ok = backup.as_ref().is_ok_and(|&n| n == m.original_size);
                    let build = if same_as_ours {
                        "this build".to_string()
                    } else {
                        "another build; `hipconv install` updates it".to_string()
                    };
                    out.push((
                        true,
                        format!(
                            "libMIOpen.so is hipconv {} ({build}), installed {}",
                            m.hipconv_version, m.installed_at
                        ),
                    ));
                    out.push((
                        backup_ok,
                        match backup {
                            Ok(_) if backup_ok => format!(
                                "original MIOpen {} kept as {} (`hipconv uninstall` restores \
                                 it after checking sha256 {})",
                                m.original_miopen_version.as_deref().unwrap_or("?"),
                                layout.original.display(),
                                short(&m.original_sha256)
                            ),
                            Ok(n) => format!(
                                "the backup {} has {n} bytes, the manifest says {}",
                                layout.original.display(),
                                m.original_size
                            ),
                            Err(e) => {
                                format!("the backup {}: {e}", layout.original.display())
                            }
                        },
                    ));
                    true
                }
                Ok(_) if current.hipconv || same_as_ours => {
                    out.push((
                        false,
                        format!(
                            "libMIOpen.so is hipconv without a (matching) {MANIFEST}: the \
                             original is unknown; reinstall torch"
                        ),
                    ));
                    true
                }
                Ok(_) => {
                    out.push((
                        true,
                        format!(
                            "libMIOpen.so is the original MIOpen ({} bytes); hipconv is not \
                             installed there",
                            current.size
                        ),
                    ));
                    false
                }
            }
        }
    };
    let verdict = match (installed, preloaded) {
        (true, true) => (
            true,
            "this Python's torch gets hipconv (installed, and preloaded in this shell: one is \
             enough)"
                .to_string(),
        ),
        (true, false) => (
            true,
            "this Python's torch gets hipconv (installed as libMIOpen.so)".to_string(),
        ),
        (false, true) => (
            true,
            "this Python's torch gets hipconv in this shell (LD_PRELOAD)".to_string(),
        ),
        (false, false) => (
            false,
            "this Python's torch does not get hipconv: run it with `hipconv run -- python …`, \
             `eval \"$(hipconv env)\"`, or `hipconv install`"
                .to_string(),
        ),
    };
    out.push(verdict);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_string(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(utc_string(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn marker_found_across_chunk_seams() {
        let dir = std::env::temp_dir().join(format!("hipconv-inspect-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        for at in [0usize, 100, (8 << 20) - 5, (8 << 20) - 1, 8 << 20] {
            let mut bytes = vec![0u8; (8 << 20) + 64];
            bytes[at..at + ORIGINAL.len()].copy_from_slice(ORIGINAL.as_bytes());
            fs::write(&file, &bytes).unwrap();
            let info = inspect(&file).unwrap();
            assert!(info.hipconv, "marker at {at}");
            assert_eq!(info.size, bytes.len() as u64);
        }
        fs::write(&file, b"abc").unwrap();
        let info = inspect(&file).unwrap();
        assert!(!info.hipconv);
        assert_eq!(
            info.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
