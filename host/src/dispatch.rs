//! Dispatch: hands one message to every loaded plugin whose triggers it
//! matches (see [`crate::trigger`]; the others are not instantiated at
//! all), at once, each in its own task with the same deadline, collects
//! the answers in plugin order and merges them. A single call gets a task
//! too: on its worker's thread (see `edge`) it then runs after the
//! connections already woken, so calls run back to back rather than
//! between the reads and writes of their connections, and the server spent
//! a fifth less CPU per message than with the call run inline in its
//! connection's task (a cat message: 82–92 against 106–113 µs, wrk -c16).
//! A plugin that fails, traps or runs out of time is logged with its id
//! and left out; the others still answer. When the host has no room for a
//! plugin (memory budget, instance pool) the message is not answered with
//! plugins silently missing: the calls still running are stopped and the
//! message is refused as [`AtCapacity`].

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
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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

/// What one plugin's call gave: its result and how long it took, or, for
/// a call that goes on to reply later, its interim text, where its result
/// is left if it comes before the message is answered, and its task.
enum Outcome {
    Done(Result<Option<Reply>, PluginError>, Duration),
    /// A deferred call's result that came in time, counted by its task.
    Counted(Result<Option<Reply>, PluginError>),
    Deferred {
        interim: Option<String>,
        early: Early,
        task: tokio::task::JoinHandle<()>,
    },
}

/// A plugin call in progress.
type Call = Pin<Box<dyn Future<Output = Result<Option<Reply>, PluginError>> + Send>>;

