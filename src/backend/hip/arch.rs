//! The processor the HIP runtime *reports* versus the chip that is *really* there, and the
//! embedded code object that follows from the pair.
//!
//! Under `HSA_OVERRIDE_GFX_VERSION=10.3.0` the runtime reports gfx1030 for RDNA1 silicon
//! (gfx1010/1011/1012) and only accepts objects labelled gfx1030. The KFD topology in sysfs
//! (`/sys/class/kfd/kfd/topology/nodes/*/properties`, field `gfx_target_version`) is not
//! touched by the override, so it tells the real chip. `HIPCONV_REAL_ARCH` overrides it.
//!
//! | real chip | runtime reports | object |
//! |---|---|---|
//! | X | X | X's own code |
//! | gfx101x | gfx1030 | the override-safe copy (gfx101x code labelled gfx1030) |
//! | anything else | something else | none: [`Error::NoKernelForArch`] with what to do |
//! | unknown, no override set | X | X's own code |
//! | unknown, override set | X | none: set `HIPCONV_REAL_ARCH` |

use crate::error::{Error, Result};
use crate::kernels::{self, CodeObject, OVERRIDE_ARCH, elf};
use std::path::Path;

/// Environment variable naming the real chip (e.g. `gfx1010`); wins over sysfs.
pub const REAL_ARCH_ENV: &str = "HIPCONV_REAL_ARCH";
/// The ROCm variable that makes the runtime report another processor.
pub const OVERRIDE_ENV: &str = "HSA_OVERRIDE_GFX_VERSION";
/// Where the kernel driver lists its topology nodes.
pub const KFD_TOPOLOGY: &str = "/sys/class/kfd/kfd/topology/nodes";

/// The processor name of a KFD `gfx_target_version`: major·10000 + minor·100 + stepping, with
/// minor and stepping printed as one hex digit each (90010 → gfx90a, 100100 → gfx1010).
/// `0` (a CPU node) and malformed values give `None`.
pub fn arch_of_gfx_target_version(v: u64) -> Option<String> {
    let (major, minor, stepping) = (v / 10000, (v / 100) % 100, v % 100);
    if major == 0 || minor > 15 || stepping > 15 {
        return None;
    }
    Some(format!("gfx{major}{minor:x}{stepping:x}"))
}

/// The processor an `HSA_OVERRIDE_GFX_VERSION` value (`major.minor.stepping`, decimal) makes
/// the runtime report, e.g. `10.3.0` → gfx1030.
pub fn arch_of_override(value: &str) -> Option<String> {
    let mut parts = value.trim().split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor, stepping) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    arch_of_gfx_target_version(major * 10000 + minor * 100 + stepping)
}

/// A PCI location (domain, bus, device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciLocation {
    pub domain: u32,
    pub bus: u32,
    pub device: u32,
}

/// One GPU node of the KFD topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfdNode {
    /// The node directory's number.
    pub node: u32,
    /// The raw `gfx_target_version`.
    pub gfx_target_version: u64,
    /// The processor it encodes (`gfx1010`).
    pub arch: String,
    /// PCI location from `domain` and `location_id` (bus << 8 | device << 3 | function), when
    /// the kernel publishes them.
    pub pci: Option<PciLocation>,
}

/// The value of `key` in a KFD `properties` file (lines of `name value`).
pub fn property(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        (it.next()? == key).then_some(())?;
        it.next()?.parse().ok()
    })
}

/// Parses one node's `properties`; `None` for CPU nodes and nodes without a known GPU.
pub fn parse_node(node: u32, text: &str) -> Option<KfdNode> {
    let gfx_target_version = property(text, "gfx_target_version")?;
    let arch = arch_of_gfx_target_version(gfx_target_version)?;
    let pci = property(text, "location_id")
        .filter(|&l| l != 0)
        .map(|l| PciLocation {
            domain: property(text, "domain").unwrap_or(0) as u32,
            bus: ((l >> 8) & 0xff) as u32,
            device: ((l >> 3) & 0x1f) as u32,
        });
    Some(KfdNode {
        node,
        gfx_target_version,
        arch,
        pci,
    })
}

