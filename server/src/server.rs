//! The LSP edge: `tower-lsp-server`'s `LanguageServer` over the session state,
//! and the event loop that turns file-system changes into refreshed editors.
//!
//! Every handler reads or writes the session under one mutex and never holds
//! it across an `.await`; the pure computations of `analysis` and `manifest`
//! run inside `guarded`, so a bug in one is an error response, not a dead
//! server. Requests to the client (`workspace/inlayHint/refresh`,
//! `workspace/codeLens/refresh`) are only sent from spawned tasks, never
//! awaited inside a request handler.
//!
//! Live updates: a `notify` watcher per plugin crate (the crate dir and `.ax/`
//! non-recursively, `src/` recursively — never `target/`) feeds `Event`s into
//! one loop, which waits for [`DEBOUNCE`] of quiet, re-reads what changed,
//! republishes diagnostics and asks the client to refresh hints and lenses.
//!
//! One command runs here, `ax-lsp.acceptBaseline` (the "accept as new
//! baseline" code action): it copies the crate's profile to its baseline,
//! re-reads it and republishes at once, without waiting for the watcher.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ax_manifest::MANIFEST_FILE;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::Value;
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::plugin::{PluginCrate, ProfileState, crate_dir_of, find_crates};
use crate::scan::{Outline, scan};
use crate::settings::Settings;
use crate::{analysis, manifest};

/// Quiet time after the last file-system event before re-reading: profiles are
/// written by rename (one event), builds and editors write in bursts.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Everything that can wake the event loop.
#[derive(Debug)]
pub enum Event {
    /// A watched file or directory changed.
    Fs(PathBuf),
}

struct Doc {
    uri: Uri,
    text: String,
    outline: Outline,
}

#[derive(Default)]
struct Session {
    settings: Settings,
    settings_warnings: Vec<String>,
    roots: Vec<PathBuf>,
    docs: HashMap<PathBuf, Doc>,
    crates: HashMap<PathBuf, PluginCrate>,
    /// Per crate, the files that currently have diagnostics from us.
    published: HashMap<PathBuf, HashSet<PathBuf>>,
    /// Per crate, the last unreadable-profile message shown, so it is shown once.
    shown_broken: HashMap<PathBuf, String>,
    refresh_hints: bool,
    refresh_lenses: bool,
}

/// What both the request handlers and the event loop work with; cheap to clone.
#[derive(Clone)]
struct Shared {
    client: Client,
    session: Arc<Mutex<Session>>,
    events: mpsc::UnboundedSender<Event>,
    watcher: Arc<Mutex<Option<RecommendedWatcher>>>,
}

/// The `LanguageServer`: the shared state, and the event loop's receiver until
/// `initialized` starts the loop.
pub struct Backend {
    shared: Shared,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, turning a panic into an internal-error response.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let mut e = Error::internal_error();
        e.message = format!("ax-lsp: internal error in {what}: {msg}").into();
        e
    })
}

fn path_of(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|p| p.into_owned())
}

fn is_manifest(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == MANIFEST_FILE)
}

/// Diagnostics to send: (file, uri, diagnostics).
type Batch = Vec<(PathBuf, Uri, Vec<Diagnostic>)>;

impl Backend {
    pub fn new(client: Client) -> Backend {
        let (events, rx) = mpsc::unbounded_channel();
        Backend {
            shared: Shared { client, session: Arc::default(), events, watcher: Arc::new(Mutex::new(None)) },
            events_rx: Mutex::new(Some(rx)),
        }
    }
}

impl Shared {
    /// The crate dir of `path`, read (and watched) on first sight.
    fn ensure_crate(&self, session: &mut Session, path: &Path) -> Option<PathBuf> {
        let dir = if path.join(MANIFEST_FILE).is_file() { path.to_owned() } else { crate_dir_of(path)? };
        if !session.crates.contains_key(&dir) {
            let mut c = PluginCrate::read(&dir);
            if let Some(doc) = session.docs.get(&c.manifest_path) {
                c.reload_manifest(Some(&doc.text));
            }
            session.crates.insert(dir.clone(), c);
            watch_crate(&self.watcher, &self.events, &dir);
        }
        Some(dir)
    }

    async fn send(&self, batch: Batch) {
        for (_, uri, diags) in batch {
            self.client.publish_diagnostics(uri, diags, None).await;
        }
    }

