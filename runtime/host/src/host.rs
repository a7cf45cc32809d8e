//! [`Host`]: the entry point of the runtime library. It owns the event bus and
//! the directory of library copies, and turns a library path into a running
//! [`Plugin`] instance.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::bridge::Instrumentation;
use crate::budget::Watchdog;
use crate::cache::{CacheConfig, QueryCache};
use crate::error::LoadError;
use crate::events::EventBus;
use crate::loader::{self, Image, LibDir, OpenedLibrary};
use crate::plugin::{InitThread, Plugin, Start};
use crate::source::PluginSource;
use crate::startup::StartupMonitor;

/// How a [`Host`] is set up.
#[derive(Clone, Debug, Default)]
pub struct HostOptions {
    /// What plugins loaded from now on forward (spans, fields, log filter).
    pub instrumentation: Instrumentation,
    /// Where libraries' private paths go, links (for a cargo output on its file
    /// system) and copies (default: [`crate::rundir::lib_root`], with links
    /// also in the per-user runtime directory when on the library's file
    /// system; see `loader`); it must
    /// be private to this user (created 0700 or refused), and a per-process
    /// directory with a random name is made inside.
    pub lib_root: Option<std::path::PathBuf>,
}

/// A library given its private path, not opened yet ([`Host::stage_library`]).
#[derive(Debug)]
pub struct StagedLibrary {
    path: PathBuf,
    private: PathBuf,
}

impl StagedLibrary {
    /// The private path (a link or a copy) the library will be mapped from.
    pub fn private_path(&self) -> &Path {
        &self.private
    }
}

/// Loads plugins and publishes what happens to them.
#[derive(Debug)]
pub struct Host {
    events: Arc<EventBus>,
    libs: LibDir,
    next_instance: AtomicU64,
    instrumentation: RwLock<Instrumentation>,
    watchdog: Arc<Watchdog>,
    /// One query cache per plugin name, kept across reloads.
    caches: Mutex<HashMap<String, Arc<QueryCache>>>,
    init_thread: InitThread,
}

impl Host {
    /// A host with default options.
    pub fn new() -> std::io::Result<Host> {
        Host::with_options(HostOptions::default())
    }

    /// A host with `options`.
    pub fn with_options(options: HostOptions) -> std::io::Result<Host> {
        let libs = match options.lib_root {
            Some(root) => LibDir::new(&root)?,
            None => LibDir::default_dirs()?,
        };
        let events = Arc::new(EventBus::default());
        Ok(Host {
            watchdog: Arc::new(Watchdog::new(events.clone())),
            caches: Mutex::new(HashMap::new()),
            init_thread: InitThread::default(),
            events,
            libs,
            next_instance: AtomicU64::new(1),
            instrumentation: RwLock::new(options.instrumentation),
        })
    }

    /// This host's private directory (library copies, sockets).
    pub fn lib_dir(&self) -> &Path {
        self.libs.dir()
    }

    /// How this host gave the libraries it loaded their private paths (links,
    /// copies), and how much library content it read to compare versions.
    pub fn load_stats(&self) -> crate::loader::LoadStats {
        self.libs.stats()
    }

    /// The event stream of every plugin this host loads.
    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    /// What plugins loaded from now on forward.
    pub fn set_instrumentation(&self, instrumentation: Instrumentation) {
        *self.instrumentation.write().unwrap_or_else(|e| e.into_inner()) = instrumentation;
    }

    /// Loads the library at `path` (copied first, never unmapped), checks its ABI
    /// and creates the instance with `config_json` on a new worker thread.
    pub fn load_library(&self, path: &Path, name: &str, config_json: &str) -> Result<Plugin, LoadError> {
        self.load_library_with(path, name, config_json, None)
    }

    /// [`Host::load_library`], failing with [`LoadError::InitTimeout`] if the
    /// plugin's `init` takes longer than `init_timeout`.
    pub fn load_library_with(
        &self,
        path: &Path,
        name: &str,
        config_json: &str,
        init_timeout: Option<Duration>,
    ) -> Result<Plugin, LoadError> {
        let image = loader::read(path)?;
        self.start(path, &image, name, config_json, init_timeout)
    }

    /// Reads the library at `path` and links or copies it to its private path
    /// (under [`Host::lib_dir`]) without opening it: nothing of the library
    /// runs until [`Host::load_staged`]. A sandbox applied in between needs to
    /// grant only the private path, and the link or copy is not hindered by it
    /// (Landlock refuses a hard link from outside the sandbox).
    pub fn stage_library(&self, path: &Path) -> Result<StagedLibrary, LoadError> {
        let image = loader::read(path)?;
        let private = loader::place(path, &image, &self.libs)?;
        Ok(StagedLibrary { path: path.to_owned(), private })
    }

