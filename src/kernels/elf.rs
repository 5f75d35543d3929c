//! Just enough ELF reading and writing for AMDGPU code objects, in plain `std` Rust.
//!
//! Used at run time (inspecting embedded objects), by the tests, and by `build.rs` (which
//! includes this file with `#[path]` to produce the override-safe objects), so it depends on
//! nothing outside `std`. Only 64-bit little-endian ELF is handled: that is what every AMDGPU
//! code object is.

use std::fmt;
use std::ops::Range;

/// `e_machine` of AMD GPU code objects.
pub const EM_AMDGPU: u16 = 224;
/// `EI_OSABI` of HSA code objects.
pub const ELFOSABI_AMDGPU_HSA: u8 = 64;
/// Byte range of `e_flags` in an ELF64 header.
pub const E_FLAGS: Range<usize> = 0x30..0x34;
/// The processor ("machine") field of AMDGPU `e_flags`.
pub const EF_AMDGPU_MACH: u32 = 0x0ff;
/// The xnack feature bits of AMDGPU `e_flags` (code object v4 and later).
pub const EF_AMDGPU_FEATURE_XNACK_V4: u32 = 0x300;
/// The sramecc feature bits of AMDGPU `e_flags` (code object v4 and later).
pub const EF_AMDGPU_FEATURE_SRAMECC_V4: u32 = 0xc00;
/// Note type of the AMDGPU metadata (a MessagePack map), in notes named "AMDGPU".
pub const NT_AMDGPU_METADATA: u32 = 32;
/// Prefix of every AMDGPU HSA target id string.
pub const TARGET_PREFIX: &str = "amdgcn-amd-amdhsa--";

const SHT_SYMTAB: u32 = 2;
const SHT_NOTE: u32 = 7;
const SHT_DYNSYM: u32 = 11;

/// `EF_AMDGPU_MACH_*` values of the processors hipconv knows by name.
const MACHS: &[(&str, u32)] = &[
    ("gfx900", 0x02c),
    ("gfx902", 0x02d),
    ("gfx904", 0x02e),
    ("gfx906", 0x02f),
    ("gfx908", 0x030),
    ("gfx909", 0x031),
    ("gfx90c", 0x032),
    ("gfx1010", 0x033),
    ("gfx1011", 0x034),
    ("gfx1012", 0x035),
    ("gfx1030", 0x036),
    ("gfx1031", 0x037),
    ("gfx1032", 0x038),
    ("gfx1033", 0x039),
    ("gfx1035", 0x03d),
    ("gfx1034", 0x03e),
    ("gfx90a", 0x03f),
    ("gfx940", 0x040),
    ("gfx1100", 0x041),
    ("gfx1013", 0x042),
    ("gfx1103", 0x044),
    ("gfx1036", 0x045),
    ("gfx1101", 0x046),
    ("gfx1102", 0x047),
];

/// The processor part of a target id: `gfx1010:xnack-` → `gfx1010`.
pub fn processor(target_id: &str) -> &str {
    target_id.split(':').next().unwrap_or(target_id)
}

/// `EF_AMDGPU_MACH_*` of a processor (or target id), if known.
pub fn mach_of(arch: &str) -> Option<u32> {
    let p = processor(arch);
    MACHS.iter().find(|(n, _)| *n == p).map(|&(_, m)| m)
}

/// The processor name of an `EF_AMDGPU_MACH_*` value, if known.
pub fn arch_of_mach(mach: u32) -> Option<&'static str> {
    MACHS.iter().find(|&&(_, m)| m == mach).map(|&(n, _)| n)
}

/// Why a byte string could not be read as an AMDGPU code object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad ELF: {}", self.0)
    }
}

impl std::error::Error for ElfError {}

fn err<T>(what: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(what.into()))
}

fn slice(b: &[u8], at: usize, len: usize) -> Result<&[u8], ElfError> {
    at.checked_add(len)
        .and_then(|end| b.get(at..end))
        .ok_or_else(|| {
            ElfError(format!(
                "{len} bytes at {at:#x} lie past the end ({:#x})",
                b.len()
            ))
        })
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    Ok(u16::from_le_bytes(
        slice(b, at, 2)?.try_into().expect("2 bytes"),
    ))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    Ok(u32::from_le_bytes(
        slice(b, at, 4)?.try_into().expect("4 bytes"),
    ))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    Ok(u64::from_le_bytes(
        slice(b, at, 8)?.try_into().expect("8 bytes"),
    ))
}

