//! What the editor shows for `ax-plugin.toml`: schema errors with ranges, the
//! profile's startup recommendations at the key they concern, the sandbox's
//! denials recorded in the profile at the key that would allow them, the startup lens
//! on `[plugin]`, quick fixes (lazy loading, accepted thresholds, misspelt
//! keys), and completion and hover of keys.
//!
//! Validation is `ax-manifest`'s (its `path:line:col` error); recommendations
//! are `ax-profile`'s. This module only places them in the text.

use std::collections::HashMap;

use ax_manifest::{Manifest, ManifestError, Network, SandboxSection};
use ax_profile::Location;
use ax_profile::SandboxDenial;
use ax_profile::recommend::Severity;
use serde_json::json;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeLens, CompletionItem, CompletionItemKind, Diagnostic, DiagnosticSeverity,
    Documentation, Position, Range, TextEdit, Uri, WorkspaceEdit,
};

use crate::analysis::{diagnostic, lens, markdown};
use crate::format;
use crate::manifest_doc::{self, Located, TABLES, closest, keys_of, locate, table_at};
use crate::plugin::{PluginCrate, ProfileState};

fn range_of(l: &Located) -> Range {
    Range::new(Position::new(l.line, l.start), Position::new(l.line, l.end))
}

/// Where a dotted key is, or failing that its table's header, or `[plugin]`'s, or the top.
fn key_range(located: &[Located], key: &str) -> Range {
    let table = key.rsplit_once('.').map_or("", |(t, _)| t);
    located
        .iter()
        .find(|l| l.path == key)
        .or_else(|| located.iter().find(|l| l.is_table && l.path == table))
        .or_else(|| located.iter().find(|l| l.is_table && l.path == "plugin"))
        .map_or_else(|| Range::new(Position::new(0, 0), Position::new(0, 0)), range_of)
}

/// Schema errors, the profile's manifest recommendations, and an unreadable profile.
pub fn diagnostics(plugin: &PluginCrate) -> Vec<Diagnostic> {
    let located = locate(&plugin.manifest_text);
    let mut out = Vec::new();
    if let Err(ManifestError::Invalid { line, column, message, .. }) = &plugin.manifest {
        let line0 = (*line as u32).saturating_sub(1);
        let col0 = (*column as u32).saturating_sub(1);
        let on_line = located.iter().find(|l| l.line == line0);
        let range = match on_line {
            Some(l) if l.start <= col0 && col0 < l.end.max(l.start + 1) => range_of(l),
            Some(Located { value: Some((s, e)), .. }) if *s <= col0 && col0 < *e => {
                Range::new(Position::new(line0, *s), Position::new(line0, *e))
            }
            _ => {
                let len = plugin.manifest_text.lines().nth(line0 as usize).map_or(0, |t| t.len() as u32);
                Range::new(Position::new(line0, col0), Position::new(line0, len.max(col0 + 1)))
            }
        };
        let mut d = diagnostic(range, DiagnosticSeverity::ERROR, "schema", message.clone());
        if let Some(word) = unknown_field(message) {
            d.data = Some(json!({ "unknown": word }));
        }
        out.push(d);
    }
    match &plugin.profile {
        ProfileState::Broken(message) => {
            out.push(diagnostic(key_range(&located, "plugin"), DiagnosticSeverity::ERROR, "profile", message.clone()))
        }
        ProfileState::Loaded(lp) => {
            for r in &lp.profile.recommendations {
                let Location::Manifest { key } = &r.location else { continue };
                let severity = if r.severity == Severity::Warning {
                    DiagnosticSeverity::WARNING
                } else {
                    DiagnosticSeverity::INFORMATION
                };
                out.push(diagnostic(key_range(&located, key), severity, "startup", format!("{} {}", r.message, r.fix)));
            }
            if let Ok(Manifest { sandbox: Some(section), .. }) = &plugin.manifest {
                out.extend(sandbox_denials(&lp.profile.sandbox_denials, section, &located));
            }
        }
        ProfileState::Missing => {}
    }
    out
}

