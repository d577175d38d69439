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
//!
//! A reply's messages are kept in the state store until they are sent
//! (the `_later` namespace: `_` is in no plugin id, so no plugin can name
//! it), under the replica that sends them: it marks a message in flight
//! before each attempt and clears the mark when the attempt surely sent
//! nothing. A replica that stops leaves its records behind; once its
//! heartbeat (`alive:<replica>`, renewed every third of
//! [`Settings::lease`]) has expired, one replica takes each record over
//! (an atomic `increment` decides which) and sends what is left — except a
//! message marked in flight, whose outcome is unknown: that is reported in
//! the log and not sent again. Never twice beats always.

use crate::deliver::{Backoff, Envelope, Journal, Twilio};
use crate::message::{Inbound, Outgoing};
use crate::runtime::Deadline;
use crate::state::Store;
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
    /// How long a replica's heartbeat lasts: once it has expired, another
    /// replica (or the next process) sends the replies it left.
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(120),
            max_calls: 64,
            max_calls_per_plugin: 16,
            backoff: Backoff::default(),
            lease: Duration::from_secs(30),
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
pub struct Later {
    twilio: Twilio,
    settings: Settings,
    running: Mutex<Running>,
    /// Where messages wait until they are sent; `None`: in memory only.
    store: Option<Arc<Store>>,
    /// This replica, in records and its heartbeat.
    replica: String,
    /// When this replica's heartbeat was last written.
    beat: tokio::sync::Mutex<Option<Instant>>,
    /// The records this process is sending now.
    draining: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Later")
            .field("settings", &self.settings)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// The store's namespace of pending replies: no plugin id has a `_`.
const JOURNAL: &str = "_later";

/// How long a reply is kept at most, sent or not.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// One reply's messages, as the store keeps them until they are sent.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Pending {
    /// The replica sending it.
    owner: String,
    plugin: String,
    to: String,
    from: String,
    in_reply_to: String,
    /// Each message's body and media.
    messages: Vec<(Option<String>, Vec<String>)>,
    /// How many are sent.
    next: usize,
    /// Whether a request for `messages[next]` may be out.
    in_flight: bool,
}

impl Pending {
    fn envelope(&self, index: usize) -> Option<Envelope> {
        let (body, media) = self.messages.get(index)?.clone();
        Some(Envelope {
            to: self.to.clone(),
            from: self.from.clone(),
            message: Outgoing { body, media },
            in_reply_to: self.in_reply_to.clone(),
        })
    }
}

#[derive(Debug, Default)]
struct Running {
    /// Deferred calls running.
    total: usize,
    by_plugin: HashMap<Arc<str>, usize>,
    /// Replies being sent.
    sending: usize,
}

/// One reply being sent, counted while it lives.
struct Sending<'a>(&'a Later);

impl<'a> Sending<'a> {
    fn new(later: &'a Later) -> Self {
        later.lock().sending += 1;
        Sending(later)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        let mut running = self.0.lock();
        running.sending = running.sending.saturating_sub(1);
    }
}

impl Later {
    /// Replies later sent through `twilio`.
    pub fn new(twilio: Twilio, settings: Settings) -> Self {
        Later {
            twilio,
            settings,
            running: Mutex::default(),
            store: None,
            replica: random_id(),
            beat: tokio::sync::Mutex::new(None),
            draining: Mutex::default(),
        }
    }

    /// The same, keeping pending messages in `store` (see the module's
    /// doc), unless that is off.
    pub fn with_store(mut self, store: Arc<Store>) -> Self {
        if *store.location() != crate::state::Location::Off {
            self.store = Some(store);
        }
        self
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
        let mut running = self.lock();
        let mine = running.by_plugin.get(plugin).copied().unwrap_or(0);
        // Replies still being sent count too: under Twilio's 429s they
        // must not pile up at the rate of messages.
        if running.total + running.sending >= self.settings.max_calls
            || mine >= self.settings.max_calls_per_plugin
        {
            return Err(DeferError::Busy);
        }
        running.total += 1;
        *running.by_plugin.entry(plugin.clone()).or_default() += 1;
        Ok(Place {
            later: self.clone(),
            plugin: plugin.clone(),
        })
    }

