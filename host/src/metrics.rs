//! `GET /metrics`: what a Prometheus scrape sees, in its text format
//! (prometheus-client). Events on the request path are counted as they
//! happen ([`Metrics`]: messages, plugin calls and their time, failures by
//! kind); the rest is read at scrape time from where it already lives
//! ([`Live`]: plugins loaded, folder scans, load errors, guest memory, the
//! state store's errors), so nothing is counted twice.
//!
//! Label values are plugin ids (bounded by the plugins folder) and fixed
//! words: no text from a request or a plugin becomes a label.

use crate::policy::PluginId;
use crate::registry::Registry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric as _, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

// Labels of every call carry the plugin's shared id: counting a call
// allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCall {
    plugin: PluginId,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginFailure {
    plugin: PluginId,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: PluginId,
}

/// What becomes of replies later: rare, labelled with a copy of the id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaterCall {
    plugin: String,
    outcome: &'static str,
}

impl EncodeLabelValue for PluginId {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// How a message ended, for `wasmbot_messages_total{outcome}`.
#[derive(Debug, Clone, Copy)]
pub enum Message {
    /// At least one plugin answered.
    Answered,
    /// No plugin answered: the apology went out.
    Apology,
    /// A retry got the reply remembered for it.
    Replayed,
    /// Refused with 503: too many in flight, or no room for a plugin.
    Shed,
}

impl Message {
    fn label(self) -> &'static str {
        match self {
            Message::Answered => "answered",
            Message::Apology => "apology",
            Message::Replayed => "replayed",
            Message::Shed => "shed",
        }
    }
}

/// Buckets from 0.5 ms to ~16 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The counters of one server.
pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    messages: Family<Outcome, Counter>,
    message_seconds: Histogram,
    calls: Family<PluginCall, Counter>,
    failures: Family<PluginFailure, Counter>,
    call_seconds: Family<PluginLabel, Histogram, fn() -> Histogram>,
    later: Family<LaterCall, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Counters for a server whose plugins are in `plugins`.
    pub fn new(plugins: Arc<Registry>) -> Self {
        let mut registry = prometheus_client::registry::Registry::with_prefix("wasmbot");
        let messages = Family::<Outcome, Counter>::default();
        registry.register(
            "messages",
            "Webhook messages by how they ended (answered, apology, replayed, shed)",
            messages.clone(),
        );
        let message_seconds = seconds();
        registry.register(
            "message_duration_seconds",
            "Time from a message's body to its reply, plugins included",
            message_seconds.clone(),
        );
        let calls = Family::<PluginCall, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls by outcome (reply, silent, failed)",
            calls.clone(),
        );
        let failures = Family::<PluginFailure, Counter>::default();
        registry.register(
            "plugin_failures",
            "Failed plugin calls by kind (timeout, trap, failed, memory, capacity, instantiate)",
            failures.clone(),
        );
        let call_seconds =
            Family::<PluginLabel, Histogram, fn() -> Histogram>::new_with_constructor(seconds);
        registry.register(
            "plugin_call_duration_seconds",
            "Time of one plugin call: instantiate, handle, drop",
            call_seconds.clone(),
        );
        let later = Family::<LaterCall, Counter>::default();
        registry.register(
            "replies_later",
            "Replies deferred by plugins, by what became of them (deferred; then sent, \
             not_sent, silent or dropped)",
            later.clone(),
        );
        registry.register_collector(Box::new(Live { plugins }));
        Metrics {
            registry,
            messages,
            message_seconds,
            calls,
            failures,
            call_seconds,
            later,
        }
    }

    pub fn message(&self, how: Message, took: Option<Duration>) {
        self.messages
            .get_or_create(&Outcome {
                outcome: how.label(),
            })
            .inc();
        if let Some(took) = took {
            self.message_seconds.observe(took.as_secs_f64());
        }
    }

    /// One plugin call: `Ok(true)` answered, `Ok(false)` stayed silent,
    /// `Err(kind)` failed.
    pub fn call(&self, plugin: &PluginId, outcome: Result<bool, &'static str>, took: Duration) {
        let label = match outcome {
            Ok(true) => "reply",
            Ok(false) => "silent",
            Err(_) => "failed",
        };
        self.calls
            .get_or_create(&PluginCall {
                plugin: plugin.clone(),
                outcome: label,
            })
            .inc();
        if let Err(kind) = outcome {
            self.failures
                .get_or_create(&PluginFailure {
                    plugin: plugin.clone(),
                    kind,
                })
                .inc();
        }
        self.call_seconds
            .get_or_create(&PluginLabel {
                plugin: plugin.clone(),
            })
            .observe(took.as_secs_f64());
    }

    /// A reply later of `plugin`: `deferred` when it defers, then one of
    /// `sent` (every message), `not_sent` (Twilio did not take one),
    /// `silent` (nothing to send) or `dropped` (the message was refused,
    /// so Twilio retries it).
    pub fn later(&self, plugin: &str, outcome: &'static str) {
        self.later
            .get_or_create(&LaterCall {
                plugin: plugin.to_owned(),
                outcome,
            })
            .inc();
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// What is read at scrape time.
struct Live {
    plugins: Arc<Registry>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.plugins.snapshot();
        let runtime = self.plugins.runtime();
        let memory = runtime.memory_stats();
        let gauges: [(&str, &str, i64); 4] = [
            (
                "plugins_loaded",
                "Plugins loaded and serving",
                snapshot.plugins.len() as i64,
            ),
            (
                "plugin_load_errors",
                "Plugin files whose latest content failed to load",
                snapshot.errors.len() as i64,
            ),
            (
                "guest_memory_in_use_bytes",
                "Linear memory all plugin instances hold now",
                memory.in_use as i64,
            ),
            (
                "guest_memory_budget_bytes",
                "Linear memory all plugin instances may hold together",
                memory.budget as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let scans = ConstCounter::new(self.plugins.scans());
        scans.encode(encoder.encode_descriptor(
            "plugin_folder_scans",
            "Scans of the plugins folder (start, changes, reload requests)",
            None,
            scans.metric_type(),
        )?)?;
        if let Some(store) = runtime.state() {
            let errors = ConstCounter::new(store.unavailable_count());
            errors.encode(encoder.encode_descriptor(
                "state_store_errors",
                "State operations that found the store unreachable or too slow",
                None,
                errors.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
