//! Compiling a tenant's MIB modules with mib-rs: every module the tenant
//! has (the ones uploaded before and the new ones, a new one replacing an
//! old one of the same name) together with mib-rs's built-in base modules
//! (SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF, RFC1155-SMI, ...), so that imports
//! resolve across uploads. A module with a problem (a missing import, a
//! syntax error) is still compiled as far as it goes and kept with its
//! diagnostics; a file that holds no module is kept as an error under its
//! file name.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use mib_rs::{DiagnosticConfig, Loader, Severity};
use regex::Regex;
use uuid::Uuid;

use crate::types::{
    Compiled, CompiledModule, Diagnostic, IndexPart, MibNode, ModuleSource, NamedNumber,
};

/// `NAME DEFINITIONS ::= BEGIN` (SMI allows `DEFINITIONS` with options such
/// as `IMPLICIT TAGS` before `::=`).
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^[ \t]*([A-Za-z][A-Za-z0-9-]*)[ \t\r\n]+DEFINITIONS\b[^:]{0,64}::=[ \t\r\n]*BEGIN\b",
    )
    .expect("a valid pattern")
});

/// Splits an uploaded file into its modules (most files hold one). A file
/// that is not text, or holds no module header, becomes one error module
/// named after the file, with an empty source.
pub fn split_file(
    file_name: &str,
    bytes: &[u8],
    file_id: Option<Uuid>,
) -> Result<Vec<ModuleSource>, Box<CompiledModule>> {
    let not_a_mib = |message: &str| {
        Box::new(CompiledModule {
            name: file_name.to_owned(),
            status: "error",
            diagnostics: vec![Diagnostic {
                severity: "error".to_owned(),
                code: "not-a-mib".to_owned(),
                message: message.to_owned(),
            }],
            imports: Vec::new(),
            objects: 0,
            source: String::new(),
            file_id,
        })
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(not_a_mib(
            "the file is not text (UTF-8), so it holds no MIB module",
        ));
    };
    if text.contains('\0') {
        return Err(not_a_mib(
            "the file is not text (it holds NUL bytes), so it holds no MIB module",
        ));
    }
    let starts: Vec<(usize, String)> = HEADER
        .captures_iter(text)
        .map(|c| (c.get(0).unwrap().start(), c[1].to_owned()))
        .collect();
    if starts.is_empty() {
        return Err(not_a_mib(
            "no module header (`NAME DEFINITIONS ::= BEGIN`) was found in the file",
        ));
    }
    Ok(starts
        .iter()
        .enumerate()
        .map(|(i, (at, name))| {
            let end = starts.get(i + 1).map_or(text.len(), |(next, _)| *next);
            ModuleSource {
                name: name.clone(),
                source: text[*at..end].to_owned(),
                file_id,
            }
        })
        .collect())
}

/// Splits an uploaded file, or each file of an uploaded zip archive, into
/// its modules. An archive's files that hold no module (a README) are
/// left out; an archive refused by the limits (`archive`), or holding no
/// module at all, is one error module named after it.
pub fn split_upload(
    file_name: &str,
    bytes: &[u8],
    file_id: Option<Uuid>,
) -> Result<Vec<ModuleSource>, Box<CompiledModule>> {
    if !crate::archive::is_zip(bytes) {
        return split_file(file_name, bytes, file_id);
    }
    let refused = |code: &str, message: String| {
        Box::new(CompiledModule {
            name: file_name.to_owned(),
            status: "error",
            diagnostics: vec![Diagnostic {
                severity: "error".to_owned(),
                code: code.to_owned(),
                message,
            }],
            imports: Vec::new(),
            objects: 0,
            source: String::new(),
            file_id,
        })
    };
    let entries = crate::archive::entries(bytes).map_err(|why| refused("archive-refused", why))?;
    let modules: Vec<ModuleSource> = entries
        .iter()
        .filter_map(|(name, data)| split_file(name, data, file_id).ok())
        .flatten()
        .collect();
    if modules.is_empty() {
        return Err(refused(
            "not-a-mib",
            "the archive holds no MIB module".to_owned(),
        ));
    }
    Ok(modules)
}