    /// Sends `messages`, `plugin`'s reply to `inbound`, one after the other;
    /// stops at the first that is not sent (the rest would arrive out of
    /// order). Keeps them in the store until they are sent. How many were
    /// sent.
    pub async fn send(&self, plugin: &str, inbound: &Inbound, messages: Vec<Outgoing>) -> usize {
        let reply = Envelope::reply(inbound, Outgoing::default());
        let pending = Pending {
            owner: self.replica.clone(),
            plugin: plugin.to_owned(),
            to: reply.to,
            from: reply.from,
            in_reply_to: reply.in_reply_to,
            messages: messages.into_iter().map(|m| (m.body, m.media)).collect(),
            next: 0,
            in_flight: false,
        };
        let mut key = None;
        // The heartbeat first: a record of a replica that shows none would
        // be taken over at once.
        if let Some(store) = &self.store
            && self.alive().await
        {
            let id = format!("msg:{}", random_id());
            // Ours from the start: never adopted as stranded.
            self.lock_draining().insert(id.clone());
            match store.set(JOURNAL, &id, record(&pending), Some(KEEP)).await {
                Ok(()) => key = Some(id),
                Err(e) => {
                    self.lock_draining().remove(&id);
                    tracing::warn!(
                        plugin,
                        in_reply_to = %pending.in_reply_to,
                        "reply later not kept in the state store, so a restart would lose it: {e}"
                    );
                }
            }
        }
        self.drain(key, pending).await
    }

