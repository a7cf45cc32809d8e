//! What the editor shows for a Rust file of a plugin crate: profile spans
//! mapped to the functions of the current text, and from them inlay hints,
//! hovers, diagnostics, code lenses and code actions.
//!
//! Pure functions of (plugin crate, file path, text, settings): no I/O, no
//! client, so the server can call them from any handler and the benchmark can
//! time them directly. Spans are mapped by function *name* (a span of
//! `#[instrument]` is named after its function), the recorded line only
//! choosing between functions of the same name, so positions survive edits
//! made after profiling; the hover says when the recorded line no longer
//! matches.
//!
//! With a baseline (`.ax/baseline.json`) the hint is the median and its change
//! (`p50 42 µs (+12% vs baseline)`, or `±3%, not significant`: short, since
//! VS Code cuts labels at about 43 characters), the hover gives the test and
//! both medians, a significant slowdown past `baseline.threshold` or a
//! `[budget.functions]` target is a warning, and a code action accepts the
//! current profile as the new baseline (`ax-lsp.acceptBaseline`, which the
//! server runs). A function whose calls keep memory that grows with their
//! number gets a warning and a hover line.

use std::collections::HashMap;
use std::path::Path;

use ax_profile::{CallsiteKind, CallsiteProfile};
use serde_json::json;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeLens, Command, Diagnostic, DiagnosticSeverity, InlayHint,
    InlayHintLabel, InlayHintTooltip, MarkupContent, MarkupKind, NumberOrString, Position, Range,
};

use crate::format;
use crate::manifest as manifest_edit;
use crate::plugin::{LoadedProfile, PluginCrate};
use crate::scan::{FnItem, Outline};
use crate::settings::{Percentile, Settings, Share};

/// The diagnostics' `source`.
pub const SOURCE: &str = "ax";

/// The one command the server runs itself: save the crate's current profile
/// (argument: the crate directory) as its baseline.
pub const ACCEPT_BASELINE: &str = "ax-lsp.acceptBaseline";

/// A profiled span mapped to a function of the current text.
pub struct FnStat<'a> {
    pub item: &'a FnItem,
    pub site: &'a CallsiteProfile,
    /// Index of `site` in the profile's callsites.
    pub index: usize,
    /// The recorded line no longer falls on the function's attributes or signature.
    pub moved: bool,
}

/// A profiled probe mapped to a `probe!` line of the current text.
pub struct ProbeStat<'a> {
    pub line: u32,
    pub site: &'a CallsiteProfile,
}

/// Spans and probes of `lp` recorded in the file at `path`, mapped onto `outline`.
pub fn map<'a>(outline: &'a Outline, lp: &'a LoadedProfile, path: &Path) -> (Vec<FnStat<'a>>, Vec<ProbeStat<'a>>) {
    let mut fns = Vec::new();
    let mut probes = Vec::new();
    // Functions by name, built once: a file of 1 000 functions against a
    // profile of 1 000 spans must not compare every pair.
    let mut by_name: HashMap<&str, Vec<&FnItem>> = HashMap::with_capacity(outline.fns.len());
    for f in &outline.fns {
        by_name.entry(f.name.as_str()).or_default().push(f);
    }
    let nearest = |name: &str, line: u32| nearest_named(by_name.get(name).map_or(&[][..], Vec::as_slice), line);
    for (index, site) in lp.profile.callsites.iter().enumerate() {
        if lp.files.get(&site.file).is_none_or(|p| p != path) {
            continue;
        }
        let recorded = site.line.saturating_sub(1);
        match site.kind {
            CallsiteKind::Span => {
                let Some(item) = nearest(&site.name, recorded) else { continue };
                let moved = site.line != 0 && !(item.attr_line <= recorded && recorded <= item.sig_line);
                fns.push(FnStat { item, site, index, moved });
            }
            CallsiteKind::Probe => {
                let fn_name = site.name.rsplit("::").next().unwrap_or(&site.name);
                let owner = nearest(fn_name, recorded);
                let line = outline
                    .probes
                    .iter()
                    .filter(|(_, f)| owner.is_none() || f.map(|i| &outline.fns[i]) == owner)
                    .map(|&(l, _)| l)
                    .min_by_key(|&l| l.abs_diff(recorded));
                if let Some(line) = line {
                    probes.push(ProbeStat { line, site });
                }
            }
            CallsiteKind::Event => {}
        }
    }
    (fns, probes)
}

