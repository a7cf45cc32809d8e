//! The debug host: the child process a debug adapter starts (`ax __debug-host
//! --socket P`), running one plugin under a [`DebugAgent`].
//!
//! The adapter talks to it in JSON lines over a Unix socket: [`DebugRequest`]s
//! with an id, replies with the same id, and notifications (id 0) for stops,
//! logpoint output and the plugin's log lines. Calls run on their own thread,
//! so the request loop keeps serving — resume, setVariable, evaluate — while a
//! call is stopped at a breakpoint. Only the adapter's side knows DAP; this side
//! knows the agent.
//!
//! If the plugin crashes this process, the adapter sees the socket close and
//! the exit status, and ends the session with a message; it does not die with it.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::debug::{
    BreakpointSpec, BreakpointState, DebugAgent, DebugEvent, FunctionBreakpointSpec, Resume, Stop, StopReason,
};
use crate::events::Event;
use crate::host::{Host, HostOptions};
use crate::isolated::{Envelope, send};
use crate::plugin::Plugin;

/// What the adapter asks the debug host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DebugRequest {
    Load {
        library: PathBuf,
        name: String,
        config: String,
    },
    SetBreakpoints {
        file: String,
        breakpoints: Vec<WireBreakpoint>,
    },
    SetFunctionBreakpoints {
        breakpoints: Vec<WireFunctionBreakpoint>,
    },
    /// Runs a call; the reply comes when it returns.
    Call {
        method: String,
        input: Value,
    },
    Resume {
        how: WireResume,
    },
    Pause,
    SetVariable {
        name: String,
        value: String,
    },
    /// Evaluates an expression over the stopped thread's bindings.
    Evaluate {
        expression: String,
    },
    Shutdown,
}

/// A breakpoint as the adapter sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireBreakpoint {
    pub line: u32,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
    pub log_message: Option<String>,
}

/// A function breakpoint as the adapter sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireFunctionBreakpoint {
    pub name: String,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
}

/// How a stopped thread goes on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireResume {
    Continue,
    Next,
    StepIn,
    StepOut,
}

/// A frame of a stopped thread.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireFrame {
    pub name: String,
    pub file: String,
    pub line: u32,
}

/// What the debug host tells the adapter.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DebugReply {
    Loaded {
        methods: Vec<String>,
    },
    Breakpoints {
        breakpoints: Vec<WireBreakpointState>,
    },
    Returned {
        output: Value,
    },
    Failed {
        message: String,
    },
    Evaluated {
        value: Value,
    },
    Done,
    /// Notification: a thread stopped.
    Stopped {
        reason: String,
        breakpoints: Vec<u64>,
        thread: String,
        frames: Vec<WireFrame>,
        variables: Vec<(String, Value)>,
        writable: Vec<String>,
        frame_fields: Vec<Vec<(String, Value)>>,
        message: Option<String>,
    },
    /// Notification: a logpoint's message, or a plugin log line.
    Output {
        category: String,
        text: String,
    },
}

/// What became of a breakpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireBreakpointState {
    pub id: u64,
    pub verified: bool,
    pub line: Option<u32>,
    pub message: Option<String>,
}

impl From<BreakpointState> for WireBreakpointState {
    fn from(s: BreakpointState) -> Self {
        WireBreakpointState { id: s.id, verified: s.verified, line: s.line, message: s.message }
    }
}

fn stopped(stop: Stop) -> DebugReply {
    DebugReply::Stopped {
        reason: match stop.reason {
            StopReason::Breakpoint => "breakpoint",
            StopReason::FunctionBreakpoint => "function breakpoint",
            StopReason::Step => "step",
            StopReason::Pause => "pause",
            StopReason::ConditionError => "exception",
        }
        .to_owned(),
        breakpoints: stop.breakpoints,
        thread: stop.thread,
        frames: stop.frames.into_iter().map(|f| WireFrame { name: f.name, file: f.file, line: f.line }).collect(),
        variables: stop.variables,
        writable: stop.writable,
        frame_fields: stop.frame_fields,
        message: stop.message,
    }
}

type Writer = Arc<Mutex<UnixStream>>;

fn reply(writer: &Writer, id: u64, body: DebugReply) -> std::io::Result<()> {
    send(&mut writer.lock().unwrap_or_else(|e| e.into_inner()), id, body)
}

