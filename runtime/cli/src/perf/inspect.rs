//! `ax perf inspect PLUGIN_OR_PROFILE`: a profile for a terminal — how the
//! plugin started (each phase, the slowest, memory growth), its calls per
//! method, its hottest span callsites by self time with their percentiles, the
//! probes and events hit, and the recommendations with where they apply and
//! what to do. With the memory the plugin's calls kept (the SDK's counting
//! allocator), a `kept/call` column and the functions whose kept memory grows
//! with their calls; with a baseline (`ax perf baseline`), each callsite's
//! median against it, judged as the language server judges it.
//!
//! Only reads and renders: the figures and the recommendations come from the
//! file (`ax-profile`), so this table and an editor showing the same profile
//! never disagree.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ax_perf::render::{Align, Table, duration};
use ax_profile::{CallsiteKind, CallsiteProfile, Kept, Location, Profile, Time, baseline_beside, counterpart};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A profile file (.json), or a plugin — crate directory, manifest or library —
    /// whose profile to read (.ax/profile.json in its crate directory, or beside the library).
    target: PathBuf,
    /// How many span callsites to list, hottest first.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
}

pub(crate) fn run(args: InspectArgs) -> Result<ExitCode> {
    let (path, profile) = crate::profile::find(Some(&args.target))?;
    let baseline_path = baseline_beside(&path);
    let baseline = baseline_path.exists().then(|| Profile::read(&baseline_path));
    let mut text =
        render(&profile, &path.display().to_string(), args.top, baseline.as_ref().and_then(|b| b.as_ref().ok()));
    if let Some(Err(e)) = &baseline {
        text.insert_str(0, &format!("warning: baseline ignored: {e}\n"));
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn ns(value: u64) -> String {
    duration(value as f64)
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 { "-".to_owned() } else { format!("{:.1}%", 100.0 * part as f64 / whole as f64) }
}

fn growth(bytes: Option<i64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |b| format!("{}{}", if b >= 0 { "+" } else { "" }, format_bytes(b)))
}

fn format_bytes(n: i64) -> String {
    format!("{}{}", if n < 0 { "-" } else { "" }, ax_runtime::format_bytes(n.unsigned_abs()))
}

fn cpu(time: &Time) -> String {
    time.cpu_ns().map_or_else(|| "-".to_owned(), ns)
}

/// Mean bytes kept per interval, `-` when not counted.
fn kept_per_call(kept: Option<&Kept>) -> String {
    kept.map_or_else(|| "-".to_owned(), |k| ax_profile::kept::bytes(k.per_call().round() as i64))
}

/// A callsite's median against the baseline's.
fn vs_baseline(baseline: &Profile, c: &CallsiteProfile) -> String {
    let Some(change) =
        counterpart(baseline, c).and_then(|b| ax_profile::baseline::change(b.time.as_ref()?, c.time.as_ref()?))
    else {
        return "new".to_owned();
    };
    if change.significant { format!("{} ({})", change.summary(), change.p_text()) } else { change.summary() }
}

/// The whole report, as text.
fn render(profile: &Profile, path: &str, top: usize, baseline: Option<&Profile>) -> String {
    let mut out = String::new();
    let plugin = &profile.plugin;
    let version = plugin.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    let runs = if profile.runs == 1 { "1 run".to_owned() } else { format!("{} runs merged", profile.runs) };
    let _ = writeln!(out, "{path}: profile of {}{version} ({runs}, last taken {})", plugin.name, profile.taken_at);
    let _ = writeln!(out, "  by: {}", profile.command);
    let _ = writeln!(out, "  library: {}", plugin.library);
    if let Some(b) = baseline {
        let _ = writeln!(out, "  baseline: taken {} by {}", b.taken_at, b.command);
    }

    if let Some(startup) = &profile.startup {
        let t = startup.thresholds;
        let _ = writeln!(
            out,
            "\nstartup: {}, resident memory {} (limits: total {}, phase {}, memory {})",
            ns(startup.total_ns),
            growth(startup.memory_growth_bytes),
            ns(t.max_total_ns),
            ns(t.max_phase_ns),
            format_bytes(t.max_memory_growth_bytes as i64),
        );
        let mut table = Table::new(&[
            ("phase", Align::Left),
            ("time", Align::Right),
            ("share", Align::Right),
            ("memory", Align::Right),
        ]);
        for phase in &startup.phases {
            let over = if phase.duration_ns > t.max_phase_ns { " !" } else { "" };
            table.row(vec![
                format!("{}{over}", phase.phase),
                ns(phase.duration_ns),
                share(phase.duration_ns, startup.total_ns),
                growth(phase.memory_growth_bytes),
            ]);
        }
        out += &table.text();
        let slowest: Vec<String> = startup
            .slowest
            .iter()
            .filter_map(|p| startup.phase(*p))
            .map(|p| format!("{} {}", p.phase, ns(p.duration_ns)))
            .collect();
        let _ = writeln!(out, "slowest: {}", slowest.join(", "));
    }

    let _ = writeln!(out, "\ncalls");
    if profile.methods.is_empty() {
        let _ = writeln!(out, "(none)");
    } else {
        let mut table = Table::new(&[
            ("method", Align::Left),
            ("calls", Align::Right),
            ("errors", Align::Right),
            ("total", Align::Right),
            ("mean", Align::Right),
            ("p50", Align::Right),
            ("p95", Align::Right),
            ("p99", Align::Right),
            ("max", Align::Right),
            ("cpu", Align::Right),
            ("kept/call", Align::Right),
        ]);
        for m in &profile.methods {
            let t = &m.time;
            table.row(vec![
                m.method.clone(),
                m.count.to_string(),
                m.errors.to_string(),
                ns(t.total_ns()),
                ns(t.mean_ns()),
                ns(t.percentile_ns(50.0)),
                ns(t.percentile_ns(95.0)),
                ns(t.percentile_ns(99.0)),
                ns(t.max_ns()),
                cpu(t),
                kept_per_call(m.kept.as_ref()),
            ]);
        }
        out += &table.text();
    }

    let profiled = profile.profiled_ns();
    let hottest = profile.hottest(top);
    let spans = profile.callsites.iter().filter(|c| c.kind == CallsiteKind::Span).count();
    let _ = writeln!(
        out,
        "\nhottest callsites, by self time ({} of {spans}; share of {} profiled)",
        hottest.len(),
        ns(profiled)
    );
    if hottest.is_empty() {
        let _ = writeln!(out, "(no span was timed: instrument functions with #[tracing::instrument])");
    } else {
        let mut columns = vec![
            ("callsite", Align::Left),
            ("location", Align::Left),
            ("calls", Align::Right),
            ("self", Align::Right),
            ("share", Align::Right),
            ("total", Align::Right),
            ("mean", Align::Right),
            ("p50", Align::Right),
            ("p95", Align::Right),
            ("p99", Align::Right),
            ("max", Align::Right),
            ("cpu", Align::Right),
            ("alloc/call", Align::Right),
            ("kept/call", Align::Right),
            ("over budget", Align::Right),
        ];
        if baseline.is_some() {
            columns.push(("p50 vs baseline", Align::Left));
        }
        let mut table = Table::new(&columns);
        for c in hottest {
            let Some(t) = &c.time else { continue };
            let mut row = vec![
                c.name.clone(),
                c.location(),
                c.count.to_string(),
                ns(t.self_ns()),
                share(t.self_ns(), profiled),
                ns(t.total_ns()),
                ns(t.mean_ns()),
                ns(t.percentile_ns(50.0)),
                ns(t.percentile_ns(95.0)),
                ns(t.percentile_ns(99.0)),
                ns(t.max_ns()),
                cpu(t),
                c.alloc_bytes.map_or_else(|| "-".to_owned(), |b| ax_runtime::format_bytes(b / c.count.max(1))),
                kept_per_call(c.kept.as_ref()),
                c.budget_violations.to_string(),
            ];
            if let Some(b) = baseline {
                row.push(vs_baseline(b, c));
            }
            table.row(row);
        }
        out += &table.text();
    }

    let counts_memory = profile.methods.iter().any(|m| m.kept.is_some());
    if counts_memory {
        let _ = writeln!(out, "\nmemory kept across calls");
        let (methods, spans) = (profile.method_leaks(), profile.span_leaks());
        if methods.is_empty() {
            let _ = writeln!(out, "none grows with the number of calls.");
        }
        for (m, leak) in methods {
            let _ = writeln!(out, "warning: calls of {}: {}", m.method, leak.describe());
        }
        for (c, leak) in spans {
            let _ = writeln!(out, "warning: {} [{}]: {}", c.name, c.location(), leak.describe());
        }
    }

    let counted: Vec<_> = profile.callsites.iter().filter(|c| c.kind != CallsiteKind::Span).collect();
    if !counted.is_empty() {
        let _ = writeln!(out, "\nprobes and events hit");
        let mut table = Table::new(&[
            ("kind", Align::Left),
            ("callsite", Align::Left),
            ("location", Align::Left),
            ("hits", Align::Right),
        ]);
        for c in counted {
            let kind = match c.kind {
                CallsiteKind::Probe => "probe",
                _ => "event",
            };
            table.row(vec![kind.to_owned(), event_label(c), c.location(), c.count.to_string()]);
        }
        out += &table.text();
    }

    let _ = writeln!(out, "\nrecommendations");
    if profile.recommendations.is_empty() {
        let _ = writeln!(out, "none: startup within its [startup] limits, no call stopped by its budget.");
    }
    // A bare library has no manifest: the keys are those one would write in it.
    let manifest = plugin.manifest.as_deref().unwrap_or("manifest");
    for r in &profile.recommendations {
        let at = match &r.location {
            Location::Manifest { key } => format!("{manifest}: {key}"),
            Location::Source { file, line } => format!("{file}:{line}"),
        };
        let severity = format!("{:?}", r.severity).to_lowercase();
        let _ = writeln!(out, "{severity}: {} [{at}]", r.message);
        let _ = writeln!(out, "  fix: {}", r.fix);
        if let Some(edit) = &r.edit {
            let _ = writeln!(out, "  or accept it: {} = \"{}\"", edit.key, edit.value);
        }
    }
    out
}

/// A probe's function, or an event's name; an event named only by its place
/// (`tracing`'s default, `event src/lib.rs:172`, which the location column
/// already gives) goes by its target instead (the module, by default).
fn event_label(c: &ax_profile::CallsiteProfile) -> String {
    if c.kind == CallsiteKind::Event && c.name.starts_with("event ") && !c.target.is_empty() {
        c.target.clone()
    } else {
        c.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use ax_profile::{CallsiteProfile, MethodProfile, Phase, PhaseTime, PluginInfo, Stack, Startup, Thresholds};

    use super::*;

    #[test]
    fn renders_every_section() {
        let mut profile = Profile::new(PluginInfo::named("word-count"), "ax 0.1.0", "ax run --profile .");
        let mut time = Time::new();
        time.record(60_000_000, 60_000_000, None);
        profile.methods.push(MethodProfile {
            method: "count".into(),
            count: 1,
            errors: 0,
            budget_violations: Default::default(),
            time: time.clone(),
            kept: None,
        });
        profile.callsites.push(CallsiteProfile {
            kind: CallsiteKind::Span,
            name: "count_words".into(),
            target: "word_count".into(),
            file: "src/lib.rs".into(),
            line: 52,
            count: 1,
            budget_violations: 0,
            time: Some(time),
            alloc_bytes: Some(4096),
            kept: None,
        });
        profile.stacks.push(Stack { stack: "word-count.count;count_words".into(), count: 1, self_ns: 60_000_000 });
        let phases = vec![
            PhaseTime { phase: Phase::Dlopen, duration_ns: 2_000_000, memory_growth_bytes: Some(1 << 20) },
            PhaseTime { phase: Phase::Init, duration_ns: 62_000_000, memory_growth_bytes: Some(0) },
        ];
        profile.startup = Some(Startup::new(phases, Thresholds::default()));
        profile.normalize();
        let text = render(&profile, ".ax/profile.json", 10, None);
        for expected in [
            ".ax/profile.json: profile of word-count (1 run",
            "startup: 64.0 ms, resident memory +1.0 MiB (limits: total 200 ms, phase 50.0 ms, memory 50.0 MiB)",
            "init !",
            "slowest: init 62.0 ms, dlopen 2.00 ms",
            "count_words  src/lib.rs:52",
            "100.0%",
            "warning: init takes 62.0 ms (97% of startup), over max_phase 50.0 ms [manifest: startup.max_phase]",
            "  or accept it: startup.max_phase = \"78ms\"",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }
}