/// Of the functions of one name, the one whose attributes or signature hold
/// `line`, else the one nearest to it.
fn nearest_named<'a>(candidates: &[&'a FnItem], line: u32) -> Option<&'a FnItem> {
    candidates
        .iter()
        .copied()
        .min_by_key(|f| if f.attr_line <= line && line <= f.sig_line { 0 } else { f.fn_line.abs_diff(line) + 1 })
}

/// The hint text: `p50 1.2 ms · p95 4.8 ms · 1.3k calls · 34% of profile`. The share
/// is always labelled (`of profile`: total time over the profile's; `of caller`),
/// since the lens beside it shows a different one (self time, `self of profile`).
pub fn hint_label(lp: &LoadedProfile, stat: &FnStat<'_>, settings: &Settings) -> String {
    let p = &lp.percentiles[stat.index];
    if lp.baseline.is_some() {
        let change = match &lp.changes[stat.index] {
            Some(c) if c.significant => format!("{} vs baseline", c.summary()),
            Some(c) => c.summary(),
            None => "new since baseline".to_owned(),
        };
        let mut label = format!("p50 {} ({change})", format::duration(p[Percentile::P50 as usize]));
        if settings.calls {
            label.push_str(&format!(" · {}", format::counted(stat.site.count, "call")));
        }
        return label;
    }
    let mut parts: Vec<String> =
        settings.percentiles.iter().map(|&q| format!("{} {}", q.name(), format::duration(p[q as usize]))).collect();
    if settings.calls {
        parts.push(format::counted(stat.site.count, "call"));
    }
    match settings.share {
        Share::Profile if lp.profiled_ns > 0 => {
            let total = stat.site.time.as_ref().map_or(0, |t| t.total_ns());
            parts.push(format!("{} of profile", format::percent(total as f64 / lp.profiled_ns as f64)));
        }
        Share::Parent => {
            if let Some(share) = lp.parent_share.get(&stat.site.name) {
                parts.push(format!("{} of caller", format::percent(*share)));
            }
        }
        _ => {}
    }
    parts.join(" · ")
}

/// Inlay hints at the end of each profiled function's signature line.
pub fn inlay_hints(
    plugin: &PluginCrate,
    path: &Path,
    text: &str,
    outline: &Outline,
    settings: &Settings,
) -> Vec<InlayHint> {
    let Some(lp) = plugin.loaded() else { return Vec::new() };
    if !settings.hints_enabled {
        return Vec::new();
    }
    let (fns, _) = map(outline, lp, path);
    let lines = LineIndex::new(text);
    fns.iter()
        .map(|stat| InlayHint {
            position: Position::new(stat.item.sig_line, lines.end_utf16(stat.item.sig_line)),
            label: InlayHintLabel::String(hint_label(lp, stat, settings)),
            kind: None,
            text_edits: None,
            tooltip: Some(InlayHintTooltip::String(format!(
                "ax profile of {} ({}); hover the function for the full table",
                stat.site.name,
                stat.site.location()
            ))),
            padding_left: Some(true),
            padding_right: None,
            data: None,
        })
        .collect()
}

/// The markdown hover of the function or probe at `line`, if it is profiled.
pub fn hover(plugin: &PluginCrate, path: &Path, text: &str, line: u32) -> Option<String> {
    let lp = plugin.loaded()?;
    let outline = crate::scan::scan(text);
    let (fns, probes) = map(&outline, lp, path);
    if let Some(stat) = fns.iter().find(|s| s.item.attr_line <= line && line <= s.item.sig_line) {
        return Some(fn_hover(plugin, lp, stat, path));
    }
    let probe = probes.iter().find(|p| p.line == line)?;
    Some(format!(
        "### probe in `{}`\n\n| | |\n|:--|--:|\n| hits | {} |\n| recorded at | {} |\n\n{}",
        probe.site.name,
        probe.site.count,
        probe.site.location(),
        taken(lp)
    ))
}

