//! `ax run PLUGIN [METHOD [INPUT]]`: build if needed, load, call, print JSON.
//!
//! With `--calls FILE` (JSON lines of `{"method": …, "input": …}`) several calls
//! run against one loaded instance, one result line each. The calls file is
//! checked whole before the plugin is loaded, so a typo on line 7 does not leave
//! six calls done. A failing call is reported and the remaining calls still run;
//! the exit status says whether any failed. The exception: in-process, a call
//! stuck past its budget holds the plugin's only worker thread, so `ax run`
//! gives up on it and lists the calls it did not run (`give_up_on_stuck_calls`). `--state FILE` restores the plugin's
//! state from FILE before the calls (when it exists) and saves it after them.
//! `--profile` times the startup (the first call included) and every span and
//! call, and writes the profile when the calls are done (`profile.rs`).
//! With OpenTelemetry export on (`[telemetry]`, `OTEL_EXPORTER_OTLP_ENDPOINT`),
//! every call is a span, continuing `--traceparent` (or a calls-file line's
//! `"traceparent"`), and the export is flushed before `ax run` exits, errors
//! included (`telemetry.rs`).

use std::cell::RefCell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ax_isolate::{IsolatedPlugin, IsolationOptions};
use ax_profile::SandboxDenial;
use ax_runtime::debug_host::DebugListener;
use ax_runtime::manifest::Isolation;
use ax_runtime::manifest::{ByteSize, HumanDuration};
use ax_runtime::{
    Budget, BuildOptions, CallError, Event, Host, HostOptions, Instrumentation, Plugin, PluginSource, SavedState,
    StartupMonitor, Usage,
};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The plugin: a crate directory with ax-plugin.toml, a manifest, or a library file.
    plugin: PathBuf,
    /// The method to call.
    method: Option<String>,
    /// The call's input, as JSON (default: null).
    input: Option<String>,
    /// Run the calls in FILE instead: one JSON object per line, {"method": …, "input": …}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["method", "input"])]
    calls: Option<PathBuf>,
    /// Do not run cargo; use the library already built.
    #[arg(long)]
    no_build: bool,
    /// Build and load the release profile.
    #[arg(long)]
    release: bool,
    /// Restore the plugin's state from FILE first (if it exists) and save it there afterwards.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Print what each call used (wall and CPU time, allocations) to stderr.
    #[arg(long)]
    stats: bool,
    /// Run the plugin in a child process with hard limits, restarted after a
    /// crash (as `isolation = "process"` in the manifest does).
    #[arg(long)]
    isolate: bool,
    /// Run a plugin whose manifest has [sandbox] without its sandbox, with
    /// your full rights (for debugging; ax says so loudly).
    #[arg(long, env = "AX_NO_SANDBOX")]
    no_sandbox: bool,
    /// Wait for a debugger (ax-dap's `attach`) on ADDRESS, loopback only (e.g.
    /// 127.0.0.1:0 for any free port), before the first call; prints the port and the token to give it.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "isolate")]
    debug_listen: Option<std::net::SocketAddr>,
    /// Read the token a debugger must present to attach from FILE (owned by
    /// you, mode 0600 or stricter; at least 32 characters). Or set it in
    /// AX_DEBUG_TOKEN. Default: a new random one, printed.
    #[arg(long, value_name = "FILE", requires = "debug_listen")]
    debug_token_file: Option<PathBuf>,
    /// Refused: a token in argv is visible to every local user (`ps`).
    #[arg(long, value_name = "TOKEN", hide = true)]
    debug_token: Option<String>,
    #[command(flatten)]
    limits: BudgetArgs,
    #[command(flatten)]
    profile: crate::profile::ProfileArgs,
    /// Continue this W3C trace (00-TRACEID-PARENTID-FLAGS) when exporting
    /// telemetry; a calls-file line's "traceparent" overrides it.
    #[arg(long, env = "TRACEPARENT", value_name = "TRACEPARENT", value_parser = crate::telemetry::parse_traceparent)]
    traceparent: Option<ax_telemetry::TraceParent>,
}

/// Per-call limits overriding the manifest's `[budget]`.
#[derive(Debug, Args)]
pub(crate) struct BudgetArgs {
    /// Memory a call may allocate at peak, e.g. 64MiB.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse_limit(s).map(|b| b.0))]
    max_memory: Option<u64>,
    /// CPU time a call may use, e.g. 2s.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| HumanDuration::parse_limit(s).map(|d| d.0))]
    max_cpu_time: Option<std::time::Duration>,
    /// Wall time a call may take, e.g. 5s.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| HumanDuration::parse_limit(s).map(|d| d.0))]
    max_duration: Option<std::time::Duration>,
}

