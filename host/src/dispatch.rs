//! Dispatch: hands one message to every loaded plugin whose triggers it
//! matches (see [`crate::trigger`]; the others are not instantiated at
//! all), at once, each in its own task with the same deadline (even a
//! single one: another worker runs it while this one serves connections,
//! measured faster than running it inline), collects the answers in plugin
//! order and merges them. A plugin that fails, traps or runs out of time
//! is logged with its id and left out; the others still answer. When the
//! host has no room for a plugin (memory budget, instance pool) the
//! message is not answered with plugins silently missing: the calls still
//! running are stopped and the message is refused as [`AtCapacity`].

use crate::error::PluginError;
use crate::merge;
use crate::message::{Inbound, Outgoing, Reply};
use crate::registry::Registry;
use crate::trigger;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What happened to one message.
#[derive(Debug)]
pub struct Answer {
    pub messages: Vec<Outgoing>,
    /// Plugins (ids) that answered, in merge order.
    pub answered: Vec<String>,
    /// Plugins (ids) that failed, with the reason.
    pub failed: Vec<(String, PluginError)>,
}

/// What one plugin's call gave, and how long it took.
type Outcome = (Result<Option<Reply>, PluginError>, Duration);

/// The host had no room to run every plugin for this message; it must be
/// refused (503) so that Twilio retries it, never answered in part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AtCapacity(pub String);

pub struct Dispatcher {
    registry: Arc<Registry>,
    /// What `/metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Time every plugin gets for one message, HTTP calls included.
    pub plugin_timeout: Duration,
    /// Sent when no plugin answered.
    pub apology: String,
    pub limits: merge::Limits,
    /// Failures in a row after which a plugin is disabled until the next
    /// rescan or a new version of its file; 0: never.
    pub disable_after: u64,
}

impl Dispatcher {
    pub fn new(registry: Arc<Registry>, plugin_timeout: Duration, apology: String) -> Self {
        Dispatcher {
            metrics: Arc::new(crate::metrics::Metrics::new(registry.clone())),
            registry,
            plugin_timeout,
            apology,
            limits: merge::Limits::default(),
            disable_after: 0,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub async fn dispatch(&self, msg: Inbound) -> Result<Answer, AtCapacity> {
        let snapshot = self.registry.snapshot();
        let seen = trigger::Seen::new(&msg);
        let called: Vec<bool> = snapshot
            .plugins
            .iter()
            .map(|loaded| !loaded.stats.is_disabled() && loaded.plugin.wants(&seen))
            .collect();
        drop(seen);
        let msg = Arc::new(msg);
        let deadline = Instant::now() + self.plugin_timeout;

        let mut tasks = tokio::task::JoinSet::new();
        for (index, loaded) in snapshot.plugins.iter().enumerate() {
            if !called[index] {
                continue;
            }
            let (loaded, msg) = (loaded.clone(), msg.clone());
            tasks.spawn(async move {
                let started = Instant::now();
                let result = loaded.plugin.handle(&msg, deadline).await;
                (index, result, started.elapsed())
            });
        }
        let mut results: Vec<Option<Outcome>> = vec![None; snapshot.plugins.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, Err(PluginError::Capacity(why)), took)) => {
                    let id = &snapshot.plugins[index].id;
                    self.metrics.call(id.as_str(), Err("capacity"), took);
                    // Stop the others at once, and wait until they are
                    // gone: their memory is back before the refusal is.
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    tracing::warn!(plugin = %id, "message refused, the host is at capacity: {why}");
                    return Err(AtCapacity(why));
                }
                Ok((index, result, took)) => results[index] = Some((result, took)),
                // A panic in host code for one plugin: its slot stays empty.
                Err(e) => tracing::error!("plugin task failed: {e}"),
            }
        }

        let mut answered = Vec::new();
        let mut failed = Vec::new();
        let mut replies = Vec::new();
        for ((loaded, result), called) in snapshot.plugins.iter().zip(results).zip(called) {
            let info = loaded.plugin.info();
            let id = loaded.id.as_str();
            let (result, took) = match result {
                Some(result) => result,
                None if !called => continue,
                None => (
                    Err(PluginError::Instantiate("the host task failed".to_owned())),
                    Duration::ZERO,
                ),
            };
            self.metrics.call(
                id,
                result
                    .as_ref()
                    .map(Option::is_some)
                    .map_err(PluginError::kind),
                took,
            );
            match result {
                Ok(reply) => {
                    loaded.stats.success();
                    if let Some(reply) = reply {
                        answered.push(id.to_owned());
                        replies.push((id, reply));
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        plugin = id,
                        version = info.version,
                        file = loaded.file,
                        "plugin left out: {error}"
                    );
                    if loaded.stats.failure(&error, self.disable_after) {
                        tracing::error!(
                            plugin = id,
                            file = loaded.file,
                            "plugin disabled after {} failures in a row; a new version of \
                             its file, SIGHUP or POST /plugins/reload enables it again",
                            self.disable_after
                        );
                    }
                    failed.push((id.to_owned(), error));
                }
            }
        }
        let messages = merge::merge(
            replies.iter().map(|(name, reply)| (*name, reply)),
            &self.apology,
            &self.limits,
            merge::Channel::of(&msg.from),
        );
        Ok(Answer {
            messages,
            answered,
            failed,
        })
    }
}
