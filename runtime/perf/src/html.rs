//! The HTML performance report (`ax perf report --html`): one self-contained
//! page from a profile, optionally with an `ax perf ab` result and an
//! `ax perf compare` of two runs.
//!
//! The page needs nothing but itself: CSS, scripts and SVG are inline, a
//! content security policy forbids every fetch, so it reads the same from
//! `file://`, a mail attachment or a VS Code webview. Its sections, in order:
//! the flame graph (inferno's SVG with its own zoom script, kept as inferno
//! wrote it but for a guard against a negative width; it must be the page's
//! first `<svg>`, which that script looks up), the functions table, a latency histogram of the selected function,
//! calls per method, the startup waterfall, the comparisons with their
//! confidence intervals, the recommendations and the provenance.
//!
//! What is static (startup, comparisons, provenance) is written here as HTML;
//! the functions table and the histograms are drawn by `html/report.js` from
//! one JSON block, so that a profile of 10 000 functions costs one row array
//! each, not markup. Each table column is one entry of [`COLUMNS`]: a key, a
//! label, a kind that says how the page formats and sorts it, and the function
//! that reads its value off a callsite. A figure added to the profile becomes
//! a column by adding an entry there; the script needs no change.

use std::fmt::Write as _;

use ax_profile::{CallsiteKind, CallsiteProfile, Location, Profile, Time};
use serde_json::{Value, json};

use crate::ab::AbReport;
use crate::compare::ReportComparison;
use crate::render::{duration, percent};
use crate::report::Machine;

const CSS: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");

/// The line of inferno's script that sizes the frames to the SVG's width, and
/// the same never below one pixel (a test fails if inferno's text changes).
const INFERNO_FRAMES_WIDTH: &str = "frames.attributes.width.value = svg.width.baseVal.value - xpad * 2;";
const INFERNO_FRAMES_WIDTH_GUARDED: &str =
    "frames.attributes.width.value = Math.max(1, svg.width.baseVal.value - xpad * 2);";

/// At most this many bars in a function's latency histogram: the HDR buckets
/// (up to 128 per doubling) are summed into log-spaced bins.
pub const HISTOGRAM_BINS: usize = 40;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// inferno refused the profile's stacks.
    #[error("cannot draw the flame graph of the profile's stacks: {0}")]
    Flamegraph(String),
}

/// Who wrote the report, where and when (the profile says when it was taken).
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// RFC 3339, UTC.
    pub at: String,
    /// `ax 0.1.0`.
    pub tool: String,
    /// The machine the report was written on.
    pub machine: Machine,
}

impl Written {
    /// Written now, by `tool`, on this machine.
    pub fn now(tool: impl Into<String>) -> Written {
        Written {
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            tool: tool.into(),
            machine: Machine::current(),
        }
    }
}

/// Two `ax perf run` reports compared, with the files they came from.
#[derive(Clone, Debug)]
pub struct Compared<'a> {
    pub base: &'a str,
    pub new: &'a str,
    pub comparison: &'a ReportComparison,
}

/// What goes into a report.
#[derive(Clone, Debug)]
pub struct ReportInput<'a> {
    /// The profile and the file it came from.
    pub profile: &'a Profile,
    pub profile_path: &'a str,
    /// An `ax perf ab` result and its file.
    pub ab: Option<(&'a str, &'a AbReport)>,
    pub compared: Option<Compared<'a>>,
    pub written: Written,
}

/// How the page formats and sorts a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text, sorted alphabetically.
    Text,
    /// A count (`1.3k`).
    Count,
    /// Nanoseconds (`1.20 ms`).
    Duration,
    /// A fraction (`34.0%`).
    Share,
    /// Bytes (`4.0 KiB`).
    Bytes,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Count => "count",
            Kind::Duration => "duration",
            Kind::Share => "share",
            Kind::Bytes => "bytes",
        }
    }
}

/// One timed function (a span callsite) as the table sees it.
pub struct Function<'a> {
    pub callsite: &'a CallsiteProfile,
    pub time: &'a Time,
    /// Self time of the whole profile, for shares.
    pub profiled_ns: u64,
}

