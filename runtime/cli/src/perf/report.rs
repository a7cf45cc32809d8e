//! `ax perf report [PROFILE] --html [-o FILE] [--open] [--ab RESULT.json]
//! [--compare BASE.json NEW.json]`: the profile as one self-contained HTML
//! page (`ax_perf::html`), with an A/B result and a comparison of two runs
//! when given, written atomically beside the profile (`.ax/report.html` in a
//! plugin crate) unless `-o` says where, and opened in the default browser
//! with `--open`.
//!
//! Only reads, checks and hands over: the page is made by `ax-perf`, the
//! profile read by `ax-profile`; every file named on the command line that
//! cannot be used is one error naming it and what was expected.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use ax_perf::html::{Compared, ReportInput, Written};
use ax_perf::{AbReport, CompareOptions, Report, ReportComparison};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// A profile file (.json), or a plugin whose profile to read (default: .ax/profile.json here).
    profile: Option<PathBuf>,
    /// Write the report as HTML: one self-contained page (the only format, and the default).
    #[arg(long)]
    html: bool,
    /// Where to write it (default: report.html beside the profile, .ax/report.html in a plugin crate).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Open the report once written: with $BROWSER when set, else xdg-open (open on macOS).
    #[arg(long)]
    open: bool,
    /// Add the result of `ax perf ab --json -o RESULT.json`.
    #[arg(long, value_name = "RESULT.json")]
    ab: Option<PathBuf>,
    /// Add the comparison of two `ax perf run --json` reports (as `ax perf compare`, 2% and p < 0.01).
    #[arg(long, num_args = 2, value_names = ["BASE.json", "NEW.json"])]
    compare: Option<Vec<PathBuf>>,
}

pub(crate) fn run(args: ReportArgs) -> Result<ExitCode> {
    let _ = args.html; // HTML is the only format: the flag says what the default does.
    let (path, profile) = crate::profile::find(args.profile.as_deref())?;
    let output = args.output.clone().unwrap_or_else(|| path.with_file_name("report.html"));
    let ab = args.ab.as_deref().map(|p| read_ab(p).map(|r| (p.display().to_string(), r))).transpose()?;
    let compared = match args.compare.as_deref() {
        Some([base, new]) => {
            let (base_report, new_report) = (Report::read(base)?, Report::read(new)?);
            let options = CompareOptions::new(0.01, 0.02).map_err(|e| anyhow!("{e}"))?;
            let comparison = ReportComparison::new(&base_report, &new_report, options)
                .with_context(|| format!("--compare {} {}", base.display(), new.display()))?;
            Some((base.display().to_string(), new.display().to_string(), comparison))
        }
        Some(other) => bail!("--compare: {} files given; expected two, BASE.json NEW.json", other.len()),
        None => None,
    };
    let profile_path = path.display().to_string();
    let input = ReportInput {
        profile: &profile,
        profile_path: &profile_path,
        ab: ab.as_ref().map(|(p, r)| (p.as_str(), r)),
        compared: compared.as_ref().map(|(base, new, comparison)| Compared { base, new, comparison }),
        written: Written::now(format!("ax {}", env!("CARGO_PKG_VERSION"))),
    };
    let html = ax_perf::html::html(&input).with_context(|| path.display().to_string())?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    }
    ax_profile::write_atomically(&output, &html)
        .with_context(|| format!("{}: cannot write the report", output.display()))?;
    println!("{}: performance report of {} ({} KiB)", output.display(), path.display(), html.len().div_ceil(1024));
    if args.open {
        open(&output)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An `ax perf ab` result, checked for its envelope first so that another
/// file is named as such.
fn read_ab(path: &Path) -> Result<AbReport> {
    let expected = "expected the JSON of `ax perf ab --json -o RESULT.json`";
    let text = std::fs::read_to_string(path).with_context(|| format!("--ab {}: cannot read it", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("--ab {}: not valid JSON ({e}); {expected}", path.display()))?;
    match (value.get("format").and_then(Value::as_str), value.get("version").and_then(Value::as_u64)) {
        (Some(ax_perf::ab::AB_FORMAT), Some(v)) if v == u64::from(ax_perf::ab::AB_VERSION) => {}
        (Some(ax_perf::ab::AB_FORMAT), _) => bail!(
            "--ab {}: A/B result version {}; expected version {}",
            path.display(),
            value.get("version").map_or_else(|| "missing".to_owned(), Value::to_string),
            ax_perf::ab::AB_VERSION
        ),
        (format, _) => bail!(
            "--ab {}: not an A/B result ({}); {expected}",
            path.display(),
            format.map_or_else(|| "no \"format\": \"ax-perf-ab\"".to_owned(), |f| format!("\"format\": {f:?}"))
        ),
    }
    serde_json::from_value(value).map_err(|e| anyhow!("--ab {}: invalid A/B result ({e}); {expected}", path.display()))
}

/// Opens `file` in the user's browser: `$BROWSER` (a command, given the
/// path), else the platform's opener. The path was already printed, so a
/// failure here leaves the user knowing where the report is.
fn open(file: &Path) -> Result<()> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let browser = std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty());
    let opener = browser.clone().unwrap_or_else(|| if cfg!(target_os = "macos") { "open" } else { "xdg-open" }.into());
    let status = Command::new(&opener).arg(&file).status().map_err(|e| {
        anyhow!(
            "--open: cannot run {opener} ({e}); open {} in a browser{}",
            file.display(),
            if browser.is_some() { " or fix $BROWSER" } else { "" }
        )
    })?;
    if !status.success() {
        bail!("--open: {opener} failed ({status}); open {} in a browser", file.display());
    }
    Ok(())
}