/// The result of a call that deferred, once it has one: taken by dispatch
/// if the message is not answered yet (the reply then goes in the webhook's
/// answer), else by [`Finish::run`] (through the Messages API). Whoever
/// takes it first has it.
type Early = Arc<Mutex<Option<Result<Option<Reply>, PluginError>>>>;

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
    /// What deferred calls share, made from the fields above at the first
    /// message.
    finish: OnceLock<Arc<Finish>>,
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
            finish: OnceLock::new(),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn finish(&self) -> Option<&Arc<Finish>> {
        let later = self.later.as_ref()?;
        Some(self.finish.get_or_init(|| {
            Arc::new(Finish {
                later: later.clone(),
                metrics: self.metrics.clone(),
                apology: self.apology.clone(),
                limits: self.limits.clone(),
                disable_after: self.disable_after,
            })
        }))
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
        let (finish, answered_tx) = match self.finish() {
            Some(finish) => {
                let (tx, rx) = watch::channel(None::<bool>);
                (Some((finish.clone(), rx)), Some(tx))
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
                let Some((finish, answered)) = finish else {
                    let result = loaded
                        .plugin
                        .handle_deferrable(&msg, Deadline::at(deadline), None)
                        .await;
                    return (index, Outcome::Done(result, started.elapsed()));
                };
                let deadline = Deadline::movable(deadline);
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
                    biased;
                    Ok(interim) = told => {
                        // One more turn: a call that deferred and then
                        // answered at once replies in the answer.
                        if let Ok(result) = tokio::time::timeout(Duration::ZERO, &mut call).await {
                            return (index, Outcome::Done(result, started.elapsed()));
                        }
                        finish.metrics.later(loaded.id.as_str(), "deferred");
                        let early = Early::default();
                        let task = tokio::spawn(finish.run(
                            loaded,
                            msg,
                            call,
                            started,
                            answered,
                            early.clone(),
                        ));
                        (index, Outcome::Deferred { interim, early, task })
                    }
                    // Done before the deferral was seen (it deferred and
                    // returned at once): the reply goes in the answer.
                    result = &mut call => (index, Outcome::Done(result, started.elapsed())),
                }
            });
        }
        let mut results: Vec<Option<Outcome>> = Vec::new();
        results.resize_with(snapshot.plugins.len(), || None);
        // Refuses the message: the calls still running stop at once, and
        // are gone (their memory back) before the refusal is. Calls that
        // deferred stop too: Twilio retries the message, and the retry
        // replies.
        async fn refuse(
            results: &mut [Option<Outcome>],
            tasks: &mut tokio::task::JoinSet<(usize, Outcome)>,
        ) {
            tasks.abort_all();
            while let Some(joined) = tasks.join_next().await {
                if let Ok((index, outcome)) = joined {
                    results[index] = Some(outcome);
                }
            }
            for outcome in results.iter_mut() {
                if let Some(Outcome::Deferred { task, .. }) = outcome {
                    task.abort();
                    let _ = task.await;
                }
            }
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, Outcome::Done(Err(PluginError::Capacity(why)), took))) => {
                    let id = &snapshot.plugins[index].id;
                    self.metrics.call(id, Err("capacity"), took);
                    verdict(false);
                    refuse(&mut results, &mut tasks).await;
                    tracing::warn!(plugin = %id, "message refused, the host is at capacity: {why}");
                    return Err(AtCapacity(why));
                }
                Ok((index, outcome)) => results[index] = Some(outcome),
                // A panic in host code for one plugin: its slot stays empty.
                Err(e) => tracing::error!("plugin task failed: {e}"),
            }
        }
        // Deferred calls already done answer here and now; one that found
        // no room refuses the message like any other.
        for (index, outcome) in results.iter_mut().enumerate() {
            let Some(Outcome::Deferred { early, .. }) = outcome else {
                continue;
            };
            let done = early.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(Err(PluginError::Capacity(why))) = done {
                verdict(false);
                refuse(&mut results, &mut tasks).await;
                let id = &snapshot.plugins[index].id;
                tracing::warn!(plugin = %id, "message refused, the host is at capacity: {why}");
                return Err(AtCapacity(why));
            }
            if let Some(result) = done {
                *outcome = Some(Outcome::Counted(result));
            }
        }

        let mut answered = Vec::new();
        let mut deferred = Vec::new();
        let mut failed = Vec::new();
        let mut replies = Vec::new();
        for ((loaded, result), called) in snapshot.plugins.iter().zip(results).zip(called) {
            let id = loaded.id.as_str();
            let result = match result {
                Some(Outcome::Done(result, took)) => {
                    account(&self.metrics, self.disable_after, loaded, &result, took);
                    result
                }
                Some(Outcome::Counted(result)) => result,
                Some(Outcome::Deferred { interim, .. }) => {
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
                None => {
                    let result = Err(PluginError::Instantiate("the host task failed".to_owned()));
                    account(
                        &self.metrics,
                        self.disable_after,
                        loaded,
                        &result,
                        Duration::ZERO,
                    );
                    result
                }
            };
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
    /// The rest of a call that deferred: waits for its result and leaves it
    /// in `early`; if dispatch has not taken it by the time the message is
    /// answered, sends it (merged alone) through the Messages API, the
    /// apology for a failure. A message that was refused stops the call:
    /// Twilio retries it.
    async fn run(
        self: Arc<Self>,
        loaded: Arc<Loaded>,
        msg: Arc<Inbound>,
        call: Call,
        started: Instant,
        mut answered: watch::Receiver<Option<bool>>,
        early: Early,
    ) {
        let id = loaded.id.to_string();
        let mut verdict = answered.clone();
        let refused = async move {
            if was_answered(&mut verdict).await {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = call => result,
            () = refused => {
                self.metrics.later(&id, "dropped");
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
        // Not kept while sending: a reload may replace it.
        drop(loaded);
        *early.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        if !was_answered(&mut answered).await {
            self.metrics.later(&id, "dropped");
            return;
        }
        let Some(result) = early.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            // Done in time: it went in the webhook's answer.
            self.metrics.later(&id, "inline");
            return;
        };
        let messages = match &result {
            Ok(Some(reply)) => {
                merge::merge([(id.as_str(), reply)], None, &self.limits, channel(&msg))
            }
            Ok(None) => Vec::new(),
            Err(_) => merge::merge([], Some(&self.apology), &self.limits, channel(&msg)),
        };
        if messages.is_empty() {
            self.metrics.later(&id, "silent");
            tracing::info!(plugin = id, "deferred call had nothing to send");
            return;
        }
        let count = messages.len();
        let sent = self.later.send(&id, &msg, messages).await;
        self.metrics
            .later(&id, if sent == count { "sent" } else { "not_sent" });
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
        &loaded.id,
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