fn usize_at(b: &[u8], at: usize) -> Result<usize, ElfError> {
    usize::try_from(u64_at(b, at)?).map_err(|_| ElfError(format!("offset at {at:#x} overflows")))
}

/// The fields of an ELF64 header that the helpers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub os_abi: u8,
    pub abi_version: u8,
    pub e_type: u16,
    pub machine: u16,
    pub flags: u32,
    pub shoff: usize,
    pub shentsize: usize,
    pub shnum: usize,
    pub shstrndx: usize,
}

/// Reads and checks the header of a 64-bit little-endian ELF file.
pub fn header(b: &[u8]) -> Result<Header, ElfError> {
    let ident = slice(b, 0, 16)?;
    if &ident[..4] != b"\x7fELF" {
        return err("no ELF magic");
    }
    if ident[4] != 2 || ident[5] != 1 {
        return err("not 64-bit little-endian");
    }
    let _ = slice(b, 0, 64)?;
    Ok(Header {
        os_abi: ident[7],
        abi_version: ident[8],
        e_type: u16_at(b, 0x10)?,
        machine: u16_at(b, 0x12)?,
        flags: u32_at(b, E_FLAGS.start)?,
        shoff: usize_at(b, 0x28)?,
        shentsize: u16_at(b, 0x3a)? as usize,
        shnum: u16_at(b, 0x3c)? as usize,
        shstrndx: u16_at(b, 0x3e)? as usize,
    })
}

/// `e_flags` of an AMDGPU code object.
pub fn e_flags(b: &[u8]) -> Result<u32, ElfError> {
    let h = header(b)?;
    if h.machine != EM_AMDGPU {
        return err(format!("e_machine {} is not EM_AMDGPU", h.machine));
    }
    Ok(h.flags)
}

/// The processor an AMDGPU code object is labelled for (from `e_flags`), if known.
pub fn labelled_arch(b: &[u8]) -> Result<Option<&'static str>, ElfError> {
    Ok(arch_of_mach(e_flags(b)? & EF_AMDGPU_MACH))
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub kind: u32,
    pub offset: usize,
    pub size: usize,
    pub link: usize,
    pub entsize: usize,
}

impl Section {
    /// The section's bytes within the file.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.size
    }
}

fn c_str(b: &[u8], at: usize) -> Result<String, ElfError> {
    let tail = b
        .get(at..)
        .ok_or_else(|| ElfError(format!("string at {at:#x} past the end")))?;
    let len = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| ElfError(format!("unterminated string at {at:#x}")))?;
    Ok(String::from_utf8_lossy(&tail[..len]).into_owned())
}

/// All section headers, with names resolved.
pub fn sections(b: &[u8]) -> Result<Vec<Section>, ElfError> {
    let h = header(b)?;
    if h.shnum == 0 {
        return Ok(Vec::new());
    }
    if h.shentsize < 64 {
        return err(format!("section header size {}", h.shentsize));
    }
    let mut raw = Vec::with_capacity(h.shnum);
    for i in 0..h.shnum {
        let at = h.shoff + i * h.shentsize;
        let offset = usize_at(b, at + 0x18)?;
        let size = usize_at(b, at + 0x20)?;
        let kind = u32_at(b, at + 4)?;
        // SHT_NOBITS (8) occupies no file bytes
        if kind != 8 {
            slice(b, offset, size)?;
        }
        raw.push((
            u32_at(b, at)? as usize,
            Section {
                name: String::new(),
                kind,
                offset,
                size,
                link: u32_at(b, at + 0x28)? as usize,
                entsize: usize_at(b, at + 0x38)?,
            },
        ));
    }
    let names = raw
        .get(h.shstrndx)
        .map(|(_, s)| s.offset)
        .ok_or_else(|| ElfError("section name table index out of range".into()))?;
    raw.into_iter()
        .map(|(name_at, mut s)| {
            s.name = c_str(b, names + name_at)?;
            Ok(s)
        })
        .collect()
}

/// One ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub name: String,
    pub kind: u32,
    /// The descriptor's bytes within the file.
    pub desc: Range<usize>,
}