/// Compiles `stored` (the tenant's modules so far) with `new` (replacing
/// stored modules of the same name).
pub fn compile(stored: Vec<ModuleSource>, new: Vec<ModuleSource>) -> Result<Compiled, String> {
    let mut sources: BTreeMap<String, ModuleSource> = BTreeMap::new();
    for module in stored.into_iter().chain(new) {
        sources.insert(module.name.clone(), module);
    }
    if sources.is_empty() {
        return Ok(Compiled {
            modules: Vec::new(),
            nodes: Vec::new(),
        });
    }
    let texts: Vec<(String, String)> = sources
        .values()
        .map(|m| (m.name.clone(), m.source.clone()))
        .collect();
    // No system paths: only the tenant's modules and the built-in base. A
    // severe problem in one module must not lose the others: nothing fails
    // the load short of a fatal one.
    let mib = Loader::new()
        .source(mib_rs::source::memory_modules(texts))
        .diagnostic_config(DiagnosticConfig {
            fail_at: Severity::Fatal,
            ..DiagnosticConfig::default()
        })
        .load()
        .map_err(|e| format!("the MIB compiler failed: {e}"))?;

    let modules = sources
        .into_values()
        .map(|source| {
            let Some(module) = mib.module(&source.name) else {
                return CompiledModule {
                    status: "error",
                    diagnostics: vec![Diagnostic {
                        severity: "error".to_owned(),
                        code: "module-unreadable".to_owned(),
                        message: "the module could not be read: its header or structure is \
                                  malformed"
                            .to_owned(),
                    }],
                    imports: Vec::new(),
                    objects: 0,
                    name: source.name,
                    source: source.source,
                    file_id: source.file_id,
                };
            };
            let diagnostics: Vec<Diagnostic> = mib
                .diagnostics()
                .iter()
                .filter(|d| d.module.as_deref() == Some(module.name()))
                .map(|d| Diagnostic {
                    severity: d.severity.to_string(),
                    code: d.code.as_code().to_owned(),
                    message: d.message.clone(),
                })
                .collect();
            let failed = mib.diagnostics().iter().any(|d| {
                d.module.as_deref() == Some(module.name()) && d.severity <= Severity::Error
            });
            let mut imports: Vec<String> =
                module.imports().iter().map(|i| i.module.clone()).collect();
            imports.dedup();
            CompiledModule {
                status: if failed { "error" } else { "ok" },
                diagnostics,
                imports,
                objects: module.nodes().count() as i32,
                name: source.name,
                source: source.source,
                file_id: source.file_id,
            }
        })
        .collect();

    let nodes = mib
        .root_node()
        .subtree()
        .filter(|n| !n.oid().is_empty())
        .map(node)
        .collect();
    Ok(Compiled { modules, nodes })
}