/// The GPU nodes under a topology directory (`…/nodes`), by node number. A missing or
/// unreadable directory gives an empty list.
pub fn read_topology(nodes_dir: &Path) -> Vec<KfdNode> {
    let Ok(entries) = std::fs::read_dir(nodes_dir) else {
        return Vec::new();
    };
    let mut out: Vec<KfdNode> = entries
        .flatten()
        .filter_map(|e| {
            let node: u32 = e.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(e.path().join("properties")).ok()?;
            parse_node(node, &text)
        })
        .collect();
    out.sort_by_key(|n| n.node);
    out
}

/// Where the real chip's name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealSource {
    /// `HIPCONV_REAL_ARCH`.
    Env,
    /// The KFD node with this number.
    Kfd(u32),
    /// Not known (no KFD topology, or several GPU kinds and no PCI match).
    Unknown,
}

/// The real chip of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealArch {
    pub arch: Option<String>,
    pub source: RealSource,
}

/// The real chip of the device at `pci`: `env` (the value of `HIPCONV_REAL_ARCH`) if set, else
/// the KFD node at the same PCI location, else the one chip kind all GPU nodes share.
pub fn real_arch(env: Option<&str>, nodes: &[KfdNode], pci: Option<PciLocation>) -> RealArch {
    if let Some(v) = env.map(str::trim).filter(|v| !v.is_empty()) {
        return RealArch {
            arch: Some(v.to_string()),
            source: RealSource::Env,
        };
    }
    let same_place = |n: &&KfdNode| match (n.pci, pci) {
        (Some(a), Some(b)) => a.bus == b.bus && a.device == b.device && a.domain == b.domain,
        _ => false,
    };
    if let Some(n) = nodes.iter().find(same_place) {
        return RealArch {
            arch: Some(n.arch.clone()),
            source: RealSource::Kfd(n.node),
        };
    }
    match nodes.first() {
        Some(first) if nodes.iter().all(|n| n.arch == first.arch) => RealArch {
            arch: Some(first.arch.clone()),
            source: RealSource::Kfd(first.node),
        },
        _ => RealArch {
            arch: None,
            source: RealSource::Unknown,
        },
    }
}

/// What to load on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The runtime reports the real chip (or the real chip is unknown and no override is
    /// set): the object compiled for `arch`.
    Native { arch: String },
    /// RDNA1 silicon reported as gfx1030 (the override): the relabelled copy of `real`'s code.
    OverrideSafe { real: String },
    /// No object is safe; `hint` says what to do.
    Refuse { reported: String, hint: String },
}

/// Decides from the reported processor, the real chip (if known) and whether
/// `HSA_OVERRIDE_GFX_VERSION` is set. Features after `:` are ignored.
pub fn decide(reported: &str, real: Option<&str>, override_set: bool) -> Decision {
    let rep = elf::processor(reported);
    let Some(real) = real.map(elf::processor) else {
        if override_set {
            return Decision::Refuse {
                reported: rep.to_string(),
                hint: format!(
                    "{OVERRIDE_ENV} is set and the real chip cannot be read from {KFD_TOPOLOGY}; \
                     set {REAL_ARCH_ENV} to your GPU's processor (e.g. {REAL_ARCH_ENV}=gfx1010)"
                ),
            };
        }
        return Decision::Native {
            arch: rep.to_string(),
        };
    };
    if rep == real {
        Decision::Native {
            arch: real.to_string(),
        }
    } else if kernels::is_rdna1(real) && rep == OVERRIDE_ARCH {
        Decision::OverrideSafe {
            real: real.to_string(),
        }
    } else if kernels::is_rdna1(real) {
        Decision::Refuse {
            reported: rep.to_string(),
            hint: format!(
                "the runtime reports {rep} on {real} silicon; unset {OVERRIDE_ENV} (native {real} \
                 stack) or set {OVERRIDE_ENV}=10.3.0"
            ),
        }
    } else {
        Decision::Refuse {
            reported: rep.to_string(),
            hint: format!(
                "the runtime reports {rep} but the chip is {real}; hipconv only relabels code for \
                 RDNA1 (gfx1010/1011/1012) under {OVERRIDE_ENV}=10.3.0. Unset {OVERRIDE_ENV}, or \
                 set {REAL_ARCH_ENV}={rep} to accept {rep} code on this chip"
            ),
        }
    }
}