/// The child side: connects to `socket` and serves one plugin under a debug
/// agent until told to shut down or the adapter goes away.
pub fn serve(socket: &Path) -> std::io::Result<()> {
    let stream = UnixStream::connect(socket)?;
    let writer: Writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut options = HostOptions::default();
    if let Some(filter) = std::env::var("AX_LOG").ok().and_then(|f| f.parse().ok()) {
        options.instrumentation.log_filter = filter;
    }
    let host = Host::with_options(options)?;
    let logs = writer.clone();
    host.events().subscribe(move |event| {
        if let Event::Log(line) = event {
            let text = format!("{line}\n");
            let _ = reply(&logs, 0, DebugReply::Output { category: "console".to_owned(), text });
        }
    });

    let mut session: Option<(Arc<Plugin>, Arc<DebugAgent>)> = None;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let Ok(Envelope { id, body }) = serde_json::from_str::<Envelope<DebugRequest>>(&line) else { continue };
        let failed = |message: String| DebugReply::Failed { message };
        let answer = match (body, &session) {
            (DebugRequest::Load { library, name, config }, _) => match host.load_library(&library, &name, &config) {
                Ok(plugin) => {
                    let plugin = Arc::new(plugin);
                    let agent = DebugAgent::attach(plugin.clone());
                    forward_agent_events(&agent, writer.clone());
                    let methods = plugin.methods().to_vec();
                    session = Some((plugin, agent));
                    DebugReply::Loaded { methods }
                }
                Err(e) => failed(e.to_string()),
            },
            (DebugRequest::Shutdown, _) => {
                if let Some((plugin, agent)) = session.take() {
                    agent.detach();
                    let _ = plugin.shutdown();
                }
                reply(&writer, id, DebugReply::Done)?;
                return Ok(());
            }
            (_, None) => failed("no plugin is loaded".to_owned()),
            (DebugRequest::SetBreakpoints { file, breakpoints }, Some((_, agent))) => {
                let specs: Vec<BreakpointSpec> = breakpoints
                    .into_iter()
                    .map(|b| BreakpointSpec {
                        line: b.line,
                        condition: b.condition,
                        hit_condition: b.hit_condition,
                        log_message: b.log_message,
                    })
                    .collect();
                let states = agent.set_breakpoints(&file, &specs);
                DebugReply::Breakpoints { breakpoints: states.into_iter().map(Into::into).collect() }
            }
            (DebugRequest::SetFunctionBreakpoints { breakpoints }, Some((_, agent))) => {
                let specs: Vec<FunctionBreakpointSpec> = breakpoints
                    .into_iter()
                    .map(|b| FunctionBreakpointSpec {
                        name: b.name,
                        condition: b.condition,
                        hit_condition: b.hit_condition,
                    })
                    .collect();
                let states = agent.set_function_breakpoints(&specs);
                DebugReply::Breakpoints { breakpoints: states.into_iter().map(Into::into).collect() }
            }
            (DebugRequest::Call { method, input }, Some((plugin, _))) => {
                // Off the request loop: a stopped call must not stop the serving.
                let (plugin, writer) = (plugin.clone(), writer.clone());
                std::thread::spawn(move || {
                    let answer = match plugin.call(&method, &input) {
                        Ok(output) => DebugReply::Returned { output },
                        Err(e) => DebugReply::Failed { message: e.to_string() },
                    };
                    let _ = reply(&writer, id, answer);
                });
                continue;
            }
            (DebugRequest::Resume { how }, Some((_, agent))) => {
                agent.resume(match how {
                    WireResume::Continue => Resume::Continue,
                    WireResume::Next => Resume::Next,
                    WireResume::StepIn => Resume::StepIn,
                    WireResume::StepOut => Resume::StepOut,
                });
                DebugReply::Done
            }
            (DebugRequest::Pause, Some((_, agent))) => {
                agent.pause();
                DebugReply::Done
            }
            (DebugRequest::SetVariable { name, value }, Some((_, agent))) => match agent.set_variable(&name, &value) {
                Ok(()) => DebugReply::Done,
                Err(message) => failed(message),
            },
            (DebugRequest::Evaluate { expression }, Some((_, agent))) => match agent.evaluate(&expression) {
                Ok(value) => DebugReply::Evaluated { value },
                Err(message) => failed(message),
            },
        };
        reply(&writer, id, answer)?;
    }
    Ok(())
}

/// Sends the agent's stops and logpoint lines to the adapter as they happen.
fn forward_agent_events(agent: &Arc<DebugAgent>, writer: Writer) {
    let events = agent.events().clone();
    std::thread::spawn(move || {
        for event in events.iter() {
            let note = match event {
                DebugEvent::Stopped(stop) => stopped(stop),
                DebugEvent::Output(text) => DebugReply::Output { category: "console".to_owned(), text: text + "\n" },
            };
            if reply(&writer, 0, note).is_err() {
                return;
            }
        }
    });
}
