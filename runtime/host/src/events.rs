//! The runtime's typed event stream.
//!
//! Everything that happens to a plugin — loaded, a call started or finished, a
//! panic, a log line — is an [`Event`] published on the host's [`EventBus`].
//! Subscribers are called synchronously, in order, on the thread where the event
//! happened (a log line on the plugin's worker thread, before the call returns),
//! so a consumer sees log lines and call results in the order they occurred.
//! [`EventBus::channel`] turns the stream into a queue for consumers that run
//! elsewhere. Publishing with no subscriber costs one atomic load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::budget::{Usage, Violation};
use crate::error::{CallError, SourceLocation};
use crate::reload::{ReloadReport, ReloadStep};

/// Identifies one loaded plugin instance within a host.
pub type InstanceId = u64;

/// Something that happened in the runtime.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A plugin library was loaded and its instance initialised.
    PluginLoaded {
        instance: InstanceId,
        name: String,
        library: PathBuf,
        sdk_version: String,
        probe_sites: usize,
        /// Set when the plugin was built by another compiler than the host. Not an
        /// error (only C types cross the boundary), but worth knowing.
        compiler_differs: Option<String>,
        duration: Duration,
    },
    /// A call was handed to the plugin.
    CallStarted { instance: InstanceId, call: u64, method: String },
    /// A call returned (or failed).
    CallFinished {
        instance: InstanceId,
        call: u64,
        method: String,
        duration: Duration,
        usage: Usage,
        error: Option<CallError>,
    },
    /// A running call crossed a limit of its budget; it is being stopped.
    BudgetViolation { instance: InstanceId, plugin: String, method: String, violation: Violation },
    /// Plugin code panicked; the panic was caught at the boundary.
    Panic { instance: InstanceId, method: Option<String>, message: String, location: Option<SourceLocation> },
    /// A `tracing` event from the plugin that passed the host's log filter.
    Log(LogLine),
    /// A reload to a new build began; `instance` keeps serving until it succeeds.
    ReloadStarted { instance: InstanceId, library: PathBuf, generation: u64 },
    /// A new build serves; `previous` was shut down.
    ReloadSucceeded { previous: InstanceId, instance: InstanceId, report: ReloadReport },
    /// A reload failed at `step` and was rolled back: `instance` (generation
    /// `generation`) keeps serving.
    ReloadRolledBack { instance: InstanceId, generation: u64, step: ReloadStep, error: String },
    /// Loading a lazy plugin failed (published once per attempt).
    LoadFailed { name: String, attempt: u64, error: String },
    /// The plugin instance was shut down.
    PluginStopped { instance: InstanceId, name: String },
}

/// Level of a [`LogLine`], most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// The level of an `ax_abi::level` code (anything unknown is `Trace`).
    pub fn from_abi(code: u8) -> Level {
        match code {
            ax_abi::level::ERROR => Level::Error,
            ax_abi::level::WARN => Level::Warn,
            ax_abi::level::INFO => Level::Info,
            ax_abi::level::DEBUG => Level::Debug,
            _ => Level::Trace,
        }
    }

    /// `ERROR`, `WARN`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    pub(crate) fn to_tracing(self) -> tracing::Level {
        match self {
            Level::Error => tracing::Level::ERROR,
            Level::Warn => tracing::Level::WARN,
            Level::Info => tracing::Level::INFO,
            Level::Debug => tracing::Level::DEBUG,
            Level::Trace => tracing::Level::TRACE,
        }
    }
}

/// A log line emitted by plugin code.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub instance: InstanceId,
    pub level: Level,
    pub target: String,
    pub message: String,
    /// The event's other fields, in the order written.
    pub fields: Vec<(String, Value)>,
    pub location: Option<SourceLocation>,
}

impl std::fmt::Display for LogLine {
    /// `DEBUG word_count: counted words=3 total=3`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>5} {}: {}", self.level.as_str(), self.target, self.message)?;
        for (name, value) in &self.fields {
            match value {
                Value::String(s) => write!(f, " {name}={s}")?,
                other => write!(f, " {name}={other}")?,
            }
        }
        Ok(())
    }
}