/// Every note of every `SHT_NOTE` section.
pub fn notes(b: &[u8]) -> Result<Vec<Note>, ElfError> {
    let mut out = Vec::new();
    for s in sections(b)?.iter().filter(|s| s.kind == SHT_NOTE) {
        let end = s.offset + s.size;
        let mut at = s.offset;
        while at + 12 <= end {
            let namesz = u32_at(b, at)? as usize;
            let descsz = u32_at(b, at + 4)? as usize;
            let kind = u32_at(b, at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            let next = desc_at + descsz.next_multiple_of(4);
            if desc_at + descsz > end {
                return err(format!("note at {at:#x} overruns its section"));
            }
            let name = slice(b, name_at, namesz)?;
            let name = name.strip_suffix(b"\0").unwrap_or(name);
            out.push(Note {
                name: String::from_utf8_lossy(name).into_owned(),
                kind,
                desc: desc_at..desc_at + descsz,
            });
            at = next;
        }
    }
    Ok(out)
}

/// The MessagePack string that follows `key` (itself a MessagePack string) inside `map`,
/// as a byte range of `map`.
fn msgpack_value_after(map: &[u8], key: &str) -> Option<Range<usize>> {
    let mut encoded = Vec::with_capacity(key.len() + 1);
    if key.len() < 32 {
        encoded.push(0xa0 | key.len() as u8);
    } else {
        encoded.extend([0xd9, key.len() as u8]);
    }
    encoded.extend_from_slice(key.as_bytes());
    let at = map
        .windows(encoded.len())
        .position(|w| w == encoded.as_slice())?
        + encoded.len();
    let (start, len) = match *map.get(at)? {
        t @ 0xa0..=0xbf => (at + 1, (t & 0x1f) as usize),
        0xd9 => (at + 2, *map.get(at + 1)? as usize),
        0xda => (
            at + 3,
            u16::from_be_bytes([*map.get(at + 1)?, *map.get(at + 2)?]) as usize,
        ),
        _ => return None,
    };
    (start + len <= map.len()).then_some(start..start + len)
}

/// The `amdhsa.target` string of the AMDGPU metadata note (e.g.
/// `amdgcn-amd-amdhsa--gfx1010`) and its byte range within the file.
pub fn metadata_target(b: &[u8]) -> Result<(Range<usize>, String), ElfError> {
    for n in notes(b)? {
        if n.name != "AMDGPU" || n.kind != NT_AMDGPU_METADATA {
            continue;
        }
        if let Some(r) = msgpack_value_after(&b[n.desc.clone()], "amdhsa.target") {
            let range = n.desc.start + r.start..n.desc.start + r.end;
            return Ok((
                range.clone(),
                String::from_utf8_lossy(&b[range]).into_owned(),
            ));
        }
    }
    err("no amdhsa.target in an AMDGPU metadata note")
}

/// One symbol of `.symtab` or `.dynsym`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// `STT_*` (low nibble of `st_info`): 1 object, 2 function.
    pub kind: u8,
    pub section: u16,
    pub value: u64,
    pub size: u64,
}

/// The symbols of every symbol table (`.symtab` and `.dynsym`; names may repeat).
pub fn symbols(b: &[u8]) -> Result<Vec<Symbol>, ElfError> {
    let secs = sections(b)?;
    let mut out = Vec::new();
    for s in secs
        .iter()
        .filter(|s| s.kind == SHT_SYMTAB || s.kind == SHT_DYNSYM)
    {
        let strtab = secs
            .get(s.link)
            .ok_or_else(|| ElfError(format!("{}: string table index out of range", s.name)))?;
        let entsize = if s.entsize == 0 { 24 } else { s.entsize };
        if entsize < 24 {
            return err(format!("{}: symbol entry size {entsize}", s.name));
        }
        for i in 1..s.size / entsize {
            let at = s.offset + i * entsize;
            let name_at = u32_at(b, at)? as usize;
            if name_at >= strtab.size {
                return err(format!("{}: symbol name offset out of range", s.name));
            }
            out.push(Symbol {
                name: c_str(b, strtab.offset + name_at)?,
                kind: slice(b, at + 4, 1)?[0] & 0xf,
                section: u16_at(b, at + 6)?,
                value: u64_at(b, at + 8)?,
                size: u64_at(b, at + 16)?,
            });
        }
    }
    Ok(out)
}