/// The embedded object for a decision (through [`kernels::select_or_err`]).
pub fn choose(decision: &Decision) -> Result<&'static CodeObject> {
    choose_with(decision, kernels::select_or_err)
}

/// [`choose`] over any `select(reported, real)` (tests pass a table of their own).
pub fn choose_with<'a>(
    decision: &Decision,
    select: impl Fn(&str, &str) -> Result<&'a CodeObject>,
) -> Result<&'a CodeObject> {
    let object = match decision {
        Decision::Native { arch } => select(arch, arch)?,
        Decision::OverrideSafe { real } => select(OVERRIDE_ARCH, real)?,
        Decision::Refuse { reported, hint } => {
            return Err(Error::NoKernelForArch {
                arch: reported.clone(),
                hint: hint.clone(),
            });
        }
    };
    // the selection must agree with the decision about crossing silicon
    let want_override_safe = matches!(decision, Decision::OverrideSafe { .. });
    if object.override_safe != want_override_safe {
        return Err(Error::bad(format!(
            "code object selection disagrees with the decision {decision:?} (got {} compiled for {})",
            object.arch, object.compiled_for
        )));
    }
    Ok(object)
}

/// Everything known about one device's processors, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchReport {
    pub reported: String,
    pub real: RealArch,
    pub override_value: Option<String>,
    pub decision: Decision,
}

