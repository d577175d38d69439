//! Later: replies after Twilio's 15-second webhook limit. A plugin calls
//! `later.defer(interim)` in `handle`; [`crate::dispatch`] answers the
//! webhook at once with the interim text as that plugin's part, and the
//! call goes on with the longer deadline set here. What it returns in the
//! end is merged alone and sent through Twilio's Messages API
//! ([`crate::deliver`]).
//!
//! The operator is the only authority: without their Twilio credentials
//! `defer` is `unavailable`, and deferred calls are capped in all and per
//! plugin (each holds an instance, its memory and a pool slot for up to
//! [`Settings::timeout`]), so deferring can neither hold the pool nor let
//! one plugin take every place. A refusal is a value the plugin sees; it
//! then answers now.

use crate::deliver::{Backoff, Envelope, Twilio};
use crate::message::{Inbound, Outgoing};
use crate::runtime::Deadline;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The operator's limits on replies later.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long after the message arrived a deferred call may run.
    pub timeout: Duration,
    /// Deferred calls running at once, all plugins together.
    pub max_calls: usize,
    /// Deferred calls running at once for one plugin.
    pub max_calls_per_plugin: usize,
    /// How a message Twilio did not take is retried.
    pub backoff: Backoff,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(120),
            max_calls: 64,
            max_calls_per_plugin: 16,
            backoff: Backoff::default(),
        }
    }
}

/// Why a plugin may not defer now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeferError {
    #[error("{0}")]
    Unavailable(String),
    #[error("as many calls as allowed are answering later")]
    Busy,
}

/// Replies later for the whole server: where they are sent and the caps.
#[derive(Debug)]
pub struct Later {
    /// `Err(why)`: replies later are off (no credentials).
    twilio: Result<Twilio, String>,
    settings: Settings,
    running: Mutex<Running>,
}

#[derive(Debug, Default)]
struct Running {
    total: usize,
    by_plugin: HashMap<Arc<str>, usize>,
}

impl Later {
    /// Replies later sent through `twilio`, or off (`Err(why)`: `defer`
    /// answers `unavailable` with it).
    pub fn new(twilio: Result<Twilio, String>, settings: Settings) -> Self {
        Later {
            twilio,
            settings,
            running: Mutex::default(),
        }
    }

    /// Whether `defer` can succeed at all.
    pub fn enabled(&self) -> bool {
        self.twilio.is_ok()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Deferred calls running now.
    pub fn running(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more deferred call of `plugin`, if the caps allow.
    fn admit(self: &Arc<Self>, plugin: &Arc<str>) -> Result<Place, DeferError> {
        if let Err(why) = &self.twilio {
            return Err(DeferError::Unavailable(why.clone()));
        }
        let mut running = self.lock();
        let mine = running.by_plugin.get(plugin).copied().unwrap_or(0);
        if running.total >= self.settings.max_calls || mine >= self.settings.max_calls_per_plugin {
            return Err(DeferError::Busy);
        }
        running.total += 1;
        *running.by_plugin.entry(plugin.clone()).or_default() += 1;
        Ok(Place {
            later: self.clone(),
            plugin: plugin.clone(),
        })
    }

    /// Sends `messages`, the reply to `inbound`, one after the other; stops
    /// at the first that is not sent (the rest would arrive out of order).
    /// How many were sent.
    pub async fn send(&self, inbound: &Inbound, messages: Vec<Outgoing>) -> usize {
        let Ok(twilio) = &self.twilio else {
            return 0;
        };
        let mut sent = 0;
        for message in messages {
            let envelope = Envelope::reply(inbound, message);
            if twilio
                .deliver(&envelope, &self.settings.backoff)
                .await
                .is_err()
            {
                // `deliver` logged why.
                break;
            }
            sent += 1;
        }
        sent
    }
}

/// One deferred call's place among the caps, given back when it is dropped
/// (with the call's store, whatever way the call ends).
#[derive(Debug)]
struct Place {
    later: Arc<Later>,
    plugin: Arc<str>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut running = self.later.lock();
        running.total = running.total.saturating_sub(1);
        if let Some(n) = running.by_plugin.get_mut(&self.plugin) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.by_plugin.remove(&self.plugin);
            }
        }
    }
}

/// One call's way to answer later: kept in the call's store, used by the
/// `later` import. [`Defer::new`] gives the receiving end to the caller.
#[derive(Debug)]
pub struct Defer {
    later: Arc<Later>,
    plugin: Arc<str>,
    deadline: Deadline,
    /// The deadline once deferred.
    until: Instant,
    /// Takes the interim text; `None` once sent.
    tell: Option<oneshot::Sender<Option<String>>>,
    place: Option<Place>,
}

