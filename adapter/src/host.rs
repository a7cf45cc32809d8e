//! The plugin's host as the session sees it: an `ax __debug-host` child
//! started for a launch, or an `ax run --debug-listen` host attached to over
//! loopback. Requests go out as JSON lines with an id; a reader thread routes
//! replies to the request waiting for them and turns the host's notifications
//! (stops, output, reloads; an attached host's calls and exit code) into DAP
//! events and session state. When the connection closes the session is told
//! how the host ended (the exit code an attached host announced, the signal
//! for a crash), unless the session ended it: the adapter never goes down
//! with the plugin.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ax_isolate::child_host::start_child_host_with;
use ax_runtime::debug_host::{DebugReply, DebugRequest, WireStopReason};
use crossbeam_channel::{self as channel, Receiver, Sender};
use dap::events::{BreakpointEventBody, Event, ModuleEventBody, StoppedEventBody};
use dap::types::{BreakpointEventReason, ModuleEventReason, StoppedEventReason};
use serde_json::{Value, json};

use crate::protocol::{CallArg, Out};
use crate::session::{Stopped, breakpoint, module, unexpected};

/// The debug host (a child, or an `ax` host attached to) and the routes to it.
pub(crate) struct DebugHost {
    /// The child process; `None` when attached to a host someone else started.
    pub(crate) process: Option<Mutex<Child>>,
    pub(crate) writer: Mutex<Box<dyn Write + Send>>,
    /// Closes the connection (both ways).
    pub(crate) shutdown: Box<dyn Fn() + Send + Sync>,
    pub(crate) pending: Arc<Mutex<HashMap<u64, Sender<DebugReply>>>>,
    pub(crate) next_id: AtomicU64,
    /// Set when the session ends it: its end is then not news.
    pub(crate) ending: AtomicBool,
    /// The exit code an attached host announced before closing its connection.
    pub(crate) finished: Mutex<Option<i32>>,
    /// A child's stdout and stderr readers: disconnected once both have
    /// read to the end of their pipe.
    pipes: Mutex<Option<Receiver<()>>>,
}

impl DebugHost {
    pub(crate) fn ask(&self, request: DebugRequest) -> Result<DebugReply, String> {
        self.ask_within(request, None)
    }