fn fn_hover(plugin: &PluginCrate, lp: &LoadedProfile, stat: &FnStat<'_>, path: &Path) -> String {
    let site = stat.site;
    let p = &lp.percentiles[stat.index];
    let mut md = format!("### `{}` · ax profile\n\n| | |\n|:--|--:|\n", site.name);
    let mut row = |k: &str, v: String| md.push_str(&format!("| {k} | {v} |\n"));
    row("calls", site.count.to_string());
    if let Some(t) = &site.time {
        row("total", format::duration(t.total_ns()));
        row("self", format::duration(t.self_ns()));
        row("CPU", t.cpu_ns().map_or_else(|| "not measured (`--profile-cpu`)".to_owned(), format::duration));
        row("mean", format::duration(t.mean_ns()));
        row("min", format::duration(t.min_ns()));
    }
    row(
        "allocated",
        site.alloc_bytes.map_or_else(|| "not measured (SDK counting allocator)".to_owned(), format::bytes),
    );
    if let Some(kept) = &site.kept {
        let trend = match lp.leaks.get(&stat.index) {
            Some(leak) => format!("**{}**", leak.describe()),
            None => "not growing with the calls".to_owned(),
        };
        row("kept", format!("{} per call (self); {trend}", ax_profile::kept::bytes(kept.per_call().round() as i64)));
    }
    if lp.baseline.is_some() {
        row("vs baseline", baseline_text(lp, stat.index));
    }
    for q in Percentile::ALL {
        row(q.name(), format::duration(p[q as usize]));
    }
    match plugin.budget_of(&site.name) {
        Some((ns, from)) => {
            let verdict = if p[Percentile::P95 as usize] > ns { "**p95 over budget**" } else { "p95 within" };
            row("budget", format!("{} ({from}): {verdict}", format::duration(ns)));
        }
        None => row("budget", "none (`[budget.functions]` in ax-plugin.toml)".to_owned()),
    }
    row("budget violations", site.budget_violations.to_string());
    if lp.profiled_ns > 0 {
        let total = site.time.as_ref().map_or(0, |t| t.total_ns());
        let mut share = format!("{} of profile", format::percent(total as f64 / lp.profiled_ns as f64));
        if let Some(s) = lp.parent_share.get(&site.name) {
            share.push_str(&format!(", {} of caller", format::percent(*s)));
        }
        row("share", share);
    }
    if let Some(t) = &site.time {
        md.push_str(&format!("\n```text\n{}```\n", format::histogram(&t.histogram().buckets())));
    }
    md.push_str(&format!("\n{}\n", taken(lp)));
    if let Some(b) = &lp.baseline {
        md.push_str(&format!("\n_Baseline taken {} by `{}`._\n", b.taken_at, b.command));
    }
    if let Some(e) = &plugin.baseline_error {
        md.push_str(&format!("\n⚠ Baseline ignored: {e}\n"));
    }
    if stat.moved {
        md.push_str(&format!(
            "\n⚠ The source changed since profiling: `{}` was recorded at line {}, it is now at line {}. Figures are those of the profiled build.\n",
            site.name,
            site.line,
            stat.item.attr_line + 1
        ));
    } else if let (Some(written), Ok(modified)) = (lp.written, std::fs::metadata(path).and_then(|m| m.modified()))
        && modified > written
    {
        md.push_str("\n⚠ The file was saved after the profile was taken: figures are those of the profiled build.\n");
    }
    md
}

/// The hover's baseline line: both medians, the change and the test.
fn baseline_text(lp: &LoadedProfile, index: usize) -> String {
    match &lp.changes[index] {
        None => "new since the baseline".to_owned(),
        Some(c) => format!(
            "p50 {} → {}: {} (Mann–Whitney U on the histograms, {}; {} vs {} calls)",
            format::duration(c.base_p50),
            format::duration(c.p50),
            if c.significant { format!("**{}**", c.summary()) } else { c.summary() },
            c.p_text(),
            c.base_count,
            c.count
        ),
    }
}

fn taken(lp: &LoadedProfile) -> String {
    let p = &lp.profile;
    let ago = humantime_ago(&p.taken_at).map(|a| format!(" ({a} ago)")).unwrap_or_default();
    format!(
        "_Profile taken {}{ago} by `{}` ({}, {} run{})._",
        p.taken_at,
        p.command,
        p.tool,
        p.runs,
        if p.runs == 1 { "" } else { "s" }
    )
}

fn humantime_ago(rfc3339: &str) -> Option<String> {
    let when = parse_rfc3339(rfc3339)?;
    let secs = std::time::SystemTime::now().duration_since(when).ok()?.as_secs();
    Some(match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format::counted(secs / 86_400, "day"),
    })
}

