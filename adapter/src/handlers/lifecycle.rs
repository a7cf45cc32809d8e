//! Handlers that start, restart and run the debuggee: launch, attach,
//! restart, configurationDone (the launch's calls), continue / step / pause.
//! Each mutates the session in request order (the session's loop calls
//! them one at a time); none waits on the client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ax_isolate::Sandbox;
use ax_isolate::sandbox::{NO_SANDBOX_ENV, waived};
use ax_runtime::debug_host::{DebugReply, DebugRequest, WireResume};
use ax_runtime::{BuildOptions, PluginSource, SourceWatcher};
use dap::events::{BreakpointEventBody, Event, ProcessEventBody};
use dap::types::{BreakpointEventReason, ProcessEventStartMethod};
use serde_json::{Value, json};

use crate::host::{ax_binary, connect, spawn_debug_host};
use crate::protocol::{AttachArgs, CallArg, Continued, LaunchArgs, Out, RestartArgs, body};
use crate::session::{Session, Stopped, breakpoint, module, unexpected};

impl Session {
    /// `launch`: starts the plugin under a debug host.
    pub(crate) fn on_launch(&mut self, args: LaunchArgs) -> Result<Value, String> {
        let done = Ok(json!({}));
        self.launch(args).map_err(|e| format!("{e:#}"))?;
        self.out.event(Event::Initialized);
        done
    }

    /// `attach`: connects to an `ax run --debug-listen` host.
    pub(crate) fn on_attach(&mut self, args: AttachArgs) -> Result<Value, String> {
        let done = Ok(json!({}));
        self.attach(args).map_err(|e| format!("{e:#}"))?;
        self.out.event(Event::Initialized);
        done
    }

    /// `configurationDone`: the breakpoints are set; the calls start.
    pub(crate) fn on_configuration_done(&mut self) -> Result<Value, String> {
        let done = Ok(json!({}));
        self.configured = true;
        self.start_calls()?;
        done
    }

    /// `continue`, `next`, `stepIn`, `stepOut`.
    pub(crate) fn on_resume(&mut self, how: WireResume) -> Result<Value, String> {
        *self.lock_stopped() = Stopped::default();
        self.child()?.command(DebugRequest::Resume { how })?;
        Ok(body(Continued { all_threads_continued: true }))
    }

    /// The plugin's `[sandbox]`, which the debug host applies to itself before
    /// opening the library; `None` without one, or when `AX_NO_SANDBOX`
    /// (ax-dap's environment, or the launch's `env`) says to run it unconfined,
    /// which the console says. With hot reload the library's folder is
    /// readable too (a rebuild is a new file there), and the console says so.
    fn sandbox(&self, source: &PluginSource, args: &LaunchArgs, library: &Path) -> Option<Sandbox> {
        let (section, mode) = source.sandbox()?;
        let ours = std::env::var(NO_SANDBOX_ENV).ok();
        if waived(ours.as_deref()) || waived(args.env.get(NO_SANDBOX_ENV).map(String::as_str)) {
            self.out.output(
                "stderr",
                format!("WARNING: {}: [sandbox] not enforced under the debugger (AX_NO_SANDBOX)\n", source.name()),
            );
            return None;
        }
        let mut sandbox = Sandbox::from_manifest(&section, mode, Path::new(""));
        if args.hot_reload
            && let Some(folder) = sandbox.allow_rebuilds_of(library)
        {
            self.out.output(
                "console",
                format!(
                    "ax: sandboxed with hot reload: {} is readable too (a rebuild lands there)\n",
                    folder.display()
                ),
            );
        }
        Some(sandbox)
    }