    fn lock_draining(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.draining.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends what is left of `pending` (kept under `key`, if it is). A
    /// record this replica no longer holds (taken over, or the store not
    /// answering) is left where it is: whoever holds it sends it, this
    /// replica's [`Later::keep`] included.
    async fn drain(&self, key: Option<String>, mut pending: Pending) -> usize {
        struct Draining<'a>(&'a Later, Option<String>);
        impl Drop for Draining<'_> {
            fn drop(&mut self) {
                if let Some(key) = &self.1 {
                    self.0.lock_draining().remove(key);
                }
            }
        }
        let twilio = &self.twilio;
        let _counted = Sending::new(self);
        if let Some(key) = &key {
            self.lock_draining().insert(key.clone());
        }
        let _draining = Draining(self, key.clone());
        let mut sent = 0;
        let mut done = true;
        while let Some(envelope) = pending.envelope(pending.next) {
            let mut journal = Record {
                later: self,
                key: key.as_deref(),
                pending: &mut pending,
                gate: None,
                left: false,
            };
            let result = twilio
                .deliver_journaled(&envelope, &self.settings.backoff, &mut journal)
                .await;
            if journal.left {
                done = false;
                break;
            }
            if result.is_err() {
                // `deliver` logged why. Not retried from the store either:
                // given up (or, if the outcome is unknown, never again).
                break;
            }
            sent += 1;
            pending.next += 1;
            pending.in_flight = false;
            if pending.next < pending.messages.len() {
                self.save(key.as_deref(), &pending).await;
            }
        }
        if let (true, Some(store), Some(key)) = (done, &self.store, &key) {
            // Only while it is still ours: one taken over is the taker's.
            let ours = matches!(read(store, key).await, Ok(Some(p)) if p.owner == self.replica);
            if ours && let Err(e) = store.delete(JOURNAL, key).await {
                // This replica's `keep` finds it again: resending an unsent
                // tail, reporting one in flight.
                tracing::warn!(in_reply_to = %pending.in_reply_to, "reply later not cleared: {e}");
            }
        }
        sent
    }

    async fn save(&self, key: Option<&str>, pending: &Pending) -> bool {
        let (Some(store), Some(key)) = (&self.store, key) else {
            return true;
        };
        store
            .set(JOURNAL, key, record(pending), Some(KEEP))
            .await
            .is_ok()
    }

    /// Whether this replica's heartbeat is current, renewing it when a
    /// third of the lease has passed: a replica that cannot show it is
    /// alive must not send what others may take over.
    async fn alive(&self) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        let mut beat = self.beat.lock().await;
        if beat.is_some_and(|at| at.elapsed() < self.settings.lease / 3) {
            return true;
        }
        let written = Instant::now();
        let key = format!("alive:{}", self.replica);
        match store
            .set(JOURNAL, &key, b"1".to_vec(), Some(self.settings.lease))
            .await
        {
            Ok(()) => {
                *beat = Some(written);
                true
            }
            Err(e) => {
                tracing::warn!("replies later: heartbeat not written: {e}");
                *beat = None;
                false
            }
        }
    }

    /// Keeps this replica's heartbeat and takes over the replies that
    /// stopped replicas left (and its own that nothing sends any more),
    /// for ever (the server runs it while replies later are on and kept in
    /// a store).
    pub async fn keep(self: Arc<Self>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        loop {
            if self.alive().await
                && let Err(e) = self.take_over(&store).await
            {
                tracing::warn!("replies later: cannot look for replies left behind: {e}");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One look for records whose replica is gone.
    async fn take_over(
        self: &Arc<Self>,
        store: &Arc<Store>,
    ) -> Result<(), crate::state::StateError> {
        let mut after: Option<String> = None;
        loop {
            let page = store.keys(JOURNAL, "msg:", after.as_deref()).await?;
            for key in &page {
                // A long scan must not let this replica look gone.
                if !self.alive().await {
                    return Ok(());
                }
                if let Err(e) = self.adopt(store, key).await {
                    tracing::warn!("replies later: {key}: {e}");
                }
            }
            if page.len() < crate::state::PAGE {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }

    /// Takes the record `key` over if its replica is gone (or it is this
    /// one's and nothing sends it), and sends what surely was not sent.
    async fn adopt(
        self: &Arc<Self>,
        store: &Arc<Store>,
        key: &str,
    ) -> Result<(), crate::state::StateError> {
        if self.lock_draining().contains(key) {
            return Ok(());
        }
        let Some(found) = read(store, key).await? else {
            return Ok(());
        };
        let gone = found.owner;
        if gone != self.replica
            && store
                .get(JOURNAL, &format!("alive:{gone}"))
                .await?
                .is_some()
        {
            return Ok(());
        }
        // One replica wins each record: the first to count 1.
        let claim = format!("claim:{key}:{gone}");
        if store.increment(JOURNAL, &claim, 1).await? != 1 {
            return Ok(());
        }
        store
            .set(
                JOURNAL,
                &claim,
                b"1".to_vec(),
                Some(self.settings.lease * 10),
            )
            .await?;
        let Some(mut pending) = read(store, key).await?.filter(|p| p.owner == gone) else {
            return Ok(());
        };
        // In flight, or its gate taken (an attempt may have begun): the
        // outcome is unknown.
        let gate = store.get(JOURNAL, &gate_key(key, pending.next)).await?;
        if pending.in_flight || gate.is_some() {
            tracing::error!(
                plugin = pending.plugin,
                in_reply_to = %pending.in_reply_to,
                message = pending.next + 1,
                of = pending.messages.len(),
                "a reply later was being sent when its replica stopped: whether Twilio took \
                 it is unknown, so it is not sent again"
            );
            store.delete(JOURNAL, key).await?;
            return Ok(());
        }
        pending.owner = self.replica.clone();
        store
            .set(JOURNAL, key, record(&pending), Some(KEEP))
            .await?;
        store.delete(JOURNAL, &claim).await?;
        tracing::info!(
            plugin = pending.plugin,
            in_reply_to = %pending.in_reply_to,
            "sending a reply later that a stopped replica left"
        );
        self.lock_draining().insert(key.to_owned());
        let (later, key) = (self.clone(), key.to_owned());
        tokio::spawn(async move { later.drain(Some(key), pending).await });
        Ok(())
    }
}

/// The key that one replica counts to 1 before it sends message `index`
/// of the record `key`: two replicas that both think the record theirs
/// cannot both send it.
fn gate_key(key: &str, index: usize) -> String {
    format!("gate:{key}:{index}")
}

/// One message's attempts, written down in its record.
struct Record<'a> {
    later: &'a Later,
    key: Option<&'a str>,
    pending: &'a mut Pending,
    /// The gate this replica holds for the message.
    gate: Option<String>,
    /// Whether the record was left (not this replica's any more, or the
    /// store did not answer): nothing was sent, and it is not deleted.
    left: bool,
}

impl Record<'_> {
    async fn holds(&mut self, store: &Store, key: &str) -> bool {
        if !self.later.alive().await {
            return false;
        }
        // Still ours? A replica that took it over sends it now.
        match read(store, key).await {
            Ok(Some(found)) if found.owner == self.later.replica => {}
            _ => return false,
        }
        if self.gate.is_none() {
            let gate = gate_key(key, self.pending.next);
            if !matches!(store.increment(JOURNAL, &gate, 1).await, Ok(1)) {
                return false;
            }
            // It outlives the record, so that no stale copy sends again.
            let _ = store.set(JOURNAL, &gate, b"1".to_vec(), Some(KEEP)).await;
            self.gate = Some(gate);
        }
        self.pending.in_flight = true;
        self.later.save(Some(key), self.pending).await
    }
}

impl Journal for Record<'_> {
    async fn sending(&mut self) -> bool {
        let (Some(store), Some(key)) = (&self.later.store, self.key) else {
            return true;
        };
        let holds = self.holds(store, key).await;
        self.left = !holds;
        holds
    }

    async fn not_sent(&mut self) {
        self.pending.in_flight = false;
        if self.later.save(self.key, self.pending).await
            && let (Some(store), Some(gate)) = (&self.later.store, self.gate.take())
        {
            // Surely not sent: whoever holds the record may try again.
            let _ = store.delete(JOURNAL, &gate).await;
        }
    }
}

fn record(pending: &Pending) -> Vec<u8> {
    serde_json::to_vec(pending).unwrap_or_default()
}

async fn read(store: &Store, key: &str) -> Result<Option<Pending>, crate::state::StateError> {
    let Some(bytes) = store.get(JOURNAL, key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(pending) => Ok(Some(pending)),
        Err(e) => {
            tracing::warn!("replies later: {key} is not a pending reply ({e}); left to expire");
            Ok(None)
        }
    }
}

/// 128 random bits, in hex.
fn random_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let half = || RandomState::new().hash_one(Instant::now());
    format!("{:016x}{:016x}", half(), half())
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
    /// Why a `defer` of this call was refused.
    refused: Option<DeferError>,
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
            refused: None,
        };
        (defer, told)
    }

    /// What `later.defer` does; `memory` moves the call's memory among
    /// the deferred calls' share, or says there is no room. A refusal
    /// stays for the rest of the call (a plugin retrying in a loop costs
    /// nothing and is logged once).
    pub fn defer(
        &mut self,
        interim: Option<String>,
        memory: impl FnOnce() -> bool,
    ) -> Result<(), DeferError> {
        if self.place.is_some() {
            return Ok(());
        }
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        let result = self.try_defer(interim, memory);
        if let Err(refused) = &result {
            tracing::warn!(plugin = %self.plugin, "reply not deferred: {refused}");
            self.refused = Some(refused.clone());
        }
        result
    }

    fn try_defer(
        &mut self,
        interim: Option<String>,
        memory: impl FnOnce() -> bool,
    ) -> Result<(), DeferError> {
        let gone = || DeferError::Unavailable("the message is no longer being answered".into());
        let place = self.later.admit(&self.plugin)?;
        if self.tell.as_ref().is_none_or(|tell| tell.is_closed()) {
            return Err(gone());
        }
        if !memory() {
            return Err(DeferError::Busy);
        }
        let tell = self.tell.take().ok_or_else(gone)?;
        tell.send(interim).map_err(|_| gone())?;
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
        )
        .unwrap();
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
            Deadline::movable(now + Duration::from_secs(5)),
            now + Duration::from_secs(120),
        )
    }

    #[test]
    fn deferring_moves_the_deadline_and_hands_over_the_interim() {
        let later = later(4, 2);
        let now = Instant::now();
        let deadline = Deadline::movable(now + Duration::from_secs(5));
        let (mut defer, mut told) = Defer::new(
            later.clone(),
            "slow",
            deadline.clone(),
            now + Duration::from_secs(120),
        );
        assert_eq!(defer.defer(Some("On it".into()), || true), Ok(()));
        assert_eq!(told.try_recv().unwrap().as_deref(), Some("On it"));
        assert_eq!(deadline.get(), now + Duration::from_secs(120));
        // Again: nothing changes, no second place is taken.
        assert_eq!(defer.defer(None, || true), Ok(()));
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
        assert_eq!(a1.defer(None, || true), Ok(()));
        assert_eq!(a2.defer(None, || true), Ok(()));
        assert_eq!(a3.defer(None, || true), Err(DeferError::Busy), "per plugin");
        assert_eq!(b1.defer(None, || true), Ok(()));
        assert_eq!(c1.defer(None, || true), Err(DeferError::Busy), "in all");
        drop(a1);
        // A refusal stays for the rest of that call; a new call has room.
        assert_eq!(c1.defer(None, || true), Err(DeferError::Busy));
        let (mut c2, _r6) = call(&later, "c");
        assert_eq!(c2.defer(None, || true), Ok(()));
        let (mut a4, _r7) = call(&later, "a");
        assert_eq!(
            a4.defer(None, || true),
            Err(DeferError::Busy),
            "in all again"
        );
        // No room for its memory among the deferred calls: busy, and the
        // place is given back.
        drop(c2);
        let (mut d1, _r8) = call(&later, "d");
        assert_eq!(d1.defer(None, || false), Err(DeferError::Busy));
        assert_eq!(later.running(), 2);
        drop((a2, b1, c1, d1));
        assert_eq!(later.running(), 0);
        assert!(later.lock().by_plugin.is_empty());
    }

    #[test]
    fn without_a_listener_it_is_unavailable() {
        // (Without credentials there is no `Later` at all: the import says
        // `unavailable`, tested end to end in `tests/e2e/later.rs`.)
        let later = later(4, 4);
        let (mut defer, told) = call(&later, "a");
        drop(told);
        assert!(matches!(
            defer.defer(None, || true),
            Err(DeferError::Unavailable(_))
        ));
        assert_eq!(later.running(), 0, "a refused defer keeps no place");
    }
}