/// One warning per capability the last sandboxed run was denied: how often,
/// in which methods, placed on the key that would allow it (`network`,
/// `exec`) or on `[sandbox]` when no key does, saying what to write. A denial
/// the manifest grants by now (`exec = true` since) is not shown.
fn sandbox_denials(denials: &[SandboxDenial], section: &SandboxSection, located: &[Located]) -> Vec<Diagnostic> {
    let mut capabilities: Vec<&str> = denials.iter().map(|d| d.capability.as_str()).collect();
    capabilities.sort_unstable();
    capabilities.dedup();
    let mut out = Vec::new();
    for capability in capabilities {
        let (key, allow) = match capability {
            "exec" if section.exec => continue,
            "exec" => ("sandbox.exec", "to allow it, set `exec = true` under [sandbox]".to_owned()),
            "network" => (
                "sandbox.network",
                match section.network {
                    Network::None => "to allow it, set `network = \"loopback\"` under [sandbox] (Unix and IP \
                                      sockets) or `network = \"any\"` (netlink too)"
                        .to_owned(),
                    Network::Loopback => "raw and packet sockets stay denied; `network = \"any\"` adds netlink \
                                          sockets"
                        .to_owned(),
                    Network::Any => "raw and packet sockets are denied under every `network`".to_owned(),
                },
            ),
            other => ("sandbox", format!("no [sandbox] key allows {other}: it is denied to every sandboxed plugin")),
        };
        let of_it: Vec<&SandboxDenial> = denials.iter().filter(|d| d.capability == capability).collect();
        let total: u64 = of_it.iter().map(|d| d.count).sum();
        let methods: Vec<String> = of_it.iter().map(|d| format!("{} ×{}", d.method, d.count)).collect();
        let message = format!(
            "the sandbox denied {capability} {total}× in the last sandboxed run (in {}); {allow}",
            methods.join(", ")
        );
        out.push(diagnostic(key_range(located, key), DiagnosticSeverity::WARNING, "sandbox", message));
    }
    out
}

/// `unknown field `libary`, expected …` → `libary`.
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Lenses on `[plugin]`: startup time and phases (profile again), run, flame graph.
pub fn lenses(plugin: &PluginCrate) -> Vec<CodeLens> {
    let located = locate(&plugin.manifest_text);
    let Some(header) = located.iter().find(|l| l.is_table && l.path == "plugin") else { return Vec::new() };
    let range = Range::new(Position::new(header.line, 0), Position::new(header.line, 0));
    let dir = json!(plugin.dir.display().to_string());
    let mut out = Vec::new();
    match &plugin.profile {
        ProfileState::Loaded(lp) => {
            let title = match &lp.profile.startup {
                Some(s) => {
                    let phases: Vec<String> = s
                        .phases
                        .iter()
                        .map(|p| format!("{} {}", p.phase.name(), format::duration(p.duration_ns)))
                        .collect();
                    format!("startup {}: {} · profile again", format::duration(s.total_ns), phases.join(" · "))
                }
                None => "startup not measured · profile again".to_owned(),
            };
            out.push(lens(range, title, "ax.profile", dir.clone()));
            out.push(lens(
                range,
                "open flame graph".to_owned(),
                "ax.openFlamegraph",
                json!(plugin.profile_path.display().to_string()),
            ));
        }
        ProfileState::Missing => {
            out.push(lens(range, "no profile yet · profile this plugin".to_owned(), "ax.profile", dir.clone()))
        }
        ProfileState::Broken(_) => {
            out.push(lens(range, "profile unreadable · profile again".to_owned(), "ax.profile", dir.clone()))
        }
    }
    out.push(lens(range, "run".to_owned(), "ax.run", dir));
    out
}