/// A column of the functions table. `value` returns a number, a string, or
/// null where the profile does not say (shown as `-`, sorted last).
pub struct Column {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    /// The header's tooltip: what the figure is.
    pub help: &'static str,
    pub value: fn(&Function<'_>) -> Value,
}

/// The functions table, left to right. The page sorts by `self_ns` first.
pub const COLUMNS: &[Column] = &[
    Column { key: "name", label: "function", kind: Kind::Text, help: "span name", value: |f| json!(f.callsite.name) },
    Column {
        key: "location",
        label: "location",
        kind: Kind::Text,
        help: "source file and line",
        value: |f| json!(f.callsite.location()),
    },
    Column {
        key: "calls",
        label: "calls",
        kind: Kind::Count,
        help: "times entered",
        value: |f| json!(f.callsite.count),
    },
    Column {
        key: "self_share",
        label: "self %",
        kind: Kind::Share,
        help: "share of all profiled time spent in this function itself",
        value: |f| share(f.time.self_ns(), f.profiled_ns),
    },
    Column {
        key: "self_ns",
        label: "self",
        kind: Kind::Duration,
        help: "time in the function itself, children excluded, all calls",
        value: |f| json!(f.time.self_ns()),
    },
    Column {
        key: "total_ns",
        label: "total",
        kind: Kind::Duration,
        help: "time from enter to exit, children included, all calls",
        value: |f| json!(f.time.total_ns()),
    },
    Column {
        key: "p50_ns",
        label: "p50",
        kind: Kind::Duration,
        help: "median call",
        value: |f| json!(f.time.percentile_ns(50.0)),
    },
    Column {
        key: "p95_ns",
        label: "p95",
        kind: Kind::Duration,
        help: "95th percentile call",
        value: |f| json!(f.time.percentile_ns(95.0)),
    },
    Column {
        key: "p99_ns",
        label: "p99",
        kind: Kind::Duration,
        help: "99th percentile call",
        value: |f| json!(f.time.percentile_ns(99.0)),
    },
    Column {
        key: "max_ns",
        label: "max",
        kind: Kind::Duration,
        help: "slowest call",
        value: |f| json!(f.time.max_ns()),
    },
    Column {
        key: "alloc_per_call",
        label: "alloc/call",
        kind: Kind::Bytes,
        help: "bytes allocated per call, children included (the SDK's counting allocator)",
        value: |f| f.callsite.alloc_bytes.map_or(Value::Null, |b| json!(b / f.callsite.count.max(1))),
    },
    Column {
        key: "kept_per_call",
        label: "kept/call",
        kind: Kind::Bytes,
        help: "bytes still held after the call returned, per call (negative: the call freed earlier memory)",
        value: |f| f.callsite.kept.as_ref().map_or(Value::Null, |k| json!(k.per_call().round() as i64)),
    },
    Column {
        key: "budget_violations",
        label: "over budget",
        kind: Kind::Count,
        help: "calls stopped by their budget while this function ran",
        value: |f| json!(f.callsite.budget_violations),
    },
];

fn share(part: u64, whole: u64) -> Value {
    if whole == 0 { Value::Null } else { json!(part as f64 / whole as f64) }
}

/// The report as one HTML document.
pub fn html(input: &ReportInput<'_>) -> Result<String, HtmlError> {
    let profile = input.profile;
    let mut out = String::with_capacity(64 * 1024);
    let plugin = &profile.plugin;
    let version = plugin.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    let title = format!("{}{version}: performance report", plugin.name);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let runs = if profile.runs == 1 { "1 run".to_owned() } else { format!("{} runs merged", profile.runs) };
    let _ = write!(
        out,
        "<header><h1>{}</h1><p class=\"ax-sub\">profile taken {} ({runs}) · {}</p>\n<nav>",
        esc(&title),
        esc(&profile.taken_at),
        esc(input.profile_path)
    );
    let mut sections = vec![("ax-flame", "flame graph"), ("ax-functions", "functions"), ("ax-methods", "methods")];
    if profile.startup.is_some() {
        sections.push(("ax-startup", "startup"));
    }
    if input.ab.is_some() || input.compared.is_some() {
        sections.push(("ax-comparison", "comparison"));
    }
    sections.extend([("ax-recommendations", "recommendations"), ("ax-provenance", "provenance")]);
    for (id, label) in sections {
        let _ = write!(out, "<a href=\"#{id}\">{label}</a>");
    }
    out.push_str("</nav></header>\n<main>\n");

    flame_section(profile, &mut out)?;
    functions_section(profile, &mut out);
    methods_section(profile, &mut out);
    if let Some(startup) = &profile.startup {
        startup_section(startup, &mut out);
    }
    if input.ab.is_some() || input.compared.is_some() {
        out.push_str("<section id=\"ax-comparison\"><h2>Comparison</h2>\n");
        if let Some((path, ab)) = input.ab {
            ab_table(path, ab, &mut out);
        }
        if let Some(compared) = &input.compared {
            compare_table(compared, &mut out);
        }
        out.push_str("</section>\n");
    }
    recommendations_section(profile, &mut out);
    provenance_section(input, &mut out);
    out.push_str("</main>\n<script type=\"application/json\" id=\"ax-report-data\">");
    out.push_str(&script_safe(&data(profile).to_string()));
    out.push_str("</script>\n<script>\n");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    Ok(out)
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that cannot end the `<script>` element holding it: `</` becomes `<\/`
/// (the same string to a JSON reader), `<!--` cannot start.
fn script_safe(json: &str) -> String {
    json.replace("</", "<\\/").replace("<!--", "<\\u0021--")
}

fn ns(value: u64) -> String {
    duration(value as f64)
}

/// `4.0 KiB`, `-1.5 MiB`.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let sign = if n < 0 { "-" } else { "" };
    let mut value = n.unsigned_abs() as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{sign}{value} B") } else { format!("{sign}{value:.1} {}", UNITS[unit]) }
}

fn flame_section(profile: &Profile, out: &mut String) -> Result<(), HtmlError> {
    out.push_str("<section id=\"ax-flame\"><h2>Flame graph</h2>\n");
    let folded = profile.folded();
    if folded.is_empty() {
        out.push_str(
            "<p class=\"ax-empty\">No timed stack: the profile has no call with self time. \
             Profile at least one call (<code>ax run --profile PLUGIN METHOD INPUT</code>).</p>\n</section>\n",
        );
        return Ok(());
    }
    out.push_str(
        "<p class=\"ax-help\">Width is time, self time plus children's; a call's root frame is \
         <code>plugin.method</code>. Click a frame to zoom, <em>Reset Zoom</em> to go back. \
         <label>Search <input id=\"ax-flame-search\" type=\"search\" placeholder=\"regular expression\"></label> \
         <span id=\"ax-flame-matched\"></span></p>\n<div class=\"ax-flame\">",
    );
    let mut options = inferno::flamegraph::Options::default();
    options.title = String::new();
    options.count_name = "ns".to_owned();
    options.name_type = "Function:".to_owned();
    options.deterministic = true;
    // Frames under half a pixel are left out (inferno's default keeps a
    // tenth): invisible anyway, and with thousands of functions they made
    // most of the page and of its drawing time.
    options.min_width = 0.5;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(|e| HtmlError::Flamegraph(e.to_string()))?;
    let svg = String::from_utf8_lossy(&svg);
    // Inline, the XML prolog and doctype have no place; the <svg> element and
    // its script stay as inferno wrote them, but for one guard: while the page
    // is laid out again (a resize, a full-page screenshot) the SVG can measure
    // 0 px, and inferno would set its frames' width to -20 (a console error).
    let start = svg.find("<svg").unwrap_or(0);
    out.push_str(&svg[start..].replace(INFERNO_FRAMES_WIDTH, INFERNO_FRAMES_WIDTH_GUARDED));
    out.push_str("</div>\n</section>\n");
    Ok(())
}

fn functions_section(profile: &Profile, out: &mut String) {
    let spans = profile.callsites.iter().filter(|c| c.kind == CallsiteKind::Span && c.time.is_some()).count();
    let _ = write!(
        out,
        "<section id=\"ax-functions\"><h2>Functions <span class=\"ax-count\">{spans}</span></h2>\n\
         <p class=\"ax-help\">Every instrumented function (span) profiled. Click a header to sort, a row to see \
         its latency histogram. <label>Filter <input id=\"ax-filter\" type=\"search\" placeholder=\"name or file\">\
         </label></p>\n\
         <div class=\"ax-table-wrap\"><table id=\"ax-functions-table\" class=\"ax-table\"><thead></thead>\
         <tbody></tbody></table></div>\n<p id=\"ax-shown\" class=\"ax-help\"></p>\n\
         <div id=\"ax-histogram\" class=\"ax-histogram\"><h3>Latency histogram <span id=\"ax-histogram-name\">\
         </span></h3><div id=\"ax-histogram-plot\"></div></div>\n</section>\n"
    );
}

fn methods_section(profile: &Profile, out: &mut String) {
    out.push_str("<section id=\"ax-methods\"><h2>Calls per method</h2>\n");
    if profile.methods.is_empty() {
        out.push_str("<p class=\"ax-empty\">No call was profiled.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table class=\"ax-table\"><thead><tr><th>method</th><th>calls</th><th>errors</th><th>total</th>\
         <th>p50</th><th>p95</th><th>p99</th><th>max</th><th>cpu</th></tr></thead><tbody>\n",
    );
    for m in &profile.methods {
        let t = &m.time;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            esc(&m.method),
            m.count,
            m.errors,
            ns(t.total_ns()),
            ns(t.percentile_ns(50.0)),
            ns(t.percentile_ns(95.0)),
            ns(t.percentile_ns(99.0)),
            ns(t.max_ns()),
            t.cpu_ns().map_or_else(|| "-".to_owned(), ns),
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn startup_section(startup: &ax_profile::Startup, out: &mut String) {
    let t = startup.thresholds;
    let memory = startup.memory_growth_bytes.map_or_else(String::new, |b| format!(", resident memory {}", bytes(b)));
    let _ = write!(
        out,
        "<section id=\"ax-startup\"><h2>Startup</h2>\n<p>{} in all{memory}. Limits: total {}, any phase {} \
         (<code>[startup]</code> in the manifest).</p>\n<div class=\"ax-waterfall\">\n",
        ns(startup.total_ns),
        ns(t.max_total_ns),
        ns(t.max_phase_ns)
    );
    let total = startup.total_ns.max(1) as f64;
    let mut start = 0u64;
    for phase in &startup.phases {
        let over = phase.duration_ns > t.max_phase_ns;
        let left = 100.0 * start as f64 / total;
        let width = (100.0 * phase.duration_ns as f64 / total).max(0.2);
        let memory = phase.memory_growth_bytes.map_or_else(String::new, |b| format!(" · {}", bytes(b)));
        let _ = writeln!(
            out,
            "<div class=\"ax-phase{}\"><span class=\"ax-phase-name\">{}</span><span class=\"ax-track\">\
             <span class=\"ax-bar\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span>\
             <span class=\"ax-phase-time\">{} ({:.0}%){memory}{}</span></div>",
            if over { " ax-over" } else { "" },
            phase.phase,
            ns(phase.duration_ns),
            100.0 * phase.duration_ns as f64 / total,
            if over { " over the phase limit" } else { "" },
        );
        start += phase.duration_ns;
    }
    out.push_str("</div>\n</section>\n");
}

/// A small SVG of a ratio's interval around 1: the threshold band shaded,
/// the interval as a bar, the estimate as a tick.
fn interval_svg(estimate: f64, low: f64, high: f64, threshold: f64) -> String {
    let reach = [(low - 1.0).abs(), (high - 1.0).abs(), (estimate - 1.0).abs(), threshold, 0.001]
        .into_iter()
        .fold(0.0f64, f64::max)
        * 1.25;
    let x = |ratio: f64| 100.0 + 100.0 * ((ratio - 1.0) / reach).clamp(-1.0, 1.0);
    format!(
        "<svg class=\"ax-ci\" viewBox=\"0 0 200 16\" width=\"200\" height=\"16\" role=\"img\" \
         aria-label=\"95% interval {} to {}\"><rect class=\"ax-ci-band\" x=\"{:.1}\" y=\"0\" width=\"{:.1}\" \
         height=\"16\"/><line class=\"ax-ci-zero\" x1=\"100\" x2=\"100\" y1=\"0\" y2=\"16\"/>\
         <rect class=\"ax-ci-bar\" x=\"{:.1}\" y=\"5\" width=\"{:.1}\" height=\"6\"/>\
         <line class=\"ax-ci-estimate\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"2\" y2=\"14\"/></svg>",
        percent(low - 1.0),
        percent(high - 1.0),
        x(1.0 - threshold),
        x(1.0 + threshold) - x(1.0 - threshold),
        x(low),
        (x(high) - x(low)).max(1.0),
        x(estimate),
        x(estimate),
    )
}

fn verdict_cell(verdict: crate::compare::Verdict) -> String {
    let class = format!("{verdict}").replace(' ', "-");
    format!("<td class=\"ax-verdict ax-{class}\">{verdict}</td>")
}

fn ab_table(path: &str, ab: &AbReport, out: &mut String) {
    let _ = write!(
        out,
        "<h3>A/B: <code>{}</code> against <code>{}</code></h3>\n<p class=\"ax-help\">From {} ({}, {}). \
         Verdict by {} time; threshold ±{}; the bar is the 95% interval of candidate / baseline, the shaded band \
         the threshold.</p>\n<table class=\"ax-table\"><thead><tr><th>benchmark</th><th>verdict</th>\
         <th>baseline</th><th>candidate</th><th>change</th><th>95% interval</th><th></th><th>pairs</th>\
         <th>sensitivity</th></tr></thead><tbody>\n",
        esc(&ab.candidate),
        esc(&ab.baseline),
        esc(path),
        esc(&ab.started_at),
        esc(&ab.tool),
        ab.clock,
        percent(ab.threshold).trim_start_matches('+'),
    );
    for b in &ab.benchmarks {
        let on = b.on(ab.clock);
        let reason = b.reason.as_deref().map(|r| format!(" title=\"{}\"", esc(r))).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr{reason}><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{} … {}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            esc(&b.name),
            verdict_cell(b.verdict),
            duration(on.baseline_median_ns),
            duration(on.candidate_median_ns),
            percent(b.ratio.estimate - 1.0),
            percent(b.ratio.low - 1.0),
            percent(b.ratio.high - 1.0),
            interval_svg(b.ratio.estimate, b.ratio.low, b.ratio.high, ab.threshold),
            on.pairs,
            percent(b.sensitivity).trim_start_matches('+'),
        );
    }
    let _ = writeln!(out, "</tbody></table>\n<p>Run verdict: <strong>{}</strong>.</p>", ab.verdict);
}

fn compare_table(compared: &Compared<'_>, out: &mut String) {
    let c = compared.comparison;
    let _ = write!(
        out,
        "<h3>Compare: <code>{}</code> against <code>{}</code></h3>\n<p class=\"ax-help\">Medians of two \
         <code>ax perf run</code> reports; a verdict needs p &lt; {} (Mann-Whitney) and the whole 95% bootstrap \
         interval of the ratio beyond ±{}.</p>\n<table class=\"ax-table\"><thead><tr><th>benchmark</th>\
         <th>verdict</th><th>base</th><th>new</th><th>change</th><th>95% interval</th><th></th><th>p</th>\
         </tr></thead><tbody>\n",
        esc(compared.new),
        esc(compared.base),
        c.options.alpha,
        percent(c.options.threshold).trim_start_matches('+'),
    );
    for b in &c.benchmarks {
        let m = &b.comparison;
        let reasons =
            if m.reasons.is_empty() { String::new() } else { format!(" title=\"{}\"", esc(&m.reasons.join("; "))) };
        let _ = writeln!(
            out,
            "<tr{reasons}><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{} … {}</td><td>{}</td><td>{}</td></tr>",
            esc(&b.name),
            verdict_cell(m.verdict),
            duration(m.base_median_ns),
            duration(m.new_median_ns),
            percent(m.change()),
            percent(m.ratio_ci.low - 1.0),
            percent(m.ratio_ci.high - 1.0),
            interval_svg(m.ratio, m.ratio_ci.low, m.ratio_ci.high, c.options.threshold),
            if m.p_value < 0.001 { "&lt;0.001".to_owned() } else { format!("{:.3}", m.p_value) },
        );
    }
    out.push_str("</tbody></table>\n");
    for (label, names) in [("Only in base", &c.only_in_base), ("Only in new", &c.only_in_new)] {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|n| format!("<code>{}</code>", esc(n))).collect();
            let _ = writeln!(out, "<p>{label}: {}.</p>", names.join(", "));
        }
    }
    let _ = writeln!(out, "<p>Verdict: <strong>{}</strong>.</p>", c.verdict());
}

fn recommendations_section(profile: &Profile, out: &mut String) {
    out.push_str("<section id=\"ax-recommendations\"><h2>Recommendations</h2>\n");
    if profile.recommendations.is_empty() {
        out.push_str("<p>None: startup within its <code>[startup]</code> limits, no call stopped by its budget.</p>\n");
    } else {
        out.push_str("<ul>\n");
        let manifest = profile.plugin.manifest.as_deref().unwrap_or("manifest");
        for r in &profile.recommendations {
            let at = match &r.location {
                Location::Manifest { key } => format!("{manifest}: {key}"),
                Location::Source { file, line } => format!("{file}:{line}"),
            };
            let _ = writeln!(
                out,
                "<li><strong>{}</strong> {} <code>{}</code><br>fix: {}</li>",
                format!("{:?}", r.severity).to_lowercase(),
                esc(&r.message),
                esc(&at),
                esc(&r.fix)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn provenance_section(input: &ReportInput<'_>, out: &mut String) {
    let p = input.profile;
    let w = &input.written;
    let machine = |m: &Machine| {
        let model = m.cpu_model.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
        format!("{} {}, {} CPUs{model}", m.os, m.arch, m.cpus)
    };
    let mut rows = vec![
        ("profile", input.profile_path.to_owned()),
        ("taken", format!("{} by {}", p.taken_at, p.tool)),
        ("command", p.command.clone()),
        ("plugin", format!("{} {}", p.plugin.name, p.plugin.version.as_deref().unwrap_or("(no version)"))),
        ("library", p.plugin.library.clone()),
        ("SDK", p.plugin.sdk_version.clone()),
    ];
    if let Some(manifest) = &p.plugin.manifest {
        rows.push(("manifest", manifest.clone()));
    }
    if let Some((path, ab)) = input.ab {
        rows.push(("A/B result", format!("{path}: {} by {} on {}", ab.started_at, ab.tool, machine(&ab.machine))));
    }
    rows.push(("report written", format!("{} by {} on {}", w.at, w.tool, machine(&w.machine))));
    out.push_str("<section id=\"ax-provenance\"><h2>Provenance</h2>\n<dl>\n");
    for (term, value) in rows {
        let _ = writeln!(out, "<dt>{term}</dt><dd>{}</dd>", esc(&value));
    }
    out.push_str(
        "</dl>\n<p class=\"ax-help\">The profile records the build and when it was taken, not the machine: \
         the machine named is the one this report was written on.</p>\n</section>\n",
    );
}

/// The JSON the page's script draws the table and histograms from.
fn data(profile: &Profile) -> Value {
    let profiled_ns = profile.profiled_ns();
    let columns: Vec<Value> = COLUMNS
        .iter()
        .map(|c| json!({"key": c.key, "label": c.label, "kind": c.kind.name(), "help": c.help}))
        .collect();
    let mut rows = Vec::new();
    let mut histograms = Vec::new();
    for callsite in profile.callsites.iter().filter(|c| c.kind == CallsiteKind::Span) {
        let Some(time) = &callsite.time else { continue };
        let function = Function { callsite, time, profiled_ns };
        rows.push(Value::Array(COLUMNS.iter().map(|c| (c.value)(&function)).collect()));
        histograms.push(histogram_bins(&time.histogram().buckets(), HISTOGRAM_BINS));
    }
    json!({"columns": columns, "sort": "self_ns", "rows": rows, "histograms": histograms})
}

/// The HDR buckets `(highest value, count)` summed into at most `bins`
/// log-spaced bins between the lowest and highest value: `[[low, high, count]]`
/// for each non-empty bin, ascending.
pub fn histogram_bins(buckets: &[(u64, u64)], bins: usize) -> Value {
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return json!([]);
    };
    let (low, high) = (first.0.max(1) as f64, last.0.max(1) as f64);
    if buckets.len() <= bins || high <= low {
        let mut previous = (first.0 as f64 / 1.01).floor() as u64;
        return Value::Array(
            buckets
                .iter()
                .map(|&(value, count)| {
                    let bin = json!([previous, value, count]);
                    previous = value;
                    bin
                })
                .collect(),
        );
    }
    let step = (high / low).ln() / bins as f64;
    let mut counts = vec![0u64; bins];
    for &(value, count) in buckets {
        let i = (((value.max(1) as f64) / low).ln() / step).floor() as usize;
        counts[i.min(bins - 1)] += count;
    }
    let edge = |i: usize| (low * (step * i as f64).exp()).round() as u64;
    Value::Array(
        counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(i, count)| json!([edge(i), edge(i + 1), count]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use ax_profile::{MethodProfile, Phase, PhaseTime, PluginInfo, Stack, Startup, Thresholds};

    use super::*;

    fn profile() -> Profile {
        let plugin = PluginInfo {
            name: "word-count".into(),
            version: Some("0.1.0".into()),
            library: "target/debug/libword_count.so".into(),
            manifest: Some("ax-plugin.toml".into()),
            sdk_version: "0.1.0".into(),
        };
        let mut profile = Profile::new(plugin, "ax 0.1.0", "ax run --profile .");
        profile.taken_at = "2026-01-02T03:04:05Z".into();
        let mut time = Time::new();
        for i in 0..200u64 {
            time.record(10_000 + i * 37, 4_000 + i, None);
        }
        profile.methods.push(MethodProfile {
            method: "count".into(),
            count: 200,
            errors: 0,
            budget_violations: Default::default(),
            time: time.clone(),
            kept: None,
        });
        for (name, line, alloc) in [("count", 41, Some(4096 * 200)), ("count_words</script>", 52, None)] {
            profile.callsites.push(CallsiteProfile {
                kind: CallsiteKind::Span,
                name: name.into(),
                target: "word_count".into(),
                file: "src/lib.rs".into(),
                line,
                count: 200,
                budget_violations: 0,
                time: Some(time.clone()),
                alloc_bytes: alloc,
                kept: alloc.map(|_| {
                    let mut kept = ax_profile::kept::Kept::new();
                    (0..200).for_each(|_| kept.record(1_200));
                    kept
                }),
            });
        }
        profile.stacks = vec![
            Stack { stack: "word-count.count".into(), count: 200, self_ns: 500_000 },
            Stack { stack: "word-count.count;count".into(), count: 200, self_ns: 700_000 },
            Stack { stack: "word-count.count;count;count_words</script>".into(), count: 200, self_ns: 900_000 },
        ];
        let phases = vec![
            PhaseTime { phase: Phase::Read, duration_ns: 3_000_000, memory_growth_bytes: Some(1 << 20) },
            PhaseTime { phase: Phase::Init, duration_ns: 62_000_000, memory_growth_bytes: Some(0) },
        ];
        profile.startup = Some(Startup::new(phases, Thresholds::default()));
        profile.normalize();
        profile
    }

    fn input(profile: &Profile) -> ReportInput<'_> {
        ReportInput {
            profile,
            profile_path: ".ax/profile.json",
            ab: None,
            compared: None,
            written: Written {
                at: "2026-01-02T04:00:00Z".into(),
                tool: "ax 0.1.0".into(),
                machine: Machine { os: "linux".into(), arch: "x86_64".into(), cpus: 2, cpu_model: None },
            },
        }
    }

    /// The document's outline: its section ids and headings, in order, and
    /// the shape of the table's data. Markup details and inferno's SVG are
    /// left out, so the snapshot changes only when the structure does.
    fn outline(html: &str) -> String {
        let mut out = String::new();
        for line in html.lines() {
            for tag in ["<section id=", "<h2>", "<h3>", "<dt>", "<div class=\"ax-phase"] {
                if let Some(at) = line.find(tag) {
                    let text = &line[at..];
                    let end = text.find('>').map_or(text.len(), |e| e + 1);
                    let rest = &text[end..];
                    let words = rest.split('<').next().unwrap_or("");
                    let _ = writeln!(out, "{}{words}", &text[..end]);
                }
            }
        }
        out
    }

    fn report(factor: f64) -> crate::Report {
        let samples: Vec<u64> = (0..400u64).map(|i| ((10_000 + (i * 37) % 101) as f64 * factor) as u64).collect();
        let mut report = crate::Report::new("ax 0.1.0");
        report.benchmarks.push(crate::Benchmark::new("count", "word-count", "count", json!({}), samples).unwrap());
        report
    }

    fn ab() -> AbReport {
        let base: Vec<u64> = (0..400u64).map(|i| 10_000 + (i * 37) % 101).collect();
        let slower: Vec<u64> = base.iter().map(|&x| x * 11 / 10).collect();
        let samples = crate::ab::PairedSamples {
            baseline_wall_ns: base.clone(),
            candidate_wall_ns: slower.clone(),
            baseline_cpu_ns: base,
            candidate_cpu_ns: slower,
            segment_ends: Vec::new(),
        };
        let benchmark =
            crate::AbBenchmark::new("count", "count", json!({}), &samples, crate::ab::Clock::Cpu, 0.005).unwrap();
        AbReport::new("ax 0.1.0", "main", "HEAD", crate::ab::Clock::Cpu, 0.005, vec![benchmark])
    }

    #[test]
    fn the_document_has_every_section_in_order() {
        let profile = profile();
        let (base, new, ab) = (report(1.0), report(1.1), ab());
        let options = crate::CompareOptions::new(0.01, 0.02).unwrap();
        let comparison = ReportComparison::new(&base, &new, options).unwrap();
        let mut input = input(&profile);
        input.ab = Some(("ab.json", &ab));
        input.compared = Some(Compared { base: "base.json", new: "new.json", comparison: &comparison });
        let html = html(&input).unwrap();
        assert_eq!(html.matches("class=\"ax-ci\"").count(), 2, "an interval for each comparison");
        assert_eq!(html.matches("ax-verdict ax-slower").count(), 2, "10% slower, found by both");
        insta::assert_snapshot!(outline(&html));
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.contains("default-src 'none'"), "no fetch allowed");
        assert!(!html.contains("http://") || !html.contains("src=\"http"), "nothing loaded from the network");
        assert!(!html.contains("<?xml"), "inferno's prolog is left out");
        assert_eq!(html.matches("<script>").count() + html.matches("<script type=").count(), 3);
        // The flame graph is the first SVG: inferno's script takes the first.
        let first_svg = html.find("<svg").unwrap();
        assert!(html[first_svg..].starts_with("<svg version=") || html[first_svg..].contains("id=\"frames\""));
        assert!(first_svg < html.find("id=\"ax-functions-table\"").unwrap());
        assert!(html.contains(INFERNO_FRAMES_WIDTH_GUARDED), "inferno's frames never get a negative width");
        assert!(!html.contains(INFERNO_FRAMES_WIDTH), "inferno's unguarded line is replaced");
    }

    #[test]
    fn the_data_block_has_a_row_per_function_and_a_value_per_column() {
        let profile = profile();
        let html = html(&input(&profile)).unwrap();
        let start = html.find("id=\"ax-report-data\">").unwrap() + "id=\"ax-report-data\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        let text = &html[start..end];
        assert!(text.contains("count_words<\\/script>"), "a name cannot close the script: {text}");
        let data: Value = serde_json::from_str(text).unwrap();
        let keys: Vec<&str> = data["columns"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert_eq!(keys, COLUMNS.iter().map(|c| c.key).collect::<Vec<_>>());
        let rows = data["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            assert_eq!(row.as_array().unwrap().len(), COLUMNS.len());
        }
        let at = |key: &str| keys.iter().position(|k| *k == key).unwrap();
        assert_eq!(rows[0][at("alloc_per_call")], json!(4096));
        assert_eq!(rows[1][at("alloc_per_call")], Value::Null);
        assert_eq!(rows[0][at("calls")], json!(200));
        let share = rows[0][at("self_share")].as_f64().unwrap();
        assert!((share - 819_900.0 / 2_100_000.0).abs() < 1e-9, "self time over the stacks' sum: {share}");
        let bins = data["histograms"][0].as_array().unwrap();
        assert!(!bins.is_empty() && bins.len() <= HISTOGRAM_BINS);
        let counted: u64 = bins.iter().map(|b| b[2].as_u64().unwrap()).sum();
        assert_eq!(counted, 200, "every call is in a bin");
    }

    #[test]
    fn histogram_bins_keep_every_count_within_the_range() {
        let buckets: Vec<(u64, u64)> = (1..=500u64).map(|i| (1000 + i * 10, i % 3 + 1)).collect();
        let bins = histogram_bins(&buckets, 40);
        let bins = bins.as_array().unwrap();
        assert!(bins.len() <= 40);
        let total: u64 = bins.iter().map(|b| b[2].as_u64().unwrap()).sum();
        assert_eq!(total, buckets.iter().map(|b| b.1).sum::<u64>());
        assert!(bins.windows(2).all(|w| w[0][1].as_u64() <= w[1][0].as_u64()), "ascending, not overlapping");
        assert_eq!(histogram_bins(&[], 40), json!([]));
        assert_eq!(histogram_bins(&[(5000, 3)], 40), json!([[4950, 5000, 3]]));
    }

    #[test]
    fn an_empty_profile_says_there_is_nothing_to_draw() {
        let profile = Profile::new(PluginInfo::named("empty"), "ax 0.1.0", "ax run --profile .");
        let html = html(&input(&profile)).unwrap();
        assert!(html.contains("No timed stack"));
        assert!(html.contains("No call was profiled."));
        assert!(!html.contains("id=\"frames\""), "no flame graph");
    }
}