/// Names of the kernels an object defines: the symbols with a `<name>.kd` kernel descriptor,
/// sorted and deduplicated.
pub fn kernel_names(b: &[u8]) -> Result<Vec<String>, ElfError> {
    let mut names: Vec<String> = symbols(b)?
        .into_iter()
        .filter(|s| s.section != 0)
        .filter_map(|s| s.name.strip_suffix(".kd").map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// A copy of `b` labelled for another processor of the same ISA family: `e_flags` gets the
/// machine value of `to` with the xnack/sramecc feature bits cleared, and the metadata target
/// string `amdgcn-amd-amdhsa--<from>` becomes `amdgcn-amd-amdhsa--<to>` (same length). No other
/// byte changes. `from` and `to` are plain processor names of equal length.
pub fn relabel(b: &[u8], from: &str, to: &str) -> Result<Vec<u8>, ElfError> {
    if from.len() != to.len() || from.contains(':') || to.contains(':') {
        return err(format!(
            "cannot relabel {from} as {to}: plain names of equal length only"
        ));
    }
    let to_mach = mach_of(to).ok_or_else(|| ElfError(format!("unknown processor {to}")))?;
    let flags = e_flags(b)?;
    let from_mach = mach_of(from).ok_or_else(|| ElfError(format!("unknown processor {from}")))?;
    if flags & EF_AMDGPU_MACH != from_mach {
        return err(format!(
            "e_flags {flags:#x} are not {from}'s ({from_mach:#x})"
        ));
    }
    let (range, target) = metadata_target(b)?;
    if target != format!("{TARGET_PREFIX}{from}") {
        return err(format!(
            "metadata target {target:?} is not {TARGET_PREFIX}{from}"
        ));
    }
    let mut out = b.to_vec();
    let keep =
        flags & !(EF_AMDGPU_MACH | EF_AMDGPU_FEATURE_XNACK_V4 | EF_AMDGPU_FEATURE_SRAMECC_V4);
    out[E_FLAGS].copy_from_slice(&(keep | to_mach).to_le_bytes());
    out[range].copy_from_slice(format!("{TARGET_PREFIX}{to}").as_bytes());
    Ok(out)
}

/// Byte offsets at which two equally long files differ (all of them; empty when equal).
pub fn differing_offsets(a: &[u8], b: &[u8]) -> Vec<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect()
}

/// Splits a clang offload bundle (uncompressed, `__CLANG_OFFLOAD_BUNDLE__` format) into its
/// entries: (bundle entry id, bytes range).
pub fn offload_bundle_entries(b: &[u8]) -> Result<Vec<(String, Range<usize>)>, ElfError> {
    const MAGIC: &[u8] = b"__CLANG_OFFLOAD_BUNDLE__";
    if !b.starts_with(MAGIC) {
        return err("not an uncompressed clang offload bundle");
    }
    let count = usize_at(b, MAGIC.len())?;
    let mut at = MAGIC.len() + 8;
    let mut out = Vec::new();
    for _ in 0..count {
        let offset = usize_at(b, at)?;
        let size = usize_at(b, at + 8)?;
        let id_len = usize_at(b, at + 16)?;
        let id = String::from_utf8_lossy(slice(b, at + 24, id_len)?).into_owned();
        slice(b, offset, size)?;
        out.push((id, offset..offset + size));
        at += 24 + id_len;
    }
    Ok(out)
}

/// The target id of a HIP bundle entry id (`hipv4-amdgcn-amd-amdhsa--gfx1010` → `gfx1010`).
pub fn bundle_target_id(entry: &str) -> Option<&str> {
    let rest = entry
        .strip_prefix("hipv4-")
        .or_else(|| entry.strip_prefix("hip-"))?;
    let rest = rest.strip_prefix("amdgcn-amd-amdhsa-")?;
    Some(rest.strip_prefix('-').unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal AMDGPU-like ELF: header, a note section with AMDGPU metadata, a symbol table
    /// with two symbols, its string table and the section name table.
    fn synthetic(flags: u32, target: &str) -> Vec<u8> {
        fn align4(v: &mut Vec<u8>) {
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        }
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[7] = ELFOSABI_AMDGPU_HSA;
        b[8] = 2;
        b[0x10..0x12].copy_from_slice(&3u16.to_le_bytes());
        b[0x12..0x14].copy_from_slice(&EM_AMDGPU.to_le_bytes());
        b[E_FLAGS].copy_from_slice(&flags.to_le_bytes());

        // note section
        let note_at = b.len();
        let mut desc = vec![0x82u8]; // map of 2
        desc.push(0xa0 | 13);
        desc.extend_from_slice(b"amdhsa.target");
        desc.push(0xa0 | target.len() as u8);
        desc.extend_from_slice(target.as_bytes());
        desc.push(0xa0 | 14);
        desc.extend_from_slice(b"amdhsa.version");
        desc.extend([0x92, 1, 1]);
        b.extend(7u32.to_le_bytes()); // "AMDGPU\0"
        b.extend((desc.len() as u32).to_le_bytes());
        b.extend(NT_AMDGPU_METADATA.to_le_bytes());
        b.extend(b"AMDGPU\0");
        align4(&mut b);
        b.extend(&desc);
        align4(&mut b);
        let note_size = b.len() - note_at;

        // string table
        let str_at = b.len();
        b.extend(b"\0k_f32\0k_f32.kd\0");
        let str_size = b.len() - str_at;
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        // symbol table: null, k_f32 (func), k_f32.kd (object)
        let sym_at = b.len();
        b.extend([0u8; 24]);
        for (name, kind, value) in [(1u32, 2u8, 0x100u64), (7, 1, 0x40)] {
            b.extend(name.to_le_bytes());
            b.push(0x10 | kind);
            b.push(0);
            b.extend(1u16.to_le_bytes());
            b.extend(value.to_le_bytes());
            b.extend(64u64.to_le_bytes());
        }
        let sym_size = b.len() - sym_at;
        // section names
        let shstr_at = b.len();
        b.extend(b"\0.note\0.strtab\0.symtab\0.shstrtab\0");
        let shstr_size = b.len() - shstr_at;
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        let shoff = b.len();
        let mut sh = |name: u32, kind: u32, off: usize, size: usize, link: u32, entsize: u64| {
            b.extend(name.to_le_bytes());
            b.extend(kind.to_le_bytes());
            b.extend(0u64.to_le_bytes()); // flags
            b.extend(0u64.to_le_bytes()); // addr
            b.extend((off as u64).to_le_bytes());
            b.extend((size as u64).to_le_bytes());
            b.extend(link.to_le_bytes());
            b.extend(0u32.to_le_bytes()); // info
            b.extend(8u64.to_le_bytes()); // addralign
            b.extend(entsize.to_le_bytes());
        };
        sh(0, 0, 0, 0, 0, 0);
        sh(1, SHT_NOTE, note_at, note_size, 0, 0);
        sh(7, 3, str_at, str_size, 0, 0);
        sh(15, SHT_SYMTAB, sym_at, sym_size, 2, 24);
        sh(23, 3, shstr_at, shstr_size, 0, 0);
        b[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&5u16.to_le_bytes());
        b[0x3e..0x40].copy_from_slice(&4u16.to_le_bytes());
        b
    }

    #[test]
    fn reads_header_flags_and_arch() {
        let b = synthetic(0x133, "amdgcn-amd-amdhsa--gfx1010");
        let h = header(&b).unwrap();
        assert_eq!(
            (h.machine, h.os_abi, h.abi_version, h.e_type),
            (EM_AMDGPU, 64, 2, 3)
        );
        assert_eq!(e_flags(&b).unwrap(), 0x133);
        assert_eq!(labelled_arch(&b).unwrap(), Some("gfx1010"));
        assert_eq!(mach_of("gfx1030"), Some(0x36));
        assert_eq!(mach_of("gfx1010:xnack-"), Some(0x33));
        assert_eq!(arch_of_mach(0x41), Some("gfx1100"));
    }

    #[test]
    fn finds_sections_notes_and_target() {
        let b = synthetic(0x133, "amdgcn-amd-amdhsa--gfx1010");
        let names: Vec<_> = sections(&b).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["", ".note", ".strtab", ".symtab", ".shstrtab"]);
        let notes = notes(&b).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(
            (notes[0].name.as_str(), notes[0].kind),
            ("AMDGPU", NT_AMDGPU_METADATA)
        );
        let (range, target) = metadata_target(&b).unwrap();
        assert_eq!(target, "amdgcn-amd-amdhsa--gfx1010");
        assert_eq!(&b[range], target.as_bytes());
    }

    #[test]
    fn reads_symbols_and_kernels() {
        let b = synthetic(0x36, "amdgcn-amd-amdhsa--gfx1030");
        let syms = symbols(&b).unwrap();
        assert_eq!(syms.len(), 2);
        assert_eq!(
            (syms[0].name.as_str(), syms[0].kind, syms[0].value),
            ("k_f32", 2, 0x100)
        );
        assert_eq!((syms[1].name.as_str(), syms[1].kind), ("k_f32.kd", 1));
        assert_eq!(kernel_names(&b).unwrap(), ["k_f32"]);
    }

    #[test]
    fn relabel_touches_only_flags_and_target() {
        let src = synthetic(0x133, "amdgcn-amd-amdhsa--gfx1010");
        let out = relabel(&src, "gfx1010", "gfx1030").unwrap();
        assert_eq!(out.len(), src.len());
        assert_eq!(e_flags(&out).unwrap(), 0x036);
        assert_eq!(
            metadata_target(&out).unwrap().1,
            "amdgcn-amd-amdhsa--gfx1030"
        );
        let (label, _) = metadata_target(&src).unwrap();
        for at in differing_offsets(&src, &out) {
            assert!(
                E_FLAGS.contains(&at) || label.contains(&at),
                "byte {at:#x} changed"
            );
        }
        // sramecc bits are cleared too, other flag bits kept
        let src = synthetic(0x1000 | 0xc00 | 0x133, "amdgcn-amd-amdhsa--gfx1010");
        assert_eq!(
            e_flags(&relabel(&src, "gfx1010", "gfx1030").unwrap()).unwrap(),
            0x1036
        );
    }

    #[test]
    fn relabel_refuses_mismatches() {
        let src = synthetic(0x133, "amdgcn-amd-amdhsa--gfx1010");
        assert!(relabel(&src, "gfx1011", "gfx1030").is_err());
        assert!(relabel(&src, "gfx1010", "gfx900").is_err());
        assert!(relabel(&src, "gfx1010:xnack-", "gfx1030").is_err());
        let odd = synthetic(0x133, "amdgcn-amd-amdhsa--gfx1010:xnack+");
        assert!(relabel(&odd, "gfx1010", "gfx1030").is_err());
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let b = synthetic(0x133, "amdgcn-amd-amdhsa--gfx1010");
        assert!(header(&b[..40]).is_err());
        assert!(sections(&b[..b.len() - 10]).is_err());
        assert!(
            e_flags(b"not an elf at all, not at all, not at all, not at all, not at all!").is_err()
        );
        let mut x86 = b.clone();
        x86[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        assert!(e_flags(&x86).is_err());
    }

    #[test]
    fn splits_offload_bundles() {
        let mut b = b"__CLANG_OFFLOAD_BUNDLE__".to_vec();
        let ids = [
            "host-x86_64-unknown-linux",
            "hipv4-amdgcn-amd-amdhsa--gfx1010",
        ];
        b.extend(2u64.to_le_bytes());
        let header_len = b.len() + ids.iter().map(|i| 24 + i.len()).sum::<usize>();
        let payloads: [&[u8]; 2] = [b"", b"\x7fELFpayload"];
        let mut at = header_len;
        for (id, p) in ids.iter().zip(payloads) {
            b.extend((at as u64).to_le_bytes());
            b.extend((p.len() as u64).to_le_bytes());
            b.extend((id.len() as u64).to_le_bytes());
            b.extend(id.as_bytes());
            at += p.len();
        }
        for p in payloads {
            b.extend(p);
        }
        let entries = offload_bundle_entries(&b).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(&b[entries[1].1.clone()], b"\x7fELFpayload");
        assert_eq!(bundle_target_id(&entries[1].0), Some("gfx1010"));
        assert_eq!(
            bundle_target_id("hip-amdgcn-amd-amdhsa-gfx906"),
            Some("gfx906")
        );
        assert_eq!(bundle_target_id(&entries[0].0), None);
        assert!(offload_bundle_entries(&b[..30]).is_err());
        assert!(offload_bundle_entries(b"CCOB....").is_err());
    }
}