/// A workspace edit setting `table.key = value` in the manifest: the value
/// replaced where the key is, else a line added at the end of the table, else
/// the table added at the end of the file.
pub fn set_key(plugin: &PluginCrate, table: &str, key: &str, value: &str) -> Option<WorkspaceEdit> {
    let located = locate(&plugin.manifest_text);
    let path = format!("{table}.{key}");
    let edit = if let Some(Located { line, value: Some((s, e)), .. }) = located.iter().find(|l| l.path == path) {
        TextEdit::new(Range::new(Position::new(*line, *s), Position::new(*line, *e)), value.to_owned())
    } else if let Some(header) = located.iter().find(|l| l.is_table && l.path == table) {
        let last = located
            .iter()
            .skip_while(|l| !std::ptr::eq(*l, header))
            .skip(1)
            .take_while(|l| !l.is_table)
            .last()
            .map_or(header.line, |l| l.line);
        let at = Position::new(last + 1, 0);
        TextEdit::new(Range::new(at, at), format!("{key} = {value}\n"))
    } else {
        let lines = plugin.manifest_text.lines().count() as u32;
        let at = Position::new(lines, 0);
        let sep = if plugin.manifest_text.ends_with('\n') || plugin.manifest_text.is_empty() { "" } else { "\n" };
        TextEdit::new(Range::new(at, at), format!("{sep}\n[{table}]\n{key} = {value}\n"))
    };
    let uri = Uri::from_file_path(&plugin.manifest_path)?;
    Some(WorkspaceEdit { changes: Some(HashMap::from([(uri, vec![edit])])), ..Default::default() })
}

/// Quick fixes: load lazily, accept a measured threshold, fix a misspelt key.
pub fn actions(plugin: &PluginCrate, range: Range, diagnostics: &[Diagnostic]) -> Vec<CodeAction> {
    let mut out = Vec::new();
    let located = locate(&plugin.manifest_text);
    let touches = |r: Range| r.start.line <= range.end.line && range.start.line <= r.end.line;
    if let ProfileState::Loaded(lp) = &plugin.profile {
        let lazy = plugin.manifest.as_ref().is_ok_and(|m| m.plugin.lazy);
        for r in &lp.profile.recommendations {
            let Location::Manifest { key } = &r.location else { continue };
            if !touches(key_range(&located, key)) {
                continue;
            }
            let startup = key.starts_with("startup.");
            if startup
                && !lazy
                && !out.iter().any(|a: &CodeAction| a.title.starts_with("Load the plugin lazily"))
                && let Some(edit) = set_key(plugin, "plugin", "lazy", "true")
            {
                out.push(quickfix(
                    "Load the plugin lazily (`lazy = true`): startup no longer waits for it".to_owned(),
                    edit,
                    true,
                ));
            }
            if let Some(e) = &r.edit
                && let Some((table, k)) = e.key.rsplit_once('.')
                && let Some(edit) = set_key(plugin, table, k, &format!("\"{}\"", e.value))
            {
                out.push(quickfix(format!("Accept the measured cost: {} = \"{}\"", e.key, e.value), edit, false));
            }
        }
    }
    for d in diagnostics.iter().filter(|d| d.source.as_deref() == Some(crate::analysis::SOURCE) && touches(d.range)) {
        let Some(word) = d.data.as_ref().and_then(|v| v["unknown"].as_str()) else { continue };
        let table = table_at(&located, d.range.start.line);
        let on_header = located.iter().any(|l| l.is_table && l.line == d.range.start.line);
        let fix = if on_header || table.is_empty() {
            let prefix =
                if table.contains('.') && on_header { table.rsplit_once('.').map_or("", |(p, _)| p) } else { "" };
            let names = TABLES.iter().filter_map(|(t, _)| {
                if prefix.is_empty() {
                    (!t.contains('.')).then_some(*t)
                } else {
                    t.strip_prefix(prefix)?.strip_prefix('.')
                }
            });
            closest(word, names)
        } else {
            closest(word, keys_of(&table).map(|k| k.key))
        };
        let Some(fix) = fix else { continue };
        let Some(uri) = Uri::from_file_path(&plugin.manifest_path) else { continue };
        let line = plugin.manifest_text.lines().nth(d.range.start.line as usize).unwrap_or("");
        let Some(col) = line.find(word) else { continue };
        let r = Range::new(
            Position::new(d.range.start.line, col as u32),
            Position::new(d.range.start.line, (col + word.len()) as u32),
        );
        let edit = WorkspaceEdit {
            changes: Some(HashMap::from([(uri, vec![TextEdit::new(r, fix.to_owned())])])),
            ..Default::default()
        };
        let mut action = quickfix(format!("Change `{word}` to `{fix}`"), edit, true);
        action.diagnostics = Some(vec![d.clone()]);
        out.push(action);
    }
    out
}

