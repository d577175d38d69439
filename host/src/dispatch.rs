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
use crate::later::{Defer, Later};
use crate::merge;
use crate::message::{Inbound, Outgoing, Reply};
use crate::metrics::Metrics;
use crate::registry::{Loaded, Registry};
use crate::runtime::Deadline;
use crate::trigger;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What happened to one message.
#[derive(Debug)]
pub struct Answer {
    pub messages: Vec<Outgoing>,
    /// Plugins (ids) that answered, in merge order.
    pub answered: Vec<String>,
    /// Plugins (ids) that deferred their reply: it is sent later.
    pub deferred: Vec<String>,
    /// Plugins (ids) that failed, with the reason.
    pub failed: Vec<(String, PluginError)>,
}

/// What one plugin's call gave: its result and how long it took, or the
/// interim text of a call that goes on to reply later.
enum Outcome {
    Done(Result<Option<Reply>, PluginError>, Duration),
    Deferred(Option<String>),
}

/// A plugin call in progress.
type Call = Pin<Box<dyn Future<Output = Result<Option<Reply>, PluginError>> + Send>>;

/// The host had no room to run every plugin for this message; it must be
/// refused (503) so that Twilio retries it, never answered in part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AtCapacity(pub String);

pub struct Dispatcher {
    registry: Arc<Registry>,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Time every plugin gets for one message, HTTP calls included.
    pub plugin_timeout: Duration,
    /// Sent when no plugin answered.
    pub apology: String,
    pub limits: merge::Limits,
    /// Failures in a row after which a plugin is disabled until the next
    /// rescan or a new version of its file; 0: never.
    pub disable_after: u64,
    /// Replies later; `None`: a plugin's `later.defer` is `unavailable`.
    pub later: Option<Arc<Later>>,
}

/// What a deferred call needs once the message is answered.
struct Finish {
    later: Arc<Later>,
    metrics: Arc<Metrics>,
    apology: String,
    limits: merge::Limits,
    disable_after: u64,
}

impl Dispatcher {
    pub fn new(registry: Arc<Registry>, plugin_timeout: Duration, apology: String) -> Self {
        Dispatcher {
            metrics: Arc::new(Metrics::new(registry.clone())),
            registry,
            plugin_timeout,
            apology,
            limits: merge::Limits::default(),
            disable_after: 0,
            later: None,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub async fn dispatch(&self, msg: Inbound) -> Result<Answer, AtCapacity> {
        let arrived = Instant::now();
        let snapshot = self.registry.snapshot();
        let seen = trigger::Seen::new(&msg);
        let called: Vec<bool> = snapshot
            .plugins
            .iter()
            .map(|loaded| !loaded.stats.is_disabled() && loaded.plugin.wants(&seen))
            .collect();
        drop(seen);
        let msg = Arc::new(msg);
        let deadline = arrived + self.plugin_timeout;
        // What a call that defers needs, with whether the message was
        // answered (`Some(true)`) or refused; nothing when replies later
        // are off.
        let (finish, answered_tx) = match &self.later {
            Some(later) => {
                let (tx, rx) = watch::channel(None::<bool>);
                let finish = Arc::new(Finish {
                    later: later.clone(),
                    metrics: self.metrics.clone(),
                    apology: self.apology.clone(),
                    limits: self.limits.clone(),
                    disable_after: self.disable_after,
                });
                (Some((finish, rx)), Some(tx))
            }
            None => (None, None),
        };
        let verdict = |answered: bool| {
            if let Some(tx) = &answered_tx {
                let _ = tx.send(Some(answered));
            }
        };

        let mut tasks = tokio::task::JoinSet::new();
        for (index, loaded) in snapshot.plugins.iter().enumerate() {
            if !called[index] {
                continue;
            }
            let (loaded, msg, finish) = (loaded.clone(), msg.clone(), finish.clone());
            tasks.spawn(async move {
                let started = Instant::now();
                let deadline = Deadline::at(deadline);
                let Some((finish, answered)) = finish else {
                    let result = loaded.plugin.handle_deferrable(&msg, deadline, None).await;
                    return (index, Outcome::Done(result, started.elapsed()));
                };
                let until = arrived + finish.later.settings().timeout;
                let (defer, told) = Defer::new(
                    finish.later.clone(),
                    loaded.id.as_str(),
                    deadline.clone(),
                    until,
                );
                let mut call: Call = {
                    let (loaded, msg) = (loaded.clone(), msg.clone());
                    Box::pin(async move {
                        loaded
                            .plugin
                            .handle_deferrable(&msg, deadline, Some(defer))
                            .await
                    })
                };
                tokio::select! {
                    // A call that defers replies later even if it is
                    // already done: what the plugin asked for, every time.
                    biased;
                    Ok(interim) = told => {
                        finish.metrics.later(loaded.id.as_str(), "deferred");
                        tokio::spawn(finish.run(loaded, msg, call, started, answered));
                        (index, Outcome::Deferred(interim))
                    }
                    result = &mut call => (index, Outcome::Done(result, started.elapsed())),
                }
            });
        }
        let mut results: Vec<Option<Outcome>> = Vec::new();
        results.resize_with(snapshot.plugins.len(), || None);
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, Outcome::Done(Err(PluginError::Capacity(why)), took))) => {
                    let id = &snapshot.plugins[index].id;
                    self.metrics.call(id.as_str(), Err("capacity"), took);
                    // Stop the others at once, and wait until they are
                    // gone: their memory is back before the refusal is.
                    // Calls that deferred stop too: Twilio retries the
                    // message, and the retry replies.
                    verdict(false);
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    tracing::warn!(plugin = %id, "message refused, the host is at capacity: {why}");
                    return Err(AtCapacity(why));
                }
                Ok((index, outcome)) => results[index] = Some(outcome),
                // A panic in host code for one plugin: its slot stays empty.
                Err(e) => tracing::error!("plugin task failed: {e}"),
            }
        }

        let mut answered = Vec::new();
        let mut deferred = Vec::new();
        let mut failed = Vec::new();
        let mut replies = Vec::new();
        for ((loaded, result), called) in snapshot.plugins.iter().zip(results).zip(called) {
            let id = loaded.id.as_str();
            let (result, took) = match result {
                Some(Outcome::Done(result, took)) => (result, took),
                Some(Outcome::Deferred(interim)) => {
                    deferred.push(id.to_owned());
                    if let Some(text) = interim {
                        replies.push((
                            id,
                            Reply {
                                text: Some(text),
                                media: Vec::new(),
                            },
                        ));
                    }
                    continue;
                }
                None if !called => continue,
                None => (
                    Err(PluginError::Instantiate("the host task failed".to_owned())),
                    Duration::ZERO,
                ),
            };
            account(&self.metrics, self.disable_after, loaded, &result, took);
            match result {
                Ok(Some(reply)) => {
                    answered.push(id.to_owned());
                    replies.push((id, reply));
                }
                Ok(None) => {}
                Err(error) => failed.push((id.to_owned(), error)),
            }
        }
        // A plugin replies later: nothing else to say is an empty answer,
        // not the apology.
        let apology = deferred.is_empty().then_some(self.apology.as_str());
        let messages = merge::merge(
            replies.iter().map(|(name, reply)| (*name, reply)),
            apology,
            &self.limits,
            merge::Channel::of(&msg.from),
        );
        verdict(true);
        Ok(Answer {
            messages,
            answered,
            deferred,
            failed,
        })
    }
}