    async fn publish_crates(&self, dirs: Vec<PathBuf>) {
        let (batch, notices) = {
            let mut s = lock(&self.session);
            let mut batch = Batch::new();
            let mut notices = Vec::new();
            for dir in dirs {
                batch.extend(crate_diagnostics(&mut s, &dir));
                let broken = match s.crates.get(&dir).map(|c| &c.profile) {
                    Some(ProfileState::Broken(m)) => Some(m.clone()),
                    _ => None,
                };
                match broken {
                    Some(m) if s.shown_broken.get(&dir) != Some(&m) => {
                        s.shown_broken.insert(dir.clone(), m.clone());
                        notices.push(m);
                    }
                    Some(_) => {}
                    None => {
                        s.shown_broken.remove(&dir);
                    }
                }
            }
            (batch, notices)
        };
        for m in notices {
            self.client.show_message(MessageType::WARNING, format!("ax: {m}")).await;
        }
        self.send(batch).await;
    }

    fn refresh(&self) {
        let (hints, lenses) = {
            let s = lock(&self.session);
            (s.refresh_hints, s.refresh_lenses)
        };
        spawn_refresh(self.client.clone(), hints, lenses);
    }

    fn with_doc<T>(&self, uri: &Uri, f: impl FnOnce(&Session, &PluginCrate, &Path, &Doc) -> T) -> Option<T> {
        let path = path_of(uri)?;
        let s = lock(&self.session);
        let doc = s.docs.get(&path)?;
        let dir = crate_dir_of(&path)?;
        let c = s.crates.get(&dir)?;
        Some(f(&s, c, &path, doc))
    }
}

fn spawn_refresh(client: Client, hints: bool, lenses: bool) {
    tokio::spawn(async move {
        if hints {
            let _ = client.inlay_hint_refresh().await;
        }
        if lenses {
            let _ = client.code_lens_refresh().await;
        }
    });
}

fn watch_crate(watcher: &Mutex<Option<RecommendedWatcher>>, events: &mpsc::UnboundedSender<Event>, dir: &Path) {
    let mut w = lock(watcher);
    if w.is_none() {
        let tx = events.clone();
        *w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Only changes: opening or reading a file is an event too (inotify's
            // IN_OPEN), and the server reads the files it watches.
            if let Ok(ev) = res
                && !matches!(ev.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write))
            {
                for p in ev.paths {
                    let _ = tx.send(Event::Fs(p));
                }
            }
        })
        .ok();
    }
    let Some(w) = w.as_mut() else { return };
    let _ = w.watch(dir, RecursiveMode::NonRecursive);
    let ax = dir.join(".ax");
    if ax.is_dir() {
        let _ = w.watch(&ax, RecursiveMode::NonRecursive);
    }
    let src = dir.join("src");
    if src.is_dir() {
        let _ = w.watch(&src, RecursiveMode::Recursive);
    }
}

/// Diagnostics of every file of the crate at `dir` we have something to say
/// about (its manifest, the files of its profile's callsites, its open files),
/// and empty lists for the files that no longer get any.
fn crate_diagnostics(s: &mut Session, dir: &Path) -> Batch {
    let Some(c) = s.crates.get(dir) else { return Batch::new() };
    let mut files: HashSet<PathBuf> = s.published.get(dir).cloned().unwrap_or_default();
    files.insert(c.manifest_path.clone());
    if let Some(lp) = c.loaded() {
        files.extend(lp.files.values().cloned());
    }
    files.extend(s.docs.keys().filter(|p| p.starts_with(dir) && p.extension().is_some_and(|e| e == "rs")).cloned());
    let mut batch = Batch::new();
    let mut now = HashSet::new();
    for file in files {
        let diags = guarded("diagnostics", || {
            if file == c.manifest_path {
                manifest::diagnostics(c)
            } else {
                let disk;
                let text = match s.docs.get(&file) {
                    Some(d) => d.text.as_str(),
                    None => {
                        disk = std::fs::read_to_string(&file).unwrap_or_default();
                        disk.as_str()
                    }
                };
                analysis::rust_diagnostics(c, &file, text, &s.settings)
            }
        })
        .unwrap_or_default();
        let uri = match s.docs.get(&file) {
            Some(d) => d.uri.clone(),
            None => match Uri::from_file_path(&file) {
                Some(u) => u,
                None => continue,
            },
        };
        if !diags.is_empty() {
            now.insert(file.clone());
        }
        batch.push((file, uri, diags));
    }
    s.published.insert(dir.to_owned(), now);
    batch
}

impl Backend {
    /// The event loop: debounce file-system events, re-read, republish, refresh.
    fn spawn_event_loop(&self) {
        let Some(mut rx) = lock(&self.events_rx).take() else { return };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut changed = vec![first];
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(e)) => changed.push(e),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let dirs = apply_changes(&shared.session, &shared.watcher, &shared.events, changed);
                if dirs.is_empty() {
                    continue;
                }
                shared.publish_crates(dirs).await;
                shared.refresh();
            }
        });
    }
}