impl Defer {
    /// For one call of `plugin` cut at `deadline`, which deferring moves to
    /// `until`. The receiver gets the interim text when the plugin defers,
    /// or is closed when the call ends without deferring.
    pub fn new(
        later: Arc<Later>,
        plugin: &str,
        deadline: Deadline,
        until: Instant,
    ) -> (Self, oneshot::Receiver<Option<String>>) {
        let (tell, told) = oneshot::channel();
        let defer = Defer {
            later,
            plugin: plugin.into(),
            deadline,
            until,
            tell: Some(tell),
            place: None,
        };
        (defer, told)
    }

    /// What `later.defer` does.
    pub fn defer(&mut self, interim: Option<String>) -> Result<(), DeferError> {
        if self.place.is_some() {
            return Ok(());
        }
        let place = self.later.admit(&self.plugin)?;
        let Some(tell) = self.tell.take() else {
            return Err(DeferError::Unavailable(
                "the message is no longer being answered".into(),
            ));
        };
        if tell.send(interim).is_err() {
            return Err(DeferError::Unavailable(
                "the message is no longer being answered".into(),
            ));
        }
        self.deadline.extend_to(self.until);
        self.place = Some(place);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::deliver::Credentials;

    fn later(max_calls: usize, per_plugin: usize) -> Arc<Later> {
        let twilio = Twilio::new(
            "http://127.0.0.1:9",
            Credentials {
                account_sid: format!("AC{}", "0".repeat(32)),
                api_key: None,
                secret: Secret("token".into()),
            },
        );
        Arc::new(Later::new(
            twilio,
            Settings {
                max_calls,
                max_calls_per_plugin: per_plugin,
                ..Settings::default()
            },
        ))
    }

    fn call(later: &Arc<Later>, plugin: &str) -> (Defer, oneshot::Receiver<Option<String>>) {
        let now = Instant::now();
        Defer::new(
            later.clone(),
            plugin,
            Deadline::at(now + Duration::from_secs(5)),
            now + Duration::from_secs(120),
        )
    }

    #[test]
    fn deferring_moves_the_deadline_and_hands_over_the_interim() {
        let later = later(4, 2);
        let now = Instant::now();
        let deadline = Deadline::at(now + Duration::from_secs(5));
        let (mut defer, mut told) = Defer::new(
            later.clone(),
            "slow",
            deadline.clone(),
            now + Duration::from_secs(120),
        );
        assert_eq!(defer.defer(Some("On it".into())), Ok(()));
        assert_eq!(told.try_recv().unwrap().as_deref(), Some("On it"));
        assert_eq!(deadline.get(), now + Duration::from_secs(120));
        // Again: nothing changes, no second place is taken.
        assert_eq!(defer.defer(None), Ok(()));
        assert_eq!(later.running(), 1);
        drop(defer);
        assert_eq!(later.running(), 0);
    }

    #[test]
    fn the_caps_hold_in_all_and_per_plugin_and_places_come_back() {
        let later = later(3, 2);
        let (mut a1, _r1) = call(&later, "a");
        let (mut a2, _r2) = call(&later, "a");
        let (mut a3, _r3) = call(&later, "a");
        let (mut b1, _r4) = call(&later, "b");
        let (mut c1, _r5) = call(&later, "c");
        assert_eq!(a1.defer(None), Ok(()));
        assert_eq!(a2.defer(None), Ok(()));
        assert_eq!(a3.defer(None), Err(DeferError::Busy), "per plugin");
        assert_eq!(b1.defer(None), Ok(()));
        assert_eq!(c1.defer(None), Err(DeferError::Busy), "in all");
        drop(a1);
        assert_eq!(c1.defer(None), Ok(()));
        assert_eq!(a3.defer(None), Err(DeferError::Busy), "in all again");
        drop((a2, b1, c1));
        assert_eq!(later.running(), 0);
        assert!(later.lock().by_plugin.is_empty());
    }

    #[test]
    fn without_credentials_or_a_listener_it_is_unavailable() {
        let off = Arc::new(Later::new(
            Err("no Twilio credentials".into()),
            Settings::default(),
        ));
        let (mut defer, _told) = call(&off, "a");
        assert_eq!(
            defer.defer(None),
            Err(DeferError::Unavailable("no Twilio credentials".into()))
        );
        let later = later(4, 4);
        let (mut defer, told) = call(&later, "a");
        drop(told);
        assert!(matches!(defer.defer(None), Err(DeferError::Unavailable(_))));
        assert_eq!(later.running(), 0, "a refused defer keeps no place");
    }
}