impl Finish {
    /// The rest of a call that deferred: waits for its result, then, once
    /// the message was answered, sends it (merged alone) through the
    /// Messages API; a failure sends the apology. A message that was
    /// refused stops the call: Twilio retries it.
    async fn run(
        self: Arc<Self>,
        loaded: Arc<Loaded>,
        msg: Arc<Inbound>,
        call: Call,
        started: Instant,
        mut answered: watch::Receiver<Option<bool>>,
    ) {
        let id = loaded.id.as_str();
        let mut verdict = answered.clone();
        let refused = async move {
            if was_answered(&mut verdict).await {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = call => result,
            () = refused => {
                self.metrics.later(id, "dropped");
                tracing::info!(plugin = id, "deferred call stopped: the message was refused");
                return;
            }
        };
        account(
            &self.metrics,
            self.disable_after,
            &loaded,
            &result,
            started.elapsed(),
        );
        if !was_answered(&mut answered).await {
            self.metrics.later(id, "dropped");
            return;
        }
        let messages = match &result {
            Ok(Some(reply)) => merge::merge([(id, reply)], None, &self.limits, channel(&msg)),
            Ok(None) => Vec::new(),
            Err(_) => merge::merge([], Some(&self.apology), &self.limits, channel(&msg)),
        };
        if messages.is_empty() {
            self.metrics.later(id, "silent");
            tracing::info!(plugin = id, "deferred call had nothing to send");
            return;
        }
        let count = messages.len();
        let sent = self.later.send(&msg, messages).await;
        self.metrics
            .later(id, if sent == count { "sent" } else { "not_sent" });
    }
}

/// Waits until the message was answered (`true`) or refused.
async fn was_answered(verdict: &mut watch::Receiver<Option<bool>>) -> bool {
    matches!(
        verdict.wait_for(Option::is_some).await.map(|v| *v),
        Ok(Some(true))
    )
}

fn channel(msg: &Inbound) -> merge::Channel {
    merge::Channel::of(&msg.from)
}

/// Counts one finished call in the metrics and the plugin's stats, and
/// logs a failure (disabling the plugin after `disable_after` in a row).
fn account(
    metrics: &Metrics,
    disable_after: u64,
    loaded: &Loaded,
    result: &Result<Option<Reply>, PluginError>,
    took: Duration,
) {
    let id = loaded.id.as_str();
    metrics.call(
        id,
        result
            .as_ref()
            .map(Option::is_some)
            .map_err(PluginError::kind),
        took,
    );
    match result {
        Ok(_) => loaded.stats.success(),
        Err(error) => {
            tracing::warn!(
                plugin = id,
                version = loaded.plugin.info().version,
                file = loaded.file,
                "plugin left out: {error}"
            );
            if loaded.stats.failure(error, disable_after) {
                tracing::error!(
                    plugin = id,
                    file = loaded.file,
                    "plugin disabled after {disable_after} failures in a row; a new version \
                     of its file, SIGHUP or POST /plugins/reload enables it again"
                );
            }
        }
    }
}