/// `2026-11-26T23:18:18Z` → a time (UTC, seconds); the profile crate writes exactly this form.
fn parse_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Diagnostics of a Rust file: p95 over budget (warning), recorded budget
/// violations (error), the profile's top hot spots (information).
pub fn rust_diagnostics(plugin: &PluginCrate, path: &Path, text: &str, settings: &Settings) -> Vec<Diagnostic> {
    let Some(lp) = plugin.loaded() else { return Vec::new() };
    let outline = crate::scan::scan(text);
    let (fns, _) = map(&outline, lp, path);
    let lines = LineIndex::new(text);
    let hot = lp.profile.hottest(settings.hot_spots);
    let mut out = Vec::new();
    for stat in &fns {
        let range = name_range(&lines, stat.item);
        let name = &stat.site.name;
        let p95 = lp.percentiles[stat.index][Percentile::P95 as usize];
        if let Some((budget, from)) = plugin.budget_of(name)
            && p95 > budget
        {
            out.push(diagnostic(
                range,
                DiagnosticSeverity::WARNING,
                "over-budget",
                format!(
                    "`{name}`: p95 {} is over its budget {} ({from})",
                    format::duration(p95),
                    format::duration(budget)
                ),
            ));
        }
        if stat.site.budget_violations > 0 {
            out.push(diagnostic(
                range,
                DiagnosticSeverity::ERROR,
                "budget-violation",
                format!(
                    "`{name}`: {} call{} stopped by a budget while this function ran (see [budget] in ax-plugin.toml)",
                    stat.site.budget_violations,
                    if stat.site.budget_violations == 1 { " was" } else { "s were" }
                ),
            ));
        }
        if let Some(c) = lp.changes[stat.index].filter(|c| c.regressed()) {
            let target = plugin.function_budget(name).filter(|&(ns, _)| p95 > ns);
            if c.ratio >= settings.regression_threshold || target.is_some() {
                let why = match target {
                    Some((ns, from)) => {
                        format!("p95 {} is over its target {} ({from})", format::duration(p95), format::duration(ns))
                    }
                    None => format!("over the {} threshold", format::percent(settings.regression_threshold)),
                };
                out.push(diagnostic(
                    range,
                    DiagnosticSeverity::WARNING,
                    "regression",
                    format!(
                        "`{name}`: p50 {} vs baseline ({} → {}, {}); {why}",
                        c.summary(),
                        format::duration(c.base_p50),
                        format::duration(c.p50),
                        c.p_text()
                    ),
                ));
            }
        }
        if let Some(leak) = lp.leaks.get(&stat.index) {
            out.push(diagnostic(
                range,
                DiagnosticSeverity::WARNING,
                "leak",
                format!("`{name}` {}: memory it allocates stays allocated after its calls", leak.describe()),
            ));
        }
        if let Some(rank) = hot.iter().position(|h| std::ptr::eq(*h, stat.site)) {
            let share = if lp.profiled_ns > 0 {
                format!(" ({} self of profile)", format::percent(stat.site.self_ns() as f64 / lp.profiled_ns as f64))
            } else {
                String::new()
            };
            out.push(diagnostic(
                range,
                DiagnosticSeverity::INFORMATION,
                "hot-spot",
                format!(
                    "hot spot #{}: `{name}` self time {}{share} over {}",
                    rank + 1,
                    format::duration(stat.site.self_ns()),
                    format::counted(stat.site.count, "call")
                ),
            ));
        }
    }
    out
}

pub fn diagnostic(range: Range, severity: DiagnosticSeverity, code: &str, message: String) -> Diagnostic {
    Diagnostic {
        range,
        severity: Some(severity),
        code: Some(NumberOrString::String(code.to_owned())),
        source: Some(SOURCE.to_owned()),
        message,
        ..Default::default()
    }
}

fn name_range(lines: &LineIndex<'_>, item: &FnItem) -> Range {
    let text = lines.line(item.fn_line);
    let needle = format!("fn {}", item.name);
    match text.find(&needle) {
        Some(at) => {
            let start = utf16_len(&text[..at + 3]);
            Range::new(Position::new(item.fn_line, start), Position::new(item.fn_line, start + item.name.len() as u32))
        }
        None => Range::new(Position::new(item.fn_line, 0), Position::new(item.fn_line, utf16_len(text))),
    }
}