fn some(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn node(n: mib_rs::Node<'_>) -> MibNode {
    let oid = n.oid().to_string();
    let object = n.object();
    let ty = object.and_then(|o| o.ty());
    MibNode {
        name: if n.name().is_empty() {
            n.arc().to_string()
        } else {
            n.name().to_owned()
        },
        module: n.module().map(|m| m.name().to_owned()),
        kind: n.kind().to_string(),
        syntax: ty.map(|t| t.name().to_owned()).filter(|s| !s.is_empty()),
        base_type: ty
            .map(|t| t.effective_base().to_string())
            .filter(|b| b != "Unknown" && !b.is_empty()),
        display_hint: object.and_then(|o| some(o.effective_display_hint())),
        enums: object
            .map(|o| {
                o.effective_enums()
                    .iter()
                    .map(|e| NamedNumber {
                        label: e.label.clone(),
                        value: e.value,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ranges: object
            .map(|o| o.effective_ranges().iter().map(|r| r.to_string()).collect())
            .unwrap_or_default(),
        sizes: object
            .map(|o| o.effective_sizes().iter().map(|r| r.to_string()).collect())
            .unwrap_or_default(),
        access: object.map(|o| o.access().to_string()),
        status: object
            .map(|o| o.status().to_string())
            .or_else(|| n.status().map(|s| s.to_string())),
        description: some(object.map_or_else(|| n.description(), |o| o.description())),
        units: object.and_then(|o| some(o.units())),
        indexes: object
            .filter(|o| o.is_row() || o.is_column())
            .map(|o| {
                o.effective_indexes()
                    .map(|i| IndexPart {
                        name: i.name().to_owned(),
                        implied: i.implied(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        augments: object
            .and_then(|o| o.augments())
            .map(|a| a.name().to_owned()),
        oid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "FERRO-TEST-MIB DEFINITIONS ::= BEGIN
IMPORTS MODULE-IDENTITY, OBJECT-TYPE, Integer32, enterprises FROM SNMPv2-SMI
        TEXTUAL-CONVENTION, DisplayString FROM SNMPv2-TC;
ferroTest MODULE-IDENTITY LAST-UPDATED \"202612080000Z\" ORGANIZATION \"Ferrostack\"
    CONTACT-INFO \"none\" DESCRIPTION \"A test module.\" ::= { enterprises 99999 }
PortState ::= TEXTUAL-CONVENTION STATUS current DESCRIPTION \"Up or down.\"
    SYNTAX INTEGER { up(1), down(2) }
ferroObjects OBJECT IDENTIFIER ::= { ferroTest 1 }
ferroName OBJECT-TYPE SYNTAX DisplayString (SIZE (0..64)) MAX-ACCESS read-only
    STATUS current DESCRIPTION \"The box's name.\" ::= { ferroObjects 1 }
ferroPortTable OBJECT-TYPE SYNTAX SEQUENCE OF FerroPortEntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION \"Ports.\" ::= { ferroObjects 2 }
ferroPortEntry OBJECT-TYPE SYNTAX FerroPortEntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION \"A port.\" INDEX { ferroPortIndex } ::= { ferroPortTable 1 }
FerroPortEntry ::= SEQUENCE { ferroPortIndex Integer32, ferroPortState PortState }
ferroPortIndex OBJECT-TYPE SYNTAX Integer32 (1..4096) MAX-ACCESS not-accessible
    STATUS current DESCRIPTION \"Port number.\" ::= { ferroPortEntry 1 }
ferroPortState OBJECT-TYPE SYNTAX PortState MAX-ACCESS read-only
    STATUS current DESCRIPTION \"Whether the port is up.\" ::= { ferroPortEntry 2 }
END
";

    const BROKEN_IMPORT: &str = "FERRO-VENDOR-MIB DEFINITIONS ::= BEGIN
IMPORTS OBJECT-TYPE, Integer32 FROM SNMPv2-SMI
        vendorRoot FROM NO-SUCH-MIB;
vendorThing OBJECT-TYPE SYNTAX Integer32 MAX-ACCESS read-only STATUS current
    DESCRIPTION \"Under a root from a missing module.\" ::= { vendorRoot 1 }
END
";

    fn module(name: &str, text: &str) -> ModuleSource {
        ModuleSource {
            name: name.to_owned(),
            source: text.to_owned(),
            file_id: None,
        }
    }

    #[test]
    fn files_are_split_into_modules_and_non_mibs_are_named_errors() {
        let two = format!("-- a comment\n{BASE}\n{BROKEN_IMPORT}");
        let split = split_file("two.txt", two.as_bytes(), None).unwrap();
        assert_eq!(
            split.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["FERRO-TEST-MIB", "FERRO-VENDOR-MIB"]
        );
        assert!(split[1].source.starts_with("FERRO-VENDOR-MIB DEFINITIONS"));
        let binary = split_file("blob.bin", b"\x7fELF\x02\x01\x00\xff", None).unwrap_err();
        assert_eq!((binary.name.as_str(), binary.status), ("blob.bin", "error"));
        let text = split_file("notes.txt", b"just some notes", None).unwrap_err();
        assert_eq!(text.diagnostics[0].code, "not-a-mib");
    }

    #[test]
    fn a_compile_resolves_objects_and_keeps_a_broken_module_with_its_error() {
        let compiled = compile(
            vec![module("FERRO-TEST-MIB", BASE)],
            vec![module("FERRO-VENDOR-MIB", BROKEN_IMPORT)],
        )
        .unwrap();
        let by_name = |n: &str| compiled.modules.iter().find(|m| m.name == n).unwrap();
        let ok = by_name("FERRO-TEST-MIB");
        assert_eq!(ok.status, "ok", "{:?}", ok.diagnostics);
        assert_eq!(ok.imports, ["SNMPv2-SMI", "SNMPv2-TC"]);
        assert!(ok.objects >= 6, "{}", ok.objects);
        let broken = by_name("FERRO-VENDOR-MIB");
        assert_eq!(broken.status, "error");
        assert!(
            broken
                .diagnostics
                .iter()
                .any(|d| d.code == "import-module-not-found" && d.message.contains("NO-SUCH-MIB")),
            "{:?}",
            broken.diagnostics
        );

        let node = |oid: &str| compiled.nodes.iter().find(|n| n.oid == oid).unwrap();
        let name = node("1.3.6.1.4.1.99999.1.1");
        assert_eq!(name.name, "ferroName");
        assert_eq!(name.kind, "scalar");
        assert_eq!(name.syntax.as_deref(), Some("DisplayString"));
        assert_eq!(name.base_type.as_deref(), Some("OCTET STRING"));
        assert_eq!(name.display_hint.as_deref(), Some("255a"));
        assert_eq!(name.sizes, ["0..64"]);
        assert_eq!(name.access.as_deref(), Some("read-only"));
        let state = node("1.3.6.1.4.1.99999.1.2.1.2");
        assert_eq!(state.kind, "column");
        assert_eq!(state.syntax.as_deref(), Some("PortState"));
        assert_eq!(
            state.enums,
            [
                NamedNumber {
                    label: "up".into(),
                    value: 1
                },
                NamedNumber {
                    label: "down".into(),
                    value: 2
                }
            ]
        );
        assert_eq!(
            state.indexes,
            [IndexPart {
                name: "ferroPortIndex".into(),
                implied: false
            }]
        );
        assert_eq!(node("1.3.6.1.4.1").name, "enterprises");
        assert_eq!(node("1.3.6.1.4.1").module.as_deref(), Some("SNMPv2-SMI"));
        let parents_first = compiled
            .nodes
            .iter()
            .position(|n| n.oid == "1.3.6.1.4.1.99999")
            .unwrap()
            < compiled
                .nodes
                .iter()
                .position(|n| n.oid == "1.3.6.1.4.1.99999.1")
                .unwrap();
        assert!(parents_first);
    }
}