    pub(crate) fn launch(&mut self, args: LaunchArgs) -> Result<()> {
        if self.child.is_some() {
            bail!("already launched");
        }
        if let Some(cwd) = &args.cwd {
            self.base = cwd.clone();
        }
        self.source_map = args.source_map.clone();
        let plugin = if args.plugin.is_absolute() { args.plugin.clone() } else { self.base.join(&args.plugin) };
        let mut calls = args.calls.clone();
        if let Some(file) = &args.calls_file {
            let file = if file.is_absolute() { file.clone() } else { self.base.join(file) };
            let lines = ax_runtime::read_calls_file(&file).with_context(|| "callsFile".to_owned())?;
            calls.extend(lines.into_iter().map(|c| CallArg { method: c.method, input: c.input }));
        }
        let source = PluginSource::resolve(&plugin)?;
        let out = self.out.clone();
        let mut on_output = move |line: &str| out.output("console", format!("{line}\n"));
        let mut build = BuildOptions { build: args.build, release: false, on_output: Some(&mut on_output) };
        let library = source.library(&mut build)?;
        // Probe files are named relative to where cargo ran: look from the
        // crate (or, for a bare library, from the library, usually in its
        // workspace's target/) upwards.
        let near = match &source {
            PluginSource::Manifest { dir, .. } => dir.clone(),
            _ => library.parent().map(Path::to_owned).unwrap_or_default(),
        };
        self.base = std::path::absolute(&near).unwrap_or(near);
        let debounce = match &source {
            PluginSource::Manifest { manifest, .. } => manifest.reload.debounce.0,
            PluginSource::Library(_) => Duration::from_millis(300),
        };
        let sandbox = self.sandbox(&source, &args, &library);
        let rules = sandbox.as_ref().map(serde_json::to_value).transpose().context("the plugin's [sandbox]")?;
        let mut command = std::process::Command::new(ax_binary()?);
        command.envs(&args.env);
        if let Some(cwd) = &args.cwd {
            command.current_dir(cwd);
        }
        if let Some(sandbox) = &sandbox {
            sandbox.prepare_command(&mut command);
        }
        let child = spawn_debug_host(command, self.out.clone(), self.stopped.clone(), self.current_call.clone())?;
        if let (Some(sandbox), Some(pid)) = (&sandbox, child.pid())
            && sandbox.lacks_network_namespace(pid)
        {
            self.out.output(
                "stderr",
                "WARNING: no network namespace of its own for the debug host (user namespaces unavailable); \
                 sockets stay denied by seccomp\n"
                    .to_owned(),
            );
        }
        let load = DebugRequest::Load {
            library: library.clone(),
            name: source.name(),
            config: source.config_json(),
            hot_reload: args.hot_reload,
            budget: source.budget().into(),
            reload_debounce_ms: Some(u64::try_from(debounce.as_millis()).unwrap_or(u64::MAX)),
            history_size: Some(args.history_size),
            sandbox: rules,
        };
        match child.ask(load).map_err(|e| anyhow!(e))? {
            DebugReply::Loaded { methods } => self.methods = methods,
            DebugReply::Failed { message } => {
                child.end();
                bail!(message)
            }
            other => {
                child.end();
                bail!(unexpected(other))
            }
        }
        self.out.event(Event::Process(ProcessEventBody {
            name: source.name(),
            system_process_id: child.pid().map(i64::from),
            is_local_process: Some(true),
            start_method: Some(ProcessEventStartMethod::Launch),
            pointer_size: None,
        }));
        self.calls = calls;
        self.sources = match &source {
            PluginSource::Manifest { dir, manifest, .. }
                if args.hot_reload && args.build && manifest.plugin.library.is_none() =>
            {
                Some(rebuild_on_change(dir, &plugin, debounce, self.out.clone())?)
            }
            _ => None,
        };
        self.launched = Some(args);
        self.child = Some(child);
        self.new_module(module(source.name(), Some(&library), None)).map_err(|e| anyhow!(e))
    }

    pub(crate) fn attach(&mut self, args: AttachArgs) -> Result<()> {
        if self.child.is_some() {
            bail!("already launched");
        }
        let ip: std::net::IpAddr = match args.host.as_str() {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            host => host.parse().map_err(|_| anyhow!("host {host:?}: expected a loopback IP address"))?,
        };
        if !ip.is_loopback() {
            bail!("host {ip}: ax hosts listen on loopback only; expected 127.0.0.1 or ::1");
        }
        let stream = std::net::TcpStream::connect((ip, args.port))
            .with_context(|| format!("cannot connect to the ax host on {ip}:{}", args.port))?;
        let _ = stream.set_nodelay(true);
        let mut hello = serde_json::to_vec(&json!({ "token": args.token }))?;
        hello.push(b'\n');
        (&stream).write_all(&hello)?;
        let reader = stream.try_clone()?;
        let closer = stream.try_clone()?;
        let child = connect(
            None,
            Box::new(stream),
            Box::new(reader),
            Box::new(move || {
                let _ = closer.shutdown(std::net::Shutdown::Both);
            }),
            self.out.clone(),
            self.stopped.clone(),
            self.current_call.clone(),
        );
        let attached = match child.ask(DebugRequest::Hello).map_err(|e| anyhow!("{e} (is the token right?)"))? {
            DebugReply::Attached { name, library, methods } => {
                self.methods = methods;
                if let Some(dir) = library.parent() {
                    self.base = dir.to_owned();
                }
                module(name, Some(&library), None)
            }
            DebugReply::Failed { message } => bail!(message),
            other => bail!(unexpected(other)),
        };
        self.out.event(Event::Process(ProcessEventBody {
            name: "ax".to_owned(),
            is_local_process: Some(true),
            start_method: Some(ProcessEventStartMethod::Attach),
            ..Default::default()
        }));
        self.source_map = args.source_map;
        self.child = Some(child);
        self.new_module(attached).map_err(|e| anyhow!(e))
    }