type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;

/// Fan-out of [`Event`]s to subscribers.
#[derive(Default)]
pub struct EventBus {
    count: AtomicUsize,
    next_id: AtomicU64,
    subscribers: RwLock<Vec<(u64, Subscriber)>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("subscribers", &self.count.load(Ordering::Relaxed)).finish()
    }
}

/// Returned by [`EventBus::subscribe`]; pass to [`EventBus::unsubscribe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionId(u64);

impl EventBus {
    /// Calls `f` for every event from now on, on the thread where it happens.
    /// `f` must not block for long: it runs inside plugin calls.
    pub fn subscribe(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> SubscriptionId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        subs.push((id, Arc::new(f)));
        self.count.store(subs.len(), Ordering::Release);
        SubscriptionId(id)
    }

    /// Stops calling a subscriber.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|(i, _)| *i != id.0);
        self.count.store(subs.len(), Ordering::Release);
    }

    /// A queue receiving every event from now on. Dropping the receiver ends the
    /// subscription at the next event.
    pub fn channel(self: &Arc<Self>) -> Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        let bus = Arc::downgrade(self);
        let id = Arc::new(AtomicU64::new(u64::MAX));
        let id_in = id.clone();
        let sub = self.subscribe(move |event| {
            if tx.send(event.clone()).is_err()
                && let Some(bus) = bus.upgrade()
            {
                bus.unsubscribe(SubscriptionId(id_in.load(Ordering::Relaxed)));
            }
        });
        id.store(sub.0, Ordering::Relaxed);
        rx
    }

    /// Whether anyone listens; lets producers skip building events.
    pub fn has_subscribers(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Delivers `event` to every subscriber.
    pub fn publish(&self, event: Event) {
        if !self.has_subscribers() {
            return;
        }
        // Clone the list so a subscriber may (un)subscribe without deadlock.
        let subs: Vec<Subscriber> =
            self.subscribers.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, s)| s.clone()).collect();
        for sub in subs {
            sub(&event);
        }
    }

    /// Like [`EventBus::publish`], but builds the event only if someone listens.
    pub fn publish_with(&self, make: impl FnOnce() -> Event) {
        if self.has_subscribers() {
            self.publish(make());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(n: u64) -> Event {
        Event::PluginStopped { instance: n, name: "x".into() }
    }

    #[test]
    fn subscribers_see_events_in_order_and_can_leave() {
        let bus = Arc::new(EventBus::default());
        assert!(!bus.has_subscribers());
        let seen = Arc::new(RwLock::new(Vec::new()));
        let seen2 = seen.clone();
        let id = bus.subscribe(move |e| {
            if let Event::PluginStopped { instance, .. } = e {
                seen2.write().unwrap().push(*instance);
            }
        });
        bus.publish(stopped(1));
        bus.publish(stopped(2));
        bus.unsubscribe(id);
        bus.publish(stopped(3));
        assert_eq!(*seen.read().unwrap(), vec![1, 2]);
        assert!(!bus.has_subscribers());
    }

    #[test]
    fn channel_unsubscribes_when_dropped() {
        let bus = Arc::new(EventBus::default());
        let rx = bus.channel();
        bus.publish(stopped(7));
        assert!(matches!(rx.recv().unwrap(), Event::PluginStopped { instance: 7, .. }));
        drop(rx);
        bus.publish(stopped(8));
        assert!(!bus.has_subscribers());
    }

    #[test]
    fn log_line_formats_like_a_log() {
        let line = LogLine {
            instance: 1,
            level: Level::Debug,
            target: "word_count".into(),
            message: "counted".into(),
            fields: vec![("words".into(), Value::from(3)), ("who".into(), Value::from("me"))],
            location: None,
        };
        assert_eq!(line.to_string(), "DEBUG word_count: counted words=3 who=me");
    }
}