    /// Opens a library staged by [`Host::stage_library`], checks its ABI and
    /// creates the instance, as [`Host::load_library`] does.
    pub fn load_staged(&self, staged: StagedLibrary, name: &str, config_json: &str) -> Result<Plugin, LoadError> {
        let opened = loader::open_placed(&staged.path, &staged.private)?;
        self.start_opened(&staged.path, opened, name, config_json, None)
    }

    /// Opens an image already read and starts its instance.
    pub(crate) fn start(
        &self,
        path: &Path,
        image: &Image,
        name: &str,
        config_json: &str,
        init_timeout: Option<Duration>,
    ) -> Result<Plugin, LoadError> {
        let opened = self.open(path, image)?;
        self.start_opened(path, opened, name, config_json, init_timeout)
    }

    /// Links or copies and maps an image read from `path`, checking its ABI.
    pub(crate) fn open(&self, path: &Path, image: &Image) -> Result<OpenedLibrary, LoadError> {
        loader::open(path, image, &self.libs)
    }

    /// Whether [`Host::open`] would link `image` (opened from `path`) rather than
    /// copy it (see [`loader::would_link`]).
    pub(crate) fn would_link(&self, path: &Path, image: &Image) -> bool {
        loader::would_link(path, image, &self.libs)
    }

    /// Whether `image` holds the same bytes as `private`, a private path of
    /// this host (counted in [`Host::load_stats`]).
    pub(crate) fn same_contents(&self, image: &Image, private: &Path) -> bool {
        loader::same_contents(image, private, &self.libs)
    }

    /// Creates the instance of an opened library on a new worker thread.
    pub(crate) fn start_opened(
        &self,
        path: &Path,
        opened: OpenedLibrary,
        name: &str,
        config_json: &str,
        init_timeout: Option<Duration>,
    ) -> Result<Plugin, LoadError> {
        Plugin::start(Start {
            name: name.to_owned(),
            library: path,
            opened,
            instance: self.next_instance.fetch_add(1, Ordering::Relaxed),
            events: self.events.clone(),
            instrumentation: self.instrumentation.read().unwrap_or_else(|e| e.into_inner()).clone(),
            config_json,
            init_timeout,
            watchdog: self.watchdog.clone(),
            cache: self.cache(name),
            init_thread: &self.init_thread,
        })
    }

    /// The query cache of the plugin called `name` (created with default limits
    /// if none was configured).
    pub fn cache(&self, name: &str) -> Arc<QueryCache> {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.entry(name.to_owned()).or_insert_with(|| Arc::new(QueryCache::new(CacheConfig::default()))).clone()
    }

    /// Gives the plugin called `name` a query cache with `config` (replacing an
    /// existing one only if its limits differ).
    pub fn configure_cache(&self, name: &str, config: CacheConfig) {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        if caches.get(name).is_none_or(|c| c.config() != config) {
            caches.insert(name.to_owned(), Arc::new(QueryCache::new(config)));
        }
    }

    /// Loads the plugin of `source` from `library` (see [`PluginSource::library`]),
    /// with the source's name, `[config]`, `[budget]` and `[cache]`.
    pub fn load(&self, source: &PluginSource, library: &Path) -> Result<Plugin, LoadError> {
        if let PluginSource::Manifest { manifest, .. } = source {
            self.configure_cache(&manifest.plugin.name, CacheConfig::from_manifest(&manifest.cache));
        }
        let plugin = self.load_library(library, &source.name(), &source.config_json())?;
        plugin.set_budget(source.budget());
        Ok(plugin)
    }

    /// [`Host::load`], each phase timed by `monitor`: read, copy (a link or a copy), dlopen,
    /// resolve (entry symbol and ABI checks), init. The first call is the
    /// caller's to time ([`StartupMonitor::time`]).
    pub fn load_monitored(
        &self,
        source: &PluginSource,
        library: &Path,
        monitor: &mut StartupMonitor,
    ) -> Result<Plugin, LoadError> {
        use ax_profile::Phase;
        monitor.restart();
        let image = loader::read(library)?;
        monitor.mark(Phase::Read);
        let private = loader::place(library, &image, &self.libs)?;
        drop(image);
        monitor.mark(Phase::Copy);
        let mapped = loader::dlopen(library, &private)?;
        monitor.mark(Phase::Dlopen);
        let opened = loader::resolve(library, &private, mapped)?;
        monitor.mark(Phase::Resolve);
        let plugin = self.start_opened(library, opened, &source.name(), &source.config_json(), None)?;
        plugin.set_budget(source.budget());
        monitor.mark(Phase::Init);
        Ok(plugin)
    }
}