    /// [`DebugHost::ask`], giving up on the answer after `timeout`.
    fn ask_within(&self, request: DebugRequest, timeout: Option<Duration>) -> Result<DebugReply, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel::bounded(1);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        // The envelope: the id beside the request's own fields.
        let mut body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
        body["id"] = json!(id);
        let mut line = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let gone = || "the plugin's host process has gone".to_owned();
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.write_all(&line).and_then(|()| writer.flush()).map_err(|_| gone())?;
        drop(writer);
        match timeout {
            Some(timeout) => rx.recv_timeout(timeout).map_err(|_| gone()),
            None => rx.recv().map_err(|_| gone()),
        }
    }

    /// Asks for something answered by `Done`.
    pub(crate) fn command(&self, request: DebugRequest) -> Result<(), String> {
        match self.ask(request)? {
            DebugReply::Done => Ok(()),
            DebugReply::Failed { message } => Err(message),
            other => Err(unexpected(other)),
        }
    }

    /// Ends it: kills a child (no process is left behind), closes the connection.
    pub(crate) fn end(&self) {
        self.ending.store(true, Ordering::Relaxed);
        if let Some(process) = &self.process {
            let mut process = process.lock().unwrap_or_else(|e| e.into_inner());
            let _ = process.kill();
            let _ = process.wait();
        }
        (self.shutdown)();
    }

    /// Ends a launched host after its last call, as `ax run` would: the
    /// plugin's shutdown runs (for up to a second), then the process is
    /// ended and what it printed is read to the end, so that every line a
    /// call printed is sent before the session says it has ended.
    pub(crate) fn finish(&self) {
        self.ending.store(true, Ordering::Relaxed);
        if self.ask_within(DebugRequest::Shutdown, Some(Duration::from_secs(1))).is_ok() {
            // Exiting on its own flushes what the plugin printed last.
            self.exit_within(Duration::from_secs(1));
        }
        self.end();
        self.read_output_to_end();
    }

    /// The child's exit status, once it has exited, waiting up to `timeout`.
    fn exit_within(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let process = self.process.as_ref()?;
        let deadline = Instant::now() + timeout;
        loop {
            match process.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {}
                _ => return None,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (up to two seconds: something the plugin started may hold its
    /// pipes open) for a child's stdout and stderr to be read to their end.
    fn read_output_to_end(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        if let Some(pipes) = self.pipes.lock().unwrap_or_else(|e| e.into_inner()).take() {
            while let Ok(()) = pipes.recv_deadline(deadline) {}
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).id())
    }
}

/// The `ax` binary that runs the debug host: `AX_BIN`, else beside this adapter.
pub(crate) fn ax_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("AX_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let me = std::env::current_exe().context("cannot find ax-dap's own path")?;
    let beside = me.with_file_name(format!("ax{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() { Ok(beside) } else { bail!("no `ax` binary beside {}; set AX_BIN", me.display()) }
}

/// Starts `ax __debug-host` from `command` (`ax` with the launch's
/// environment and directory), connects, and routes its output, replies and
/// notifications.
pub(crate) fn spawn_debug_host(
    command: std::process::Command,
    out: Out,
    stopped: Arc<Mutex<Stopped>>,
    current_call: Arc<Mutex<Option<CallArg>>>,
) -> Result<Arc<DebugHost>> {
    // A folder of our own (random name, 0700) in the per-user runtime directory.
    let root = ax_runtime::rundir::runtime_dir()?;
    let dir = ax_runtime::rundir::unique_dir(&root, &format!("dap-{}", std::process::id()))
        .with_context(|| format!("{}: cannot create a folder for the debug host's socket", root.display()))?;
    let socket = dir.join("host.sock");
    let started = start_child_host_with(command, "__debug-host", &socket);
    let _ = std::fs::remove_dir_all(&dir);
    let (mut process, stream) = started.map_err(|m| anyhow!("cannot start the plugin's debug host: {m}"))?;
    let (open, pipes) = channel::bounded::<()>(0);
    for (pipe, category) in [
        (process.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), "stdout"),
        (process.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), "stderr"),
    ] {
        let (Some(pipe), out, open) = (pipe, out.clone(), open.clone()) else { continue };
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                out.output(category, format!("{line}\n"));
            }
            drop(open);
        });
    }
    drop(open);
    let reader = stream.try_clone()?;
    let closer = stream.try_clone()?;
    let shutdown = Box::new(move || {
        let _ = closer.shutdown(std::net::Shutdown::Both);
    });
    let host = connect(Some(process), Box::new(stream), Box::new(reader), shutdown, out, stopped, current_call);
    *host.pipes.lock().unwrap_or_else(|e| e.into_inner()) = Some(pipes);
    Ok(host)
}