fn quickfix(title: String, edit: WorkspaceEdit, preferred: bool) -> CodeAction {
    CodeAction {
        title,
        kind: Some(CodeActionKind::QUICKFIX),
        edit: Some(edit),
        is_preferred: Some(preferred),
        ..Default::default()
    }
}

/// Completion at `pos`: table names after `[`, else the keys of the current table.
pub fn completion(text: &str, pos: Position) -> Vec<CompletionItem> {
    let line = text.lines().nth(pos.line as usize).unwrap_or("");
    let before = &line[..(pos.character as usize).min(line.len())];
    if before.trim_start().starts_with('[') {
        return TABLES
            .iter()
            .map(|(t, doc)| CompletionItem {
                label: (*t).to_owned(),
                kind: Some(CompletionItemKind::MODULE),
                documentation: Some(Documentation::MarkupContent(markdown((*doc).to_owned()))),
                ..Default::default()
            })
            .collect();
    }
    if before.contains('=') {
        return Vec::new();
    }
    let located = locate(text);
    let table = table_at(&located, pos.line);
    keys_of(&table)
        .map(|k| CompletionItem {
            label: k.key.to_owned(),
            kind: Some(CompletionItemKind::PROPERTY),
            detail: Some(format!("[{}] {} = {}", k.table, k.key, k.example)),
            documentation: Some(Documentation::MarkupContent(markdown(k.doc.to_owned()))),
            insert_text: Some(format!("{} = {}", k.key, k.example)),
            ..Default::default()
        })
        .collect()
}

/// Hover on a key or table header: its documentation.
pub fn hover(text: &str, pos: Position) -> Option<(String, Range)> {
    let located = locate(text);
    let l = located.iter().find(|l| l.line == pos.line && l.start <= pos.character && pos.character <= l.end)?;
    Some((manifest_doc::doc_of(&l.path)?, range_of(l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_with(manifest: &str) -> (tempfile::TempDir, PluginCrate) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ax-plugin.toml"), manifest).unwrap();
        let c = PluginCrate::read(dir.path());
        (dir, c)
    }

    fn only_edit(e: WorkspaceEdit) -> TextEdit {
        e.changes.unwrap().into_values().next().unwrap().remove(0)
    }

    #[test]
    fn set_key_replaces_inserts_or_appends_a_table() {
        let text = "[plugin]\nname = \"wc\"\nversion = \"1\"\n\n[budget.functions]\ncount = \"1ms\"\n";
        let (_d, c) = crate_with(text);
        let e = only_edit(set_key(&c, "budget.functions", "count", "\"2ms\"").unwrap());
        assert_eq!(
            (e.range.start, e.range.end, e.new_text.as_str()),
            (Position::new(5, 8), Position::new(5, 13), "\"2ms\"")
        );
        let e = only_edit(set_key(&c, "plugin", "lazy", "true").unwrap());
        assert_eq!((e.range.start, e.new_text.as_str()), (Position::new(3, 0), "lazy = true\n"));
        let e = only_edit(set_key(&c, "startup", "max_phase", "\"80ms\"").unwrap());
        assert_eq!((e.range.start, e.new_text.as_str()), (Position::new(6, 0), "\n[startup]\nmax_phase = \"80ms\"\n"));
    }

    #[test]
    fn schema_error_is_placed_on_the_key_with_a_fix() {
        let (_d, c) = crate_with("[plugin]\nname = \"wc\"\nversion = \"1\"\nlazzy = true\n");
        let d = diagnostics(&c);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].range, Range::new(Position::new(3, 0), Position::new(3, 5)));
        let actions = actions(&c, d[0].range, &d);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].title, "Change `lazzy` to `lazy`");
    }

    #[test]
    fn completion_offers_the_keys_of_the_current_table() {
        let items = completion("[plugin]\nname = \"wc\"\n\n[startup]\n\n", Position::new(4, 0));
        let labels: Vec<_> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["max_total", "max_phase", "max_memory_growth"]);
        assert!(completion("[", Position::new(0, 1)).iter().any(|i| i.label == "budget.functions"));
        assert!(completion("[plugin]\nname = ", Position::new(1, 7)).is_empty());
    }
}