/// Re-reads what the events touched; returns the crates to republish.
fn apply_changes(
    session: &Mutex<Session>,
    watcher: &Mutex<Option<RecommendedWatcher>>,
    events: &mpsc::UnboundedSender<Event>,
    changed: Vec<Event>,
) -> Vec<PathBuf> {
    let mut s = lock(session);
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut profiles = HashSet::new();
    let mut manifests = HashSet::new();
    for Event::Fs(path) in changed {
        let Some(dir) = s.crates.keys().filter(|d| path.starts_with(d)).max_by_key(|d| d.as_os_str().len()).cloned()
        else {
            continue;
        };
        let ax = dir.join(".ax");
        if path == ax {
            watch_crate(watcher, events, &dir);
        }
        if path.starts_with(&ax) {
            profiles.insert(dir.clone());
        } else if is_manifest(&path) {
            manifests.insert(dir.clone());
        } else if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in &profiles {
        if let Some(c) = s.crates.get_mut(dir) {
            c.reload_profile();
        }
    }
    for dir in &manifests {
        let open = s.crates.get(dir).and_then(|c| s.docs.get(&c.manifest_path)).map(|d| d.text.clone());
        if let Some(c) = s.crates.get_mut(dir) {
            c.reload_manifest(open.as_deref());
        }
    }
    dirs
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let mut s = lock(&self.shared.session);
        let mut warnings = Vec::new();
        s.settings = Settings::from_json(params.initialization_options.as_ref().unwrap_or(&Value::Null), &mut warnings);
        s.settings_warnings = warnings;
        let ws = params.capabilities.workspace.as_ref();
        s.refresh_hints = ws.and_then(|w| w.inlay_hint.as_ref()).and_then(|c| c.refresh_support).unwrap_or(false);
        s.refresh_lenses = ws.and_then(|w| w.code_lens.as_ref()).and_then(|c| c.refresh_support).unwrap_or(false);
        #[allow(deprecated)]
        let root_uri = params.root_uri.clone();
        s.roots = params
            .workspace_folders
            .unwrap_or_default()
            .iter()
            .filter_map(|f| path_of(&f.uri))
            .chain(root_uri.as_ref().and_then(path_of))
            .collect();
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                inlay_hint_provider: Some(OneOf::Left(true)),
                code_lens_provider: Some(CodeLensOptions { resolve_provider: Some(false) }),
                code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                    code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                    ..Default::default()
                })),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec!["[".to_owned()]),
                    ..Default::default()
                }),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: vec![analysis::ACCEPT_BASELINE.to_owned()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            server_info: Some(ServerInfo {
                name: "ax-lsp".to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let (warnings, roots) = {
            let mut s = lock(&self.shared.session);
            (std::mem::take(&mut s.settings_warnings), s.roots.clone())
        };
        for w in warnings {
            self.shared.client.log_message(MessageType::WARNING, w).await;
        }
        self.spawn_event_loop();
        let dirs = {
            let mut s = lock(&self.shared.session);
            let mut found = Vec::new();
            for root in &roots {
                find_crates(root, 4, &mut found);
            }
            found.sort();
            found.dedup();
            found.into_iter().filter_map(|d| self.shared.ensure_crate(&mut s, &d)).collect::<Vec<_>>()
        };
        self.shared.publish_crates(dirs).await;
    }

    async fn shutdown(&self) -> Result<()> {
        lock(&self.shared.watcher).take();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        let Some(path) = path_of(&doc.uri) else { return };
        let dir = {
            let mut s = lock(&self.shared.session);
            let outline = scan(&doc.text);
            s.docs.insert(path.clone(), Doc { uri: doc.uri, text: doc.text.clone(), outline });
            let dir = self.shared.ensure_crate(&mut s, &path);
            if is_manifest(&path)
                && let Some(c) = dir.as_ref().and_then(|d| s.crates.get_mut(d))
            {
                c.reload_manifest(Some(&doc.text));
            }
            dir
        };
        if let Some(dir) = dir {
            self.shared.publish_crates(vec![dir]).await;
        }
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else { return };
        let Some(change) = params.content_changes.into_iter().last() else { return };
        let dir = {
            let mut s = lock(&self.shared.session);
            let outline = scan(&change.text);
            let Some(doc) = s.docs.get_mut(&path) else { return };
            doc.text = change.text;
            doc.outline = outline;
            let dir = crate_dir_of(&path);
            if is_manifest(&path) {
                let text = s.docs.get(&path).map(|d| d.text.clone());
                if let Some(c) = dir.as_ref().and_then(|d| s.crates.get_mut(d)) {
                    c.reload_manifest(text.as_deref());
                }
            }
            dir
        };
        if let Some(dir) = dir {
            self.shared.publish_crates(vec![dir]).await;
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else { return };
        let dir = {
            let mut s = lock(&self.shared.session);
            s.docs.remove(&path);
            let dir = crate_dir_of(&path);
            if is_manifest(&path)
                && let Some(c) = dir.as_ref().and_then(|d| s.crates.get_mut(d))
            {
                c.reload_manifest(None);
            }
            dir
        };
        if let Some(dir) = dir {
            self.shared.publish_crates(vec![dir]).await;
        }
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let mut warnings = Vec::new();
        let value = params.settings.get("settings").unwrap_or(&params.settings);
        let value = value.get("ax").unwrap_or(&Value::Null);
        let settings = Settings::from_json(value, &mut warnings);
        let dirs: Vec<PathBuf> = {
            let mut s = lock(&self.shared.session);
            s.settings = settings;
            s.crates.keys().cloned().collect()
        };
        for w in warnings {
            self.shared.client.log_message(MessageType::WARNING, w).await;
        }
        self.shared.publish_crates(dirs).await;
        self.shared.refresh();
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        let range = params.range;
        let hints = self.shared.with_doc(&params.text_document.uri, |s, c, path, doc| {
            guarded("inlay hints", || analysis::inlay_hints(c, path, &doc.text, &doc.outline, &s.settings))
        });
        match hints {
            Some(Ok(h)) => Ok(Some(
                h.into_iter()
                    .filter(|h| range.start.line <= h.position.line && h.position.line <= range.end.line)
                    .collect(),
            )),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let pos = params.text_document_position_params.position;
        let uri = params.text_document_position_params.text_document.uri;
        let hover = self.shared.with_doc(&uri, |_, c, path, doc| {
            guarded("hover", || {
                if is_manifest(path) {
                    manifest::hover(&doc.text, pos).map(|(md, r)| (md, Some(r)))
                } else {
                    analysis::hover(c, path, &doc.text, pos.line).map(|md| (md, None))
                }
            })
        });
        match hover {
            Some(Ok(Some((md, range)))) => {
                Ok(Some(Hover { contents: HoverContents::Markup(analysis::markdown(md)), range }))
            }
            Some(Err(e)) => Err(e),
            _ => Ok(None),
        }
    }

    async fn code_lens(&self, params: CodeLensParams) -> Result<Option<Vec<CodeLens>>> {
        let lenses = self.shared.with_doc(&params.text_document.uri, |s, c, path, doc| {
            guarded("code lens", || {
                if is_manifest(path) {
                    manifest::lenses(c)
                } else {
                    analysis::rust_lenses(c, path, &doc.text, &s.settings)
                }
            })
        });
        match lenses {
            Some(Ok(l)) => Ok(Some(l)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let range = params.range;
        let diags = params.context.diagnostics;
        let actions = self.shared.with_doc(&params.text_document.uri, |_, c, path, doc| {
            guarded("code action", || {
                if is_manifest(path) {
                    manifest::actions(c, range, &diags).into_iter().map(CodeActionOrCommand::CodeAction).collect()
                } else {
                    analysis::rust_actions(c, path, &doc.text, range)
                }
            })
        });
        match actions {
            Some(Ok(a)) => Ok(Some(a)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        if params.command != analysis::ACCEPT_BASELINE {
            return Err(Error::invalid_params(format!(
                "unknown command {:?}; ax-lsp runs only {:?}",
                params.command,
                analysis::ACCEPT_BASELINE
            )));
        }
        let Some(dir) = params.arguments.first().and_then(Value::as_str).map(PathBuf::from) else {
            return Err(Error::invalid_params(format!(
                "{}: expected one argument, the plugin crate directory (a string)",
                analysis::ACCEPT_BASELINE
            )));
        };
        let saved = {
            let mut s = lock(&self.shared.session);
            let Some(c) = s.crates.get_mut(&dir) else {
                return Err(Error::invalid_params(format!(
                    "{}: not a plugin crate of this workspace; expected a directory with ax-plugin.toml",
                    dir.display()
                )));
            };
            let saved = ax_profile::save_baseline(&c.profile_path, &c.baseline_path).map(|_| c.baseline_path.clone());
            if saved.is_ok() {
                c.reload_profile();
            }
            saved
        };
        match saved {
            Ok(path) => {
                self.shared.publish_crates(vec![dir]).await;
                self.shared.refresh();
                Ok(Some(Value::String(path.display().to_string())))
            }
            Err(e) => Err(Error { code: ErrorCode::ServerError(-32803), message: e.to_string().into(), data: None }),
        }
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let pos = params.text_document_position.position;
        let uri = params.text_document_position.text_document.uri;
        let Some(path) = path_of(&uri) else { return Ok(None) };
        if !is_manifest(&path) {
            return Ok(None);
        }
        let items = {
            let s = lock(&self.shared.session);
            let Some(doc) = s.docs.get(&path) else { return Ok(None) };
            guarded("completion", || manifest::completion(&doc.text, pos))?
        };
        Ok(Some(CompletionResponse::Array(items)))
    }
}