/// Routes a debug host connection: replies to the request waiting for them,
/// notifications (stops, output) to DAP events. When the connection closes
/// the session says how the host ended, unless the session ended it.
pub(crate) fn connect(
    process: Option<Child>,
    writer: Box<dyn Write + Send>,
    reader: Box<dyn std::io::Read + Send>,
    shutdown: Box<dyn Fn() + Send + Sync>,
    out: Out,
    stopped: Arc<Mutex<Stopped>>,
    current_call: Arc<Mutex<Option<CallArg>>>,
) -> Arc<DebugHost> {
    let pending: Arc<Mutex<HashMap<u64, Sender<DebugReply>>>> = Arc::default();
    let child = Arc::new(DebugHost {
        process: process.map(Mutex::new),
        writer: Mutex::new(writer),
        shutdown,
        pending: pending.clone(),
        next_id: AtomicU64::new(1),
        ending: AtomicBool::new(false),
        finished: Mutex::new(None),
        pipes: Mutex::new(None),
    });
    let host = child.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
            let id = message.get("id").and_then(Value::as_u64).unwrap_or(0);
            let Ok(reply) = serde_json::from_value::<DebugReply>(message) else { continue };
            if id != 0 {
                if let Some(tx) = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(reply);
                }
                continue;
            }
            match reply {
                DebugReply::Output { category, text } => out.output(&category, text),
                // An attached host runs its own calls and says which.
                DebugReply::CallStarted { call } => {
                    let call = CallArg { method: call.method, input: call.input };
                    *current_call.lock().unwrap_or_else(|e| e.into_inner()) = Some(call);
                }
                DebugReply::CallEnded => *current_call.lock().unwrap_or_else(|e| e.into_inner()) = None,
                DebugReply::Finished { exit_code } => {
                    *host.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(exit_code);
                }
                DebugReply::Reloaded { generation, name, breakpoints } => {
                    let module = module(name, None, Some(format!("generation {generation}")));
                    out.event(Event::Module(ModuleEventBody { reason: ModuleEventReason::Changed, module }));
                    for (path, state) in &breakpoints {
                        let breakpoint = breakpoint(state, path.as_deref());
                        let reason = BreakpointEventReason::Changed;
                        out.event(Event::Breakpoint(BreakpointEventBody { reason, breakpoint }));
                    }
                }
                DebugReply::Stopped {
                    reason,
                    breakpoints,
                    frames,
                    variables,
                    frame_fields,
                    message,
                    exception,
                    history,
                    ..
                } => {
                    let call = current_call.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let description = exception.as_ref().map(|e| e.description.clone()).or(message);
                    *stopped.lock().unwrap_or_else(|e| e.into_inner()) = Stopped {
                        frames,
                        variables,
                        frame_fields,
                        exception,
                        call,
                        handles: Default::default(),
                        history,
                    };
                    let reason = match reason {
                        WireStopReason::Breakpoint => StoppedEventReason::Breakpoint,
                        WireStopReason::Step => StoppedEventReason::Step,
                        WireStopReason::Pause => StoppedEventReason::Pause,
                        WireStopReason::Entry => StoppedEventReason::Entry,
                        // The crate's `Data` would say "data"; DAP says "data breakpoint".
                        WireStopReason::DataBreakpoint => StoppedEventReason::String("data breakpoint".to_owned()),
                        WireStopReason::ConditionError | WireStopReason::Exception => StoppedEventReason::Exception,
                        // The crate's `Function` would say "function"; DAP says "function breakpoint".
                        WireStopReason::FunctionBreakpoint => {
                            StoppedEventReason::String("function breakpoint".to_owned())
                        }
                    };
                    out.event(Event::Stopped(StoppedEventBody {
                        reason,
                        description: description.clone(),
                        thread_id: Some(1),
                        preserve_focus_hint: None,
                        text: description,
                        all_threads_stopped: Some(true),
                        hit_breakpoint_ids: Some(
                            breakpoints.into_iter().filter_map(|id| i64::try_from(id).ok()).collect(),
                        ),
                    }));
                }
                _ => {}
            }
        }
        pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if host.ending.load(Ordering::Relaxed) {
            return;
        }
        if let Some(code) = *host.finished.lock().unwrap_or_else(|e| e.into_inner()) {
            out.output("console", format!("ax-dap: the attached host finished its calls (exit code {code})\n"));
            out.ended(i64::from(code));
            return;
        }
        let how = exit_of(&host);
        // Its last words (a panic's message, say) before the news.
        host.read_output_to_end();
        out.output("stderr", format!("the plugin's host process ended: {how}\n"));
        out.ended(1);
    });
    child
}

/// How the debug host ended, waiting for it briefly.
pub(crate) fn exit_of(host: &DebugHost) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    if host.process.is_none() {
        return "the attached host closed its connection (it finished or was stopped)".to_owned();
    }
    match host.exit_within(Duration::from_secs(2)) {
        Some(status) => match status.signal() {
            Some(signal) => format!("killed by {}", ax_isolate::signal_name(signal)),
            None => format!("{status}"),
        },
        None => "it closed its connection".to_owned(),
    }
}