/// Code lenses above the hottest functions: profile again, open the flame graph.
pub fn rust_lenses(plugin: &PluginCrate, path: &Path, text: &str, settings: &Settings) -> Vec<CodeLens> {
    let Some(lp) = plugin.loaded() else { return Vec::new() };
    let outline = crate::scan::scan(text);
    let (fns, _) = map(&outline, lp, path);
    let hot = lp.profile.hottest(if settings.hot_spots == 0 { 5 } else { settings.hot_spots });
    let mut out = Vec::new();
    for stat in &fns {
        let Some(rank) = hot.iter().position(|h| std::ptr::eq(*h, stat.site)) else { continue };
        let line = stat.item.attr_line;
        let range = Range::new(Position::new(line, 0), Position::new(line, 0));
        let share = if lp.profiled_ns > 0 {
            format!(", {} self of profile", format::percent(stat.site.self_ns() as f64 / lp.profiled_ns as f64))
        } else {
            String::new()
        };
        out.push(lens(
            range,
            format!("hot spot #{}{share} · profile again", rank + 1),
            "ax.profile",
            json!(plugin.dir.display().to_string()),
        ));
        out.push(lens(
            range,
            "open flame graph".to_owned(),
            "ax.openFlamegraph",
            json!(plugin.profile_path.display().to_string()),
        ));
    }
    out
}

pub fn lens(range: Range, title: String, command: &str, arg: serde_json::Value) -> CodeLens {
    CodeLens {
        range,
        command: Some(Command { title, command: command.to_owned(), arguments: Some(vec![arg]) }),
        data: None,
    }
}

/// Quick fix on a profiled function: a `[budget.functions]` entry from its p99 plus a quarter.
pub fn rust_actions(plugin: &PluginCrate, path: &Path, text: &str, range: Range) -> Vec<CodeActionOrCommand> {
    let Some(lp) = plugin.loaded() else { return Vec::new() };
    let outline = crate::scan::scan(text);
    let (fns, _) = map(&outline, lp, path);
    let mut out = Vec::new();
    let in_range: Vec<&FnStat<'_>> =
        fns.iter().filter(|s| s.item.attr_line <= range.end.line && range.start.line <= s.item.end_line).collect();
    if lp.baseline.is_some() && !in_range.is_empty() {
        // A bare command, not a CodeAction carrying one: some clients
        // (pygls' lsprotocol) read the latter as a malformed Command.
        out.push(CodeActionOrCommand::Command(Command {
            title: format!("Accept the current profile as the new baseline ({})", lp.profile.taken_at),
            command: ACCEPT_BASELINE.to_owned(),
            arguments: Some(vec![json!(plugin.dir.display().to_string())]),
        }));
    }
    for stat in in_range {
        let p99 = lp.percentiles[stat.index][Percentile::P99 as usize];
        let value = format::manifest_duration(p99 + p99 / 4);
        let Some(edit) = manifest_edit::set_key(plugin, "budget.functions", &stat.site.name, &format!("\"{value}\""))
        else {
            continue;
        };
        out.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: format!(
                "Set a budget for `{}`: {value} (p99 {} + 25%) in ax-plugin.toml",
                stat.site.name,
                format::duration(p99)
            ),
            kind: Some(CodeActionKind::QUICKFIX),
            edit: Some(edit),
            ..Default::default()
        }));
    }
    out
}

/// Line starts of a text, to find a line and its length in UTF-16 units (LSP's
/// default position encoding) without splitting the whole text per request.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(memchr_newlines(text));
        LineIndex { text, starts }
    }

    pub fn line(&self, line: u32) -> &'a str {
        let Some(&start) = self.starts.get(line as usize) else { return "" };
        let end = self.starts.get(line as usize + 1).map_or(self.text.len(), |e| e - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    pub fn end_utf16(&self, line: u32) -> u32 {
        utf16_len(self.line(line))
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1)
}

pub fn utf16_len(s: &str) -> u32 {
    if s.is_ascii() { s.len() as u32 } else { s.encode_utf16().count() as u32 }
}

/// Markdown the way clients want it.
pub fn markdown(value: String) -> MarkupContent {
    MarkupContent { kind: MarkupKind::Markdown, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_to_the_second() {
        let t = parse_rfc3339("1970-01-02T00:00:01Z").unwrap();
        assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 86_401);
        let t = parse_rfc3339("2026-11-26T23:18:18Z").unwrap();
        assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 1_795_735_098);
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
