//! Handlers about the debuggee's code: modules (the plugin's library) and
//! loadedSources (its probes' and spans' files), and how a file the compiler
//! named maps to a path on this machine.

use std::path::PathBuf;

use ax_runtime::debug_host::{DebugReply, DebugRequest};
use dap::events::{Event, LoadedSourceEventBody, ModuleEventBody};
use dap::responses::{LoadedSourcesResponse, ModulesResponse};
use dap::types::{LoadedSourceEventReason, Module, ModuleEventReason, Source};
use serde_json::Value;

use crate::protocol::body;
use crate::session::{Session, resolve_source, unexpected};

impl Session {
    /// `modules`: the plugin's library.
    pub(crate) fn modules(&mut self) -> Result<Value, String> {
        let modules: Vec<Module> = self.module.iter().cloned().collect();
        let total_modules = Some(modules.len() as i64);
        Ok(body(ModulesResponse { modules, total_modules }))
    }

    /// `loadedSources`: the plugin's source files known so far.
    pub(crate) fn loaded_sources(&mut self) -> Result<Value, String> {
        Ok(body(LoadedSourcesResponse { sources: self.sources()? }))
    }

    /// Announces the plugin's library as the session's module, and its
    /// source files known at load (its probes') as loaded sources.
    pub(crate) fn new_module(&mut self, module: Module) -> Result<(), String> {
        self.out.event(Event::Module(ModuleEventBody { reason: ModuleEventReason::New, module: module.clone() }));
        self.module = Some(module);
        for source in self.sources()? {
            self.out.event(Event::LoadedSource(LoadedSourceEventBody { reason: LoadedSourceEventReason::New, source }));
        }
        Ok(())
    }

    /// The plugin's source files known so far, as paths on this machine.
    pub(crate) fn sources(&self) -> Result<Vec<Source>, String> {
        match self.child()?.ask(DebugRequest::SourceFiles)? {
            DebugReply::Files { files } => Ok(files
                .iter()
                .filter_map(|file| self.local_path(file))
                .map(|path| Source {
                    name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    path: Some(path.display().to_string()),
                    ..Default::default()
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// A file as the compiler named it, as a path on this machine: the
    /// source map applied (longest prefix first), then resolved against the
    /// plugin's directory and its ancestors. `None` for no file.
    pub(crate) fn local_path(&self, file: &str) -> Option<PathBuf> {
        if file.is_empty() {
            return None;
        }
        let mapped = self
            .source_map
            .iter()
            .filter(|(from, _)| file.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len())
            .map(|(from, to)| format!("{to}{}", &file[from.len()..]));
        Some(resolve_source(&self.base, mapped.as_deref().unwrap_or(file)))
    }
}