    /// Ends the plugin's host and launches it again with the same (or the
    /// given) arguments; breakpoints keep their ids and are re-announced.
    pub(crate) fn restart(&mut self, args: RestartArgs) -> Result<(), String> {
        let launch = match args.arguments {
            Some(arguments) => serde_json::from_value::<LaunchArgs>(arguments)
                .map_err(|e| format!("bad arguments to `restart`: {e}"))?,
            None => self.launched.clone().ok_or_else(|| "only a launched session can restart".to_owned())?,
        };
        if let Some(child) = self.child.take() {
            child.end();
        }
        *self.lock_stopped() = Stopped::default();
        self.out.output("console", "ax-dap: restarting\n");
        self.launch(launch).map_err(|e| format!("{e:#}"))?;
        let child = self.child()?.clone();
        for (file, breakpoints) in &self.line_breakpoints {
            let request = DebugRequest::SetBreakpoints { file: file.clone(), breakpoints: breakpoints.clone() };
            self.announce(child.ask(request)?, Some(file));
        }
        let request = DebugRequest::SetFunctionBreakpoints { breakpoints: self.function_breakpoints.clone() };
        self.announce(child.ask(request)?, None);
        let request = DebugRequest::SetDataBreakpoints { breakpoints: self.data_breakpoints.clone() };
        self.announce(child.ask(request)?, None);
        child.ask(DebugRequest::SetExceptionFilters { filters: self.exception_filters.clone() })?;
        if self.configured {
            self.start_calls()?;
        }
        Ok(())
    }

    /// Tells the client what became of breakpoints it set earlier.
    pub(crate) fn announce(&self, reply: DebugReply, path: Option<&str>) {
        if let DebugReply::Breakpoints { breakpoints } = reply {
            for state in &breakpoints {
                let (reason, breakpoint) = (BreakpointEventReason::Changed, breakpoint(state, path));
                self.out.event(Event::Breakpoint(BreakpointEventBody { reason, breakpoint }));
            }
        }
    }

    /// After configurationDone: runs the launch's calls one after another
    /// (then the debuggee has exited, unless `keepRunning`); an attached host
    /// is told to run its own.
    pub(crate) fn start_calls(&mut self) -> Result<(), String> {
        let child = self.child()?.clone();
        let Some(launched) = &self.launched else {
            return child.command(DebugRequest::Start);
        };
        if launched.stop_on_entry {
            child.command(DebugRequest::StopOnEntry)?;
        }
        let keep_running = launched.keep_running;
        let (calls, out, current) = (self.calls.clone(), self.out.clone(), self.current_call.clone());
        std::thread::spawn(move || {
            let mut failed = 0;
            for call in calls {
                *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(call.clone());
                let answer = child.ask(DebugRequest::Call { method: call.method.clone(), input: call.input });
                *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                match answer {
                    Ok(DebugReply::Returned { output }) => out.output("stdout", format!("{output}\n")),
                    Ok(DebugReply::Failed { message }) => {
                        failed += 1;
                        out.output("stderr", format!("error: {message}\n"));
                    }
                    Ok(other) => out.output("stderr", format!("{}\n", unexpected(other))),
                    // The host died: the reader thread reports it and ends the session.
                    Err(_) => return,
                }
            }
            if keep_running {
                let text = "ax-dap: the calls are done; the plugin keeps running (`.call METHOD JSON` in the Debug \
                            Console calls it, disconnect ends it)\n";
                out.output("console", text);
                return;
            }
            child.finish();
            out.ended(i64::from(failed > 0));
        });
        Ok(())
    }
}

/// With hot reload on a crate, `ax dev` style: cargo rebuilds it after its
/// sources change and have been quiet for `debounce` (its output in the Debug
/// Console); the new library is what the debug host's watcher reloads. A
/// failed build says so and the running version keeps serving.
fn rebuild_on_change(dir: &Path, plugin: &Path, debounce: Duration, out: Out) -> Result<SourceWatcher> {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<PathBuf>>();
    let watcher = SourceWatcher::spawn(dir, move |changed| drop(tx.send(changed)))?;
    let plugin = plugin.to_owned();
    std::thread::spawn(move || {
        // Ends when the watcher is dropped (the session ends or restarts).
        while rx.recv().is_ok() {
            loop {
                match rx.recv_timeout(debounce) {
                    Ok(_) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            }
            out.output("console", "ax-dap: sources changed; building\n");
            let console = out.clone();
            let mut on_output = move |line: &str| console.output("console", format!("{line}\n"));
            let mut build = BuildOptions { build: true, release: false, on_output: Some(&mut on_output) };
            if let Err(e) = PluginSource::resolve(&plugin)
                .map_err(anyhow::Error::from)
                .and_then(|s| s.library(&mut build).map_err(anyhow::Error::from))
            {
                out.output("stderr", format!("ax-dap: the build failed; the running version keeps serving: {e:#}\n"));
            }
        }
    });
    Ok(watcher)
}