impl ArchReport {
    /// Gathers the report for a device reporting `reported` at `pci`, from the process
    /// environment and the system's KFD topology.
    pub fn gather(reported: &str, pci: Option<PciLocation>) -> Self {
        let env_real = std::env::var(REAL_ARCH_ENV).ok();
        let override_value = std::env::var(OVERRIDE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let nodes = read_topology(Path::new(KFD_TOPOLOGY));
        Self::from_parts(reported, pci, env_real.as_deref(), override_value, &nodes)
    }

    /// The report from explicit inputs.
    pub fn from_parts(
        reported: &str,
        pci: Option<PciLocation>,
        env_real: Option<&str>,
        override_value: Option<String>,
        nodes: &[KfdNode],
    ) -> Self {
        let real = real_arch(env_real, nodes, pci);
        let decision = decide(reported, real.arch.as_deref(), override_value.is_some());
        ArchReport {
            reported: reported.to_string(),
            real,
            override_value,
            decision,
        }
    }

    /// One line: reported, real (and where from), the override.
    pub fn describe(&self) -> String {
        let real = match (&self.real.arch, &self.real.source) {
            (Some(a), RealSource::Env) => format!("real {a} (from {REAL_ARCH_ENV})"),
            (Some(a), RealSource::Kfd(n)) => format!("real {a} (KFD node {n})"),
            _ => "real chip unknown".to_string(),
        };
        let ov = match &self.override_value {
            Some(v) => format!(
                ", {OVERRIDE_ENV}={v}{}",
                arch_of_override(v)
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        format!("runtime reports {}, {real}{ov}", self.reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfx_target_versions() {
        let cases = [
            (100100, Some("gfx1010")),
            (100101, Some("gfx1011")),
            (100102, Some("gfx1012")),
            (100300, Some("gfx1030")),
            (100301, Some("gfx1031")),
            (110000, Some("gfx1100")),
            (110501, Some("gfx1151")),
            (120001, Some("gfx1201")),
            (90000, Some("gfx900")),
            (90006, Some("gfx906")),
            (90010, Some("gfx90a")),
            (90012, Some("gfx90c")),
            (90402, Some("gfx942")),
            (0, None),
            (100116, None),
            (101600, None),
        ];
        for (v, want) in cases {
            assert_eq!(arch_of_gfx_target_version(v).as_deref(), want, "{v}");
        }
        assert_eq!(arch_of_override("10.3.0").as_deref(), Some("gfx1030"));
        assert_eq!(arch_of_override(" 11.0.0\n").as_deref(), Some("gfx1100"));
        assert_eq!(arch_of_override("9.0.10").as_deref(), Some("gfx90a"));
        assert_eq!(arch_of_override("10.3"), None);
        assert_eq!(arch_of_override("ten"), None);
    }

    fn native(a: &str) -> Decision {
        Decision::Native { arch: a.into() }
    }

    #[test]
    fn decision_table() {
        // native gfx1010 stack
        assert_eq!(
            decide("gfx1010:xnack-", Some("gfx1010"), false),
            native("gfx1010")
        );
        // gfx1010 under the 10.3.0 override
        assert_eq!(
            decide("gfx1030", Some("gfx1010"), true),
            Decision::OverrideSafe {
                real: "gfx1010".into()
            }
        );
        assert_eq!(
            decide("gfx1030:sramecc-:xnack-", Some("gfx1012"), true),
            Decision::OverrideSafe {
                real: "gfx1012".into()
            }
        );
        // real gfx1030, with or without a (harmless) override
        assert_eq!(decide("gfx1030", Some("gfx1030"), false), native("gfx1030"));
        assert_eq!(decide("gfx1030", Some("gfx1030"), true), native("gfx1030"));
        // gfx1100 and an arch nobody knows: native, the table decides whether code exists
        assert_eq!(decide("gfx1100", Some("gfx1100"), false), native("gfx1100"));
        assert_eq!(decide("gfx1999", Some("gfx1999"), false), native("gfx1999"));
        // unknown real chip: trust the runtime unless an override is set
        assert_eq!(decide("gfx1030", None, false), native("gfx1030"));
        assert!(
            matches!(decide("gfx1030", None, true), Decision::Refuse { hint, .. } if hint.contains(REAL_ARCH_ENV))
        );
        // RDNA1 reported as anything but itself or gfx1030
        assert!(
            matches!(decide("gfx1100", Some("gfx1010"), true), Decision::Refuse { hint, .. } if hint.contains("10.3.0"))
        );
        // another chip behind an override (gfx1031 as gfx1030): refused, with the way out
        assert!(
            matches!(decide("gfx1030", Some("gfx1031"), true), Decision::Refuse { hint, .. } if hint.contains("HIPCONV_REAL_ARCH=gfx1030"))
        );
        // real gfx1030 never gets RDNA1 code
        assert!(matches!(
            decide("gfx1010", Some("gfx1030"), true),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn choice_checks_the_selection() {
        static TABLE: [CodeObject; 3] = [
            CodeObject {
                arch: "gfx1010",
                compiled_for: "gfx1010",
                override_safe: false,
                bytes: &[],
            },
            CodeObject {
                arch: "gfx1030",
                compiled_for: "gfx1030",
                override_safe: false,
                bytes: &[],
            },
            CodeObject {
                arch: "gfx1030",
                compiled_for: "gfx1010",
                override_safe: true,
                bytes: &[],
            },
        ];
        let by_label = |rep: &str, real: &str| -> Result<&'static CodeObject> {
            TABLE
                .iter()
                .find(|o| o.arch == rep && o.compiled_for == real)
                .ok_or_else(|| Error::bad("none"))
        };
        let got = choose_with(
            &Decision::OverrideSafe {
                real: "gfx1010".into(),
            },
            by_label,
        )
        .unwrap();
        assert_eq!((got.arch, got.compiled_for), ("gfx1030", "gfx1010"));
        assert_eq!(
            choose_with(&native("gfx1030"), by_label)
                .unwrap()
                .compiled_for,
            "gfx1030"
        );
        // a selector that looks only at labels hands real gfx1030 code to RDNA1 silicon: caught
        let wrong = |_: &str, _: &str| -> Result<&'static CodeObject> { Ok(&TABLE[1]) };
        assert!(
            choose_with(
                &Decision::OverrideSafe {
                    real: "gfx1010".into()
                },
                wrong
            )
            .is_err()
        );
        let refuse = Decision::Refuse {
            reported: "gfx1100".into(),
            hint: "do this".into(),
        };
        assert_eq!(
            choose_with(&refuse, by_label).unwrap_err(),
            Error::NoKernelForArch {
                arch: "gfx1100".into(),
                hint: "do this".into()
            }
        );
    }

    #[test]
    fn choice_with_the_embedded_objects() {
        let objects = kernels::code_objects();
        for (decision, want) in [
            (native("gfx1010"), Some(("gfx1010", "gfx1010"))),
            (
                Decision::OverrideSafe {
                    real: "gfx1010".into(),
                },
                Some(("gfx1030", "gfx1010")),
            ),
            (native("gfx1030"), Some(("gfx1030", "gfx1030"))),
            (native("gfx1100"), Some(("gfx1100", "gfx1100"))),
            (native("gfx1999"), None),
        ] {
            let got = choose(&decision);
            let built = want
                .is_some_and(|(a, c)| objects.iter().any(|o| o.arch == a && o.compiled_for == c));
            match got {
                Ok(o) => assert_eq!(Some((o.arch, o.compiled_for)), want, "{decision:?}"),
                Err(e) => {
                    assert!(!built, "{decision:?}: {e}");
                    assert!(matches!(e, Error::NoKernelForArch { .. }), "{e}");
                }
            }
        }
        if objects.is_empty() {
            eprintln!("no embedded code objects in this build: only the error paths were checked");
        } else {
            let names: Vec<_> = objects
                .iter()
                .map(|o| format!("{}<-{}", o.arch, o.compiled_for))
                .collect();
            eprintln!("embedded code objects: {}", names.join(" "));
        }
    }

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kfd")
    }

    #[test]
    fn topology_fixtures() {
        // one RX 5700 XT (gfx1010) and a CPU node
        let nodes = read_topology(&fixtures().join("navi10/nodes"));
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].node, 1);
        assert_eq!(nodes[0].arch, "gfx1010");
        assert_eq!(nodes[0].gfx_target_version, 100100);
        let pci = nodes[0].pci.unwrap();
        assert_eq!((pci.domain, pci.bus, pci.device), (0, 3, 0));
        // the override leaves sysfs alone: the real chip comes from KFD even when HIP says gfx1030
        let r = ArchReport::from_parts("gfx1030", Some(pci), None, Some("10.3.0".into()), &nodes);
        assert_eq!(r.real.source, RealSource::Kfd(1));
        assert_eq!(
            r.decision,
            Decision::OverrideSafe {
                real: "gfx1010".into()
            }
        );
        assert!(
            r.describe().contains("real gfx1010 (KFD node 1)"),
            "{}",
            r.describe()
        );
        assert!(
            r.describe()
                .contains("HSA_OVERRIDE_GFX_VERSION=10.3.0 (gfx1030)"),
            "{}",
            r.describe()
        );

        // two different GPUs: matched by PCI location, unknown without it
        let nodes = read_topology(&fixtures().join("mixed/nodes"));
        let archs: Vec<_> = nodes.iter().map(|n| (n.node, n.arch.as_str())).collect();
        assert_eq!(archs, [(1, "gfx1030"), (2, "gfx1012"), (10, "gfx90a")]);
        let at = |bus| {
            Some(PciLocation {
                domain: 0,
                bus,
                device: 0,
            })
        };
        assert_eq!(
            real_arch(None, &nodes, at(0x0c)).arch.as_deref(),
            Some("gfx1012")
        );
        assert_eq!(
            real_arch(None, &nodes, at(0x03)).arch.as_deref(),
            Some("gfx1030")
        );
        assert_eq!(real_arch(None, &nodes, None).source, RealSource::Unknown);
        assert_eq!(real_arch(None, &nodes, at(0x44)).arch, None);
        // the environment wins
        let r = real_arch(Some("gfx1011"), &nodes, at(0x03));
        assert_eq!(
            (r.arch.as_deref(), r.source),
            (Some("gfx1011"), RealSource::Env)
        );

        // a kernel without gfx_target_version or PCI fields, and no topology at all
        let nodes = read_topology(&fixtures().join("old-kernel/nodes"));
        assert!(nodes.is_empty());
        assert!(read_topology(&fixtures().join("missing/nodes")).is_empty());
        let r = ArchReport::from_parts("gfx1030", None, None, Some("10.3.0".into()), &nodes);
        assert!(matches!(r.decision, Decision::Refuse { .. }));
        assert!(r.describe().contains("real chip unknown"));
    }

    #[test]
    fn property_lines() {
        let text = "cpu_cores_count 0\nsimd_count 40\ngfx_target_version 100100\nlocation_id 768\n";
        assert_eq!(property(text, "gfx_target_version"), Some(100100));
        assert_eq!(property(text, "simd_count"), Some(40));
        assert_eq!(property(text, "gfx_target"), None);
        assert_eq!(
            parse_node(0, "cpu_cores_count 8\ngfx_target_version 0\n"),
            None
        );
    }
}