impl BudgetArgs {
    pub(crate) fn budget(&self) -> Budget {
        Budget { max_memory: self.max_memory, max_cpu_time: self.max_cpu_time, max_duration: self.max_duration }
    }
}

/// One call to make.
#[derive(Debug, PartialEq)]
pub(crate) struct Call {
    pub(crate) method: String,
    pub(crate) input: Value,
    /// Limits of this call alone, over the plugin's.
    pub(crate) budget: Option<Budget>,
    /// The trace this call continues (W3C `traceparent`).
    pub(crate) traceparent: Option<ax_telemetry::TraceParent>,
}

pub(crate) fn run(args: RunArgs) -> Result<ExitCode> {
    let debug_token = args.debug_listen.map(|_| debug_token(&args)).transpose()?;
    let log_filter = crate::logging::init()?;
    let calls = match (&args.calls, &args.method) {
        (Some(file), _) => read_calls(file)?,
        (None, Some(method)) => {
            let input = parse_input(args.input.as_deref())?;
            vec![Call { method: method.clone(), input, budget: None, traceparent: None }]
        }
        (None, None) => Vec::new(),
    };
    let source = PluginSource::resolve(&args.plugin)?;
    let mut build = BuildOptions { build: !args.no_build, release: args.release, on_output: None };
    let library = source.library(&mut build)?;

    let sandbox = match source.sandbox() {
        Some(_) if args.no_sandbox => {
            warn_unsandboxed(&source, "--no-sandbox");
            None
        }
        Some((section, mode)) => Some(ax_isolate::Sandbox::from_manifest(&section, mode, Path::new(""))),
        None => None,
    };
    let sandboxed = sandbox.is_some();
    let isolate = args.isolate || source.isolation() == Isolation::Process || sandboxed;
    let profile = args.profile.options();
    if isolate && profile.is_some() {
        bail!(
            "{}: --profile is not available for a plugin in a child process (--isolate, isolation = \"process\" or \
             [sandbox]); expected an in-process run to profile",
            args.plugin.display()
        );
    }
    if sandbox.is_some() && args.debug_listen.is_some() {
        bail!(
            "{}: --debug-listen is not available for a sandboxed plugin (it runs in a child process); \
             expected --no-sandbox to debug it in-process",
            args.plugin.display()
        );
    }
    let export = crate::telemetry::Export::start(&source)?;
    let tracer = export.as_ref().map(crate::telemetry::Export::tracer);
    // A call's CPU time (two system calls per call) only where it is shown:
    // `--stats`, and the exported call span. A CPU budget and profiling read
    // it anyway.
    let call_cpu = args.stats || tracer.is_some();
    let instrumentation = Instrumentation { log_filter, profile, tracer, call_cpu, ..Instrumentation::default() };
    let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() })
        .context("cannot set up the plugin host")?;
    crate::logging::print_plugin_logs(&host);
    if let Some(export) = &export {
        export.observe(&host, &source.name());
    }
    let _trace = crate::telemetry::attach(args.traceparent.as_ref());
    let monitor = RefCell::new(StartupMonitor::new());
    let progress = Arc::new(Progress {
        methods: calls.iter().map(|c| c.method.clone()).collect(),
        started: AtomicUsize::new(0),
        state_file: args.state.clone(),
    });
    let plugin = if isolate {
        let host_binary = std::env::current_exe().context("cannot find the ax binary to run the isolated host")?;
        let budget = source.budget().overridden_by(&args.limits.budget());
        let options = IsolationOptions { host_binary, sandbox };
        let isolated = IsolatedPlugin::start(&host, &library, &source.name(), &source.config_json(), budget, options)?;
        for rule in isolated.sandbox_unenforced() {
            eprintln!("ax: WARNING: sandbox = \"best-effort\": not enforced here: {rule}");
        }
        Target::Isolated(isolated)
    } else {
        let plugin = match (profile, &export) {
            (None, None) => host.load(&source, &library)?,
            _ => host.load_monitored(&source, &library, &mut monitor.borrow_mut())?,
        };
        give_up_on_stuck_calls(&host, STUCK_GRACE, progress.clone());
        plugin.set_budget(plugin.budget().overridden_by(&args.limits.budget()));
        Target::InProcess(Arc::new(plugin))
    };
    // A debugger attached here is told of each call and of how the run ends.
    let listener =
        if let (Some(address), Some(token), Target::InProcess(plugin)) = (args.debug_listen, debug_token, &plugin) {
            let debugger = DebugListener::start(address, token.clone(), plugin.clone(), library.clone())
                .with_context(|| format!("cannot listen for a debugger on {address}"))?;
            eprintln!("ax: waiting for a debugger: attach to {} with token {token}", debugger.address);
            debugger.wait_for_start();
            Some(debugger)
        } else {
            None
        };

    if calls.is_empty() {
        let methods = plugin.methods();
        let methods =
            if methods.is_empty() { "it declares none".to_owned() } else { format!("one of: {}", methods.join(", ")) };
        bail!("{}: no method given; expected a METHOD ({methods}) or --calls FILE", args.plugin.display());
    }
    if let Some(state_file) = &args.state
        && state_file.exists()
    {
        let saved = read_state(state_file)?;
        plugin.restore_state(&saved).with_context(|| format!("{}: state refused", state_file.display()))?;
    }

    let restarts = Arc::new(AtomicU64::new(0));
    if let (Some(export), Target::Isolated(_)) = (&export, &plugin) {
        let restarts = restarts.clone();
        export.observe_restarts(plugin.name(), move || restarts.load(Ordering::Relaxed));
    }
    let first = std::cell::Cell::new(profile.is_some() || (export.is_some() && !isolate));
    let isolated_tracer = export.as_ref().filter(|_| isolate).map(crate::telemetry::Export::tracer);
    let call_number = std::cell::Cell::new(0);
    // What the sandbox denied, per (method, capability), for the profile.
    let denied = RefCell::new(std::collections::BTreeMap::<(String, String), u64>::new());
    let failed = run_calls(plugin.name(), &calls, args.stats, |m, i, b| {
        progress.started.fetch_add(1, Ordering::SeqCst);
        if let Some(debugger) = &listener {
            debugger.call_started(m, i);
        }
        let answer = if first.replace(false) {
            let answer = monitor.borrow_mut().time(ax_profile::Phase::FirstCall, || plugin.call_with(m, i, b));
            if let Some(export) = &export {
                export.record_startup(plugin.name(), &monitor.borrow());
            }
            answer
        } else {
            call_number.set(call_number.get() + 1);
            crate::telemetry::traced(isolated_tracer.as_ref(), plugin.name(), m, call_number.get(), || {
                plugin.call_with(m, i, b)
            })
        };
        if let Target::Isolated(p) = &plugin {
            restarts.store(p.restarts(), Ordering::Relaxed);
        }
        for (capability, count) in answer.1.denied.iter() {
            *denied.borrow_mut().entry((m.to_owned(), capability.to_owned())).or_default() += count;
        }
        if let Some(debugger) = &listener {
            debugger.call_ended();
        }
        answer
    });
    if let (true, Target::Isolated(p)) = (args.stats, &plugin) {
        let denials = p.sandbox_denials();
        if !denials.is_empty() {
            let list: Vec<String> = denials.iter().map(|(capability, n)| format!("{capability} ×{n}")).collect();
            eprintln!("stats: {}: sandbox denied {}", plugin.name(), list.join(", "));
        }
    }
    if sandboxed {
        let denials = denied.into_inner().into_iter();
        let denials = denials.map(|((method, capability), count)| SandboxDenial { method, capability, count });
        crate::profile::record_sandbox_denials(&source, &library, denials.collect());
    }
    if let Some(state_file) = &args.state {
        let saved = plugin.save_state()?;
        write_state(state_file, &saved)?;
    }
    plugin.shutdown()?;
    if let (Some(_), Target::InProcess(plugin)) = (profile, &plugin) {
        crate::profile::write_run_profile(&args.profile, &source, &library, plugin, &monitor.borrow())?;
    }
    if let Some(debugger) = &listener {
        debugger.finished(i32::from(failed != 0));
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn warn_unsandboxed(source: &PluginSource, why: &str) {
    eprintln!("ax: WARNING: {why}: {} runs with ALL YOUR RIGHTS; its [sandbox] is NOT enforced", source.name());
}

/// For the commands that run plugins in-process (`ax dev`, `ax perf`): a
/// plugin whose manifest declares `[sandbox]` is refused, unless
/// `AX_NO_SANDBOX` is set, and then ax says loudly that it runs unconfined.
pub(crate) fn refuse_unsandboxed(source: &PluginSource, command: &str) -> Result<()> {
    if source.sandbox().is_none() {
        return Ok(());
    }
    let off = std::env::var(ax_isolate::sandbox::NO_SANDBOX_ENV).ok();
    if ax_isolate::sandbox::waived(off.as_deref()) {
        warn_unsandboxed(source, "AX_NO_SANDBOX");
        return Ok(());
    }
    bail!(
        "{}: its manifest declares [sandbox], which `{command}` cannot enforce (it runs the plugin in-process); \
         expected `ax run`, which sandboxes it, or AX_NO_SANDBOX=1 to run it with your full rights",
        source.name()
    )
}

/// 128 random bits, in hex.
/// The attach token: from `--debug-token-file`, else `AX_DEBUG_TOKEN`, else
/// a new random one; never from argv, where every local user can read it.
fn debug_token(args: &RunArgs) -> Result<String> {
    if args.debug_token.is_some() {
        bail!(
            "--debug-token: a token on the command line is visible to every local user; expected it in \
             AX_DEBUG_TOKEN or in a file given by --debug-token-file"
        );
    }
    let (token, origin) = if let Some(file) = &args.debug_token_file {
        (read_token_file(file)?, file.display().to_string())
    } else if let Some(token) = std::env::var_os("AX_DEBUG_TOKEN") {
        let token = token.into_string().map_err(|_| anyhow!("AX_DEBUG_TOKEN: expected UTF-8 text"))?;
        (token, "AX_DEBUG_TOKEN".to_owned())
    } else {
        return random_token();
    };
    ax_runtime::debug_host::check_token(&token).map_err(|m| anyhow!("{origin}: {m}"))?;
    Ok(token)
}

/// Reads a token file, refusing one another user could read or change.
fn read_token_file(file: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(file).with_context(|| format!("{}: cannot read the debug token", file.display()))?;
    if meta.uid() != ax_runtime::rundir::euid() || meta.mode() & 0o077 != 0 {
        bail!(
            "{}: a debug token file must be yours and private (mode 0600); it has owner uid {} and mode {:o}",
            file.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("{}: cannot read the debug token", file.display()))?;
    Ok(text.trim().to_owned())
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)
        .context("cannot read /dev/urandom for a debug token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// How long a call may go on after a budget violation before `ax run` gives up on it.
const STUCK_GRACE: Duration = Duration::from_secs(2);

/// How far `ax run` got through its calls, for the report when it gives up on one.
struct Progress {
    /// The method of each call, in order.
    methods: Vec<String>,
    /// How many calls have started.
    started: AtomicUsize,
    /// `--state FILE`, saved only after the last call.
    state_file: Option<PathBuf>,
}

impl Progress {
    /// After giving up on the running call: each call that will not run, and
    /// what became of the state file.
    fn report_abandoned(&self) -> Vec<String> {
        let started = self.started.load(Ordering::SeqCst);
        let total = self.methods.len();
        let stuck = started.checked_sub(1).and_then(|i| self.methods.get(i).map(|m| (i + 1, m)));
        let mut lines = Vec::new();
        if let Some((number, stuck)) = stuck {
            for (i, method) in self.methods.iter().enumerate().skip(started) {
                lines.push(format!(
                    "skipped: call {} of {total}, {method}: not run, because call {number} ({stuck}) is stuck on the \
                     plugin's only thread",
                    i + 1
                ));
            }
        }
        if let Some(file) = &self.state_file {
            let kept =
                if file.exists() { "it still holds the state from before this run" } else { "no state was saved" };
            lines.push(format!(
                "state: {} not written (a plugin stuck in a call cannot save its state); {kept}",
                file.display()
            ));
        }
        lines
    }
}

/// In-process, a call that exceeded its budget but reaches no probe, span or
/// event cannot be stopped, and would keep `ax run` waiting for ever (a
/// deadlock, a loop). If such a call is still running `grace` after its
/// violation, say so — with each call that will not run (calls are serialised
/// on the plugin's one worker thread, which the stuck call holds) and what
/// became of the state file — and exit; the process takes the stuck thread
/// with it.
fn give_up_on_stuck_calls(host: &Host, grace: Duration, progress: Arc<Progress>) {
    let running = Arc::new(AtomicU64::new(0));
    host.events().subscribe(move |event| match event {
        Event::CallStarted { call, .. } => running.store(*call, Ordering::SeqCst),
        Event::CallFinished { call, .. } => {
            let _ = running.compare_exchange(*call, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
        Event::BudgetViolation { plugin, method, violation, .. } => {
            let call = running.load(Ordering::SeqCst);
            let (running, what) = (running.clone(), format!("{plugin}.{method}: budget exceeded: {violation}"));
            let progress = progress.clone();
            std::thread::spawn(move || {
                std::thread::sleep(grace);
                if call != 0 && running.load(Ordering::SeqCst) == call {
                    let mut report = format!(
                        "error: {what}; the call is stuck in code that reaches no probe, span or event and \
                         cannot be stopped in-process, so ax gives up on it (run the plugin isolated to contain \
                         this: --isolate)"
                    );
                    for line in progress.report_abandoned() {
                        report.push('\n');
                        report.push_str(&line);
                    }
                    eprintln!("{report}");
                    std::process::exit(1);
                }
            });
        }
        _ => {}
    });
}

/// A plugin in this process or in a child process.
#[allow(clippy::large_enum_variant, reason = "one per run, never moved around")]
enum Target {
    InProcess(Arc<Plugin>),
    Isolated(IsolatedPlugin),
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::InProcess(p) => p.name(),
            Target::Isolated(p) => p.name(),
        }
    }

    fn methods(&self) -> Vec<String> {
        match self {
            Target::InProcess(p) => p.methods().to_vec(),
            Target::Isolated(p) => p.methods(),
        }
    }

    fn call_with(&self, method: &str, input: &Value, budget: Option<&Budget>) -> (Result<Value, CallError>, Usage) {
        match self {
            Target::InProcess(p) => p.call_with(method, input, budget),
            Target::Isolated(p) => p.call_with(method, input, budget),
        }
    }

    fn save_state(&self) -> Result<SavedState, CallError> {
        match self {
            Target::InProcess(p) => p.save_state(),
            Target::Isolated(p) => p.save_state(),
        }
    }

    fn restore_state(&self, saved: &SavedState) -> Result<(), CallError> {
        match self {
            Target::InProcess(p) => p.restore_state(saved),
            Target::Isolated(p) => p.restore_state(saved),
        }
    }

    fn shutdown(&self) -> Result<(), CallError> {
        match self {
            Target::InProcess(p) => p.shutdown(),
            Target::Isolated(p) => p.shutdown(),
        }
    }
}

/// What a call is made with: method, input, budget override.
type CallFn<'a> = dyn Fn(&str, &Value, Option<&Budget>) -> (Result<Value, CallError>, Usage) + 'a;

/// Runs every call through `call`, printing results on stdout and errors (and,
/// with `stats`, each call's usage) on stderr; returns how many failed.
pub(crate) fn run_calls(
    name: &str,
    calls: &[Call],
    stats: bool,
    call_with: impl Fn(&str, &Value, Option<&Budget>) -> (Result<Value, CallError>, Usage),
) -> usize {
    let call_with: &CallFn<'_> = &call_with;
    let stdout = std::io::stdout();
    let mut failed = 0;
    for call in calls {
        let trace = crate::telemetry::attach(call.traceparent.as_ref());
        let (result, usage) = call_with(&call.method, &call.input, call.budget.as_ref());
        drop(trace);
        if stats {
            eprintln!("stats: {name}.{}: {usage}", call.method);
        }
        match result {
            Ok(output) => {
                let mut out = stdout.lock();
                crate::pipe::check(writeln!(out, "{output}").and_then(|()| out.flush()));
            }
            Err(error) => {
                failed += 1;
                eprintln!("error: {error}");
            }
        }
    }
    failed
}

pub(crate) fn parse_input(input: Option<&str>) -> Result<Value> {
    let Some(text) = input else {
        return Ok(Value::Null);
    };
    serde_json::from_str(text).map_err(|e| {
        anyhow!("input {text:?} is not valid JSON ({e}); expected a JSON value such as '{{\"text\":\"a b c\"}}'")
    })
}

/// Reads a calls file, failing on the first bad line with its number.
pub(crate) fn read_calls(path: &Path) -> Result<Vec<Call>> {
    let lines = ax_runtime::read_calls_file(path)?;
    if lines.is_empty() {
        return Err(ax_runtime::no_calls(path).into());
    }
    lines
        .into_iter()
        .map(|c| {
            let traceparent = c
                .traceparent
                .map(|t| crate::telemetry::parse_traceparent(&t))
                .transpose()
                .map_err(|e| anyhow!("{}:{}: {e}", path.display(), c.line))?;
            Ok(Call { method: c.method, input: c.input, budget: c.budget, traceparent })
        })
        .collect()
}

/// State files: `AXSTATE1`, the schema version (u32 LE), then the plugin's bytes.
const STATE_MAGIC: &[u8; 8] = b"AXSTATE1";

fn read_state(path: &Path) -> Result<SavedState> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read state file", path.display()))?;
    let corrupt = || anyhow!("{}: not an ax state file (expected one written by `ax run --state`)", path.display());
    let rest = bytes.strip_prefix(STATE_MAGIC.as_slice()).ok_or_else(corrupt)?;
    if rest.len() < 4 {
        return Err(corrupt());
    }
    let (version, payload) = rest.split_at(4);
    let schema_version = u32::from_le_bytes(version.try_into().map_err(|_| corrupt())?);
    Ok(SavedState { schema_version, bytes: payload.to_vec().into() })
}

fn write_state(path: &Path, state: &SavedState) -> Result<()> {
    let mut bytes = STATE_MAGIC.to_vec();
    bytes.extend_from_slice(&state.schema_version.to_le_bytes());
    bytes.extend_from_slice(&state.bytes);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("{}: cannot write state file", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls_from(text: &str) -> Result<Vec<Call>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        std::fs::write(&path, text).unwrap();
        read_calls(&path).map_err(|e| format!("{e:#}").replace(&dir.path().display().to_string(), "DIR"))
    }

    #[test]
    fn calls_file_lines() {
        let calls =
            calls_from("{\"method\":\"count\",\"input\":{\"text\":\"a\"}}\n\n{\"method\":\"other\"}\n").unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].input["text"], "a");
        assert_eq!(calls[1], Call { method: "other".into(), input: Value::Null, budget: None, traceparent: None });
    }

    #[test]
    fn calls_file_errors_name_the_line() {
        let err = calls_from("{\"method\":\"count\"}\n{oops}\n").unwrap_err();
        assert!(err.starts_with("DIR/calls.jsonl:2: invalid JSON"), "{err}");
        let err = calls_from("[1]\n").unwrap_err();
        assert!(err.starts_with("DIR/calls.jsonl:1: not an object; expected one JSON object per line"), "{err}");
        let err = calls_from("{\"input\":1}\n").unwrap_err();
        assert!(err.contains(":1: missing \"method\" string"), "{err}");
        let err = calls_from("{\"method\":\"m\",\"inptu\":1}\n").unwrap_err();
        assert!(err.contains(":1: unknown key \"inptu\""), "{err}");
        let err = calls_from("{\"method\":\"m\",\"budget\":{\"max_duration\":\"5 parsecs\"}}\n").unwrap_err();
        assert!(err.contains(":1: invalid duration \"5 parsecs\""), "{err}");
        let err = calls_from("{\"method\":\"m\",\"budget\":{\"max_time\":\"5s\"}}\n").unwrap_err();
        assert!(err.contains(":1: unknown budget key \"max_time\""), "{err}");
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let calls = calls_from(&format!("{{\"method\":\"m\",\"traceparent\":\"{tp}\"}}\n")).unwrap();
        assert_eq!(calls[0].traceparent.unwrap().trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        let err = calls_from("{\"method\":\"m\",\"traceparent\":\"00-zz\"}\n").unwrap_err();
        assert!(err.contains(":1: traceparent \"00-zz\" is invalid: expected a W3C traceparent"), "{err}");
        let calls = calls_from("{\"method\":\"m\",\"budget\":{\"max_memory\":\"1KiB\"}}\n").unwrap();
        assert_eq!(calls[0].budget.unwrap().max_memory, Some(1024));
        let err = calls_from("\n\n").unwrap_err();
        assert!(err.contains("no calls"), "{err}");
    }

    #[test]
    fn input_must_be_json() {
        assert_eq!(parse_input(None).unwrap(), Value::Null);
        assert_eq!(parse_input(Some("{\"a\":1}")).unwrap()["a"], 1);
        let err = parse_input(Some("{text: 1}")).unwrap_err().to_string();
        assert!(err.starts_with("input \"{text: 1}\" is not valid JSON"), "{err}");
    }

    #[test]
    fn state_file_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state");
        let saved = SavedState { schema_version: 3, bytes: b"{\"total\":9}".to_vec().into() };
        write_state(&path, &saved).unwrap();
        assert_eq!(read_state(&path).unwrap(), saved);
        std::fs::write(&path, b"AXSTATE1\x01").unwrap();
        let err = read_state(&path).unwrap_err().to_string();
        assert!(err.ends_with("not an ax state file (expected one written by `ax run --state`)"), "{err}");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(read_state(&path).is_err());
    }
}
