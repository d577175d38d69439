//! The webhook: Twilio's `POST /bot`, `GET /healthz` and `GET /readyz`. Reads the body
//! within its size and time limits (under a reading budget of its own),
//! parses the form leniently, checks the signature, answers a retry from
//! the idempotency cache, takes an in-flight permit (503 past
//! `max_in_flight`), hands the message to dispatch and answers TwiML. Bad input gets a 4xx with a short reason;
//! the only 5xx is 503 when the bot is at capacity, which Twilio retries.
//! The admin endpoints are in [`crate::admin`], the connection handling
//! below this in [`crate::edge`].

use crate::admin::AdminAuth;
use crate::config::Secret;
use crate::dispatch::Dispatcher;
use crate::message::{Inbound, Params};
use crate::metrics::Message;
use crate::{signature, twiml};
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Everything the handlers need.
pub struct AppState {
    pub dispatcher: Dispatcher,
    pub auth: Option<Auth>,
    /// Who may use `GET /plugins` and `POST /plugins/reload`.
    pub admin: AdminAuth,
    /// Permits for bodies being read at once. Taken before anything is
    /// known of the sender, so larger than `in_flight` and held only while
    /// the body arrives (at most [`BODY_TIMEOUT`]).
    pub reading: Arc<Semaphore>,
    /// Permits for messages handled at once, taken once the request is
    /// authenticated (load shedding).
    pub in_flight: Arc<Semaphore>,
    /// Replies by idempotency token, for Twilio's retries.
    pub replay: Arc<Replay>,
    /// Largest webhook body accepted (413 above).
    pub max_body: usize,
}

/// Signature checking: the keys, and how to tell the URL Twilio called.
pub struct Auth {
    /// The Auth Token (HMAC-SHA1 signatures).
    pub token: Option<Secret>,
    /// SharedKey secrets by id (HMAC-SHA256 signatures).
    pub shared_keys: BTreeMap<String, Secret>,
    pub public_url: Option<String>,
    /// Rebuild the URL from `X-Forwarded-Proto`/`-Host`.
    pub trust_forwarded: bool,
}

/// A bounded memory of recent replies by `I-Twilio-Idempotency-Token`:
/// Twilio repeats the token when it retries a webhook, and the retry gets
/// the first reply without the plugins running (and fetching, and
/// answering) again. Oldest entries go first; entries expire.
///
/// The token is not signed, so it is never the key alone: the key is a
/// hash of the token with the request's path and query, its signature and
/// its body ([`replay_key`]). A retry repeats all four; another message
/// reusing a token (or a guessed one) misses, and never gets someone
/// else's reply.
///
/// With a shared state store (Redis), the replies are also kept there, so
/// a retry that lands on another replica gets the first reply too.
pub struct Replay {
    capacity: usize,
    ttl: Duration,
    entries: Mutex<ReplayEntries>,
    shared: Option<Arc<crate::state::Store>>,
    /// Until when the shared store is not asked again, after it failed:
    /// a Redis that does not answer must not add its time limit to every
    /// message.
    shared_down_until: Mutex<Option<Instant>>,
}

/// Replies by token, and the tokens oldest first.
type ReplayEntries = (HashMap<String, (Instant, Arc<str>)>, VecDeque<String>);

impl Replay {
    /// Twilio retries within minutes; 15 minutes covers its schedule.
    const TTL: Duration = Duration::from_secs(15 * 60);

    pub fn new(capacity: usize) -> Self {
        Replay {
            capacity,
            ttl: Self::TTL,
            entries: Mutex::default(),
            shared: None,
            shared_down_until: Mutex::default(),
        }
    }

    /// How long the shared store is left alone after it failed.
    const BACK_OFF: Duration = Duration::from_secs(5);

    /// Whether to ask the shared store now: not while it is left alone
    /// after a failure; when that time is up, one caller asks (the others
    /// wait for its answer for as long as a store operation may take).
    fn may_ask_shared(&self, store: &crate::state::Store) -> bool {
        let mut until = self
            .shared_down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *until {
            None => true,
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *until = Some(Instant::now() + store.limits().timeout);
                true
            }
        }
    }

    fn shared_answered(&self, result: Result<(), &crate::state::StateError>, doing: &str) {
        let mut until = self
            .shared_down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => *until = None,
            Err(e) => {
                if until.is_none() {
                    tracing::warn!(
                        "cannot {doing} other replicas: {e}; asking again in {} s",
                        Self::BACK_OFF.as_secs()
                    );
                }
                *until = Some(Instant::now() + Self::BACK_OFF);
            }
        }
    }

    /// Keeps replies in `store` too (when it is shared between replicas).
    pub fn shared(mut self, store: Arc<crate::state::Store>) -> Self {
        if self.capacity > 0 && store.is_shared() {
            self.shared = Some(store);
        }
        self
    }

    /// The reply to a retry: this replica's, else the shared store's.
    async fn recall(&self, key: &str) -> Option<Arc<str>> {
        if let Some(xml) = self.get(key) {
            return Some(xml);
        }
        let store = self.shared.as_ref()?;
        if !self.may_ask_shared(store) {
            return None;
        }
        let recalled = store.recall(key).await;
        self.shared_answered(recalled.as_ref().map(drop), "look up the replies of");
        let xml: Arc<str> = recalled.ok()??.into();
        self.put(key, xml.clone());
        Some(xml)
    }

    /// Remembers a reply here and, in the background, in the shared store.
    fn remember(self: &Arc<Self>, key: &str, xml: Arc<str>) {
        self.put(key, xml.clone());
        if let Some(store) = &self.shared
            && self.may_ask_shared(store)
        {
            let (replay, store, key) = (self.clone(), store.clone(), key.to_owned());
            tokio::spawn(async move {
                let stored = store.remember(&key, &xml, replay.ttl).await;
                replay.shared_answered(stored.as_ref().map(|_| ()), "share a reply with");
            });
        }
    }

    fn get(&self, token: &str) -> Option<Arc<str>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .0
            .get(token)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, xml)| xml.clone())
    }

    fn put(&self, token: &str, xml: Arc<str>) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map
            .insert(token.to_owned(), (Instant::now(), xml))
            .is_none()
        {
            order.push_back(token.to_owned());
        }
        while map.len() > self.capacity {
            match order.pop_front() {
                Some(oldest) => map.remove(&oldest),
                None => break,
            };
        }
    }
}

/// The key of a request in the [`Replay`] cache.
pub fn replay_key(token: &str, path_and_query: &str, signature: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [
        token.as_bytes(),
        path_and_query.as_bytes(),
        signature.as_bytes(),
        body,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The router: the webhook, health, and the admin endpoints.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/bot", post(bot))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(crate::admin::router(state))
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("expected Content-Type: application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("missing X-Twilio-Signature")]
    MissingSignature,
    #[error("invalid X-Twilio-Signature")]
    BadSignature,
    #[error("the request is signed with a key this server does not have: {0}")]
    UnknownKey(String),
    #[error("body does not match the bodySHA256 of the URL")]
    BodyHash,
    #[error("too many messages at once; retry shortly")]
    Busy,
    #[error("the bot is at capacity ({0}); retry shortly")]
    AtCapacity(String),
    #[error("request body too large")]
    TooLarge,
    #[error("request body not received in time")]
    SlowBody,
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = match self {
            WebhookError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::MissingSignature
            | WebhookError::BadSignature
            | WebhookError::UnknownKey(_)
            | WebhookError::BodyHash => StatusCode::FORBIDDEN,
            WebhookError::TooLarge | WebhookError::SlowBody => {
                // The rest of the body is never read: the connection
                // cannot carry another request, and the client is told.
                let status = if matches!(self, WebhookError::TooLarge) {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::REQUEST_TIMEOUT
                };
                let close = [(header::CONNECTION, "close")];
                return (status, close, format!("{self}\n")).into_response();
            }
            WebhookError::Busy | WebhookError::AtCapacity(_) => {
                let retry = [(header::RETRY_AFTER, "1")];
                return (StatusCode::SERVICE_UNAVAILABLE, retry, format!("{self}\n"))
                    .into_response();
            }
        };
        (status, format!("{self}\n")).into_response()
    }
}

async fn bot(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Result<Response, WebhookError> {
    let started = Instant::now();
    // Taken apart rather than extracted: the `HeaderMap` extractor copies
    // every header.
    let (parts, body) = request.into_parts();
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let headers = &parts.headers;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(WebhookError::UnsupportedMediaType);
    }
    // A body announced too large is refused before a byte is read.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > state.max_body as u64) {
        return Err(WebhookError::TooLarge);
    }
    // Bodies are read under a budget of their own, and within a short
    // time: Twilio sends ~1 KiB at once, so a slow sender is not Twilio.
    let body = {
        let Ok(_reading) = state.reading.clone().try_acquire_owned() else {
            tracing::warn!("message refused: too many request bodies are being read");
            state.dispatcher.metrics.message(Message::Shed, None);
            return Err(WebhookError::Busy);
        };
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, state.max_body)).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) if is_length_limit(&e) => return Err(WebhookError::TooLarge),
            Ok(Err(_)) | Err(_) => return Err(WebhookError::SlowBody),
        }
    };
    let params = Params::parse(&body);
    if let Some(auth) = &state.auth {
        check_signature(auth, uri, headers, &body, &params)?;
    }

    let metrics = &state.dispatcher.metrics;
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let key = headers
        .get("i-twilio-idempotency-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .map(|token| {
            let signature = headers
                .get("x-twilio-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            replay_key(token, path_and_query, signature, &body)
        });
    if let Some(key) = &key
        && let Some(xml) = state.replay.recall(key).await
    {
        tracing::info!("retry of a message already answered: same reply");
        metrics.message(Message::Replayed, None);
        return Ok(twiml_response(xml.to_string()));
    }

    // Shed load rather than queue without bound; Twilio then tries the
    // fallback URL. Only requests that passed the signature check get here.
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        tracing::warn!("message refused: max_in_flight messages are being handled");
        metrics.message(Message::Shed, None);
        return Err(WebhookError::Busy);
    };
    let msg = Inbound::new(params);
    let sid = crate::error::untrusted(&msg.message_sid, 64);
    state.dispatcher.registry().wait_ready().await;
    let answer = match state.dispatcher.dispatch(msg).await {
        Ok(answer) => answer,
        // Not cached: the retry deserves every plugin.
        Err(full) => {
            metrics.message(Message::Shed, None);
            return Err(WebhookError::AtCapacity(full.0));
        }
    };
    let how = if answer.answered.is_empty() && answer.deferred.is_empty() {
        Message::Apology
    } else {
        Message::Answered
    };
    metrics.message(how, Some(started.elapsed()));
    let xml = twiml::render(&answer.messages);
    if let Some(key) = &key {
        state.replay.remember(key, xml.as_str().into());
    }
    tracing::info!(
        sid,
        answered = %Ids(answer.answered.iter().map(String::as_str)),
        deferred = %Ids(answer.deferred.iter().map(String::as_str)),
        failed = %Ids(answer.failed.iter().map(|(id, _)| id.as_str())),
        messages = answer.messages.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "message"
    );
    Ok(twiml_response(xml))
}

/// Plugin ids as a log field, `[cat, quote]`: written straight into the
/// line, without the quotes and escaping of `Debug` (an id is lowercase
/// letters, digits and dashes) or a list to hold them.
struct Ids<I>(I);

impl<'a, I: Iterator<Item = &'a str> + Clone> std::fmt::Display for Ids<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, id) in self.0.clone().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(id)?;
        }
        f.write_str("]")
    }
}

/// Time to receive a whole webhook body once the headers are in. Twilio
/// sends its ~1 KiB at once.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether reading a body failed on its size limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], xml).into_response()
}

/// Checks `X-Twilio-Signature` the way Twilio's helper libraries do.
fn check_signature(
    auth: &Auth,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    params: &Params,
) -> Result<(), WebhookError> {
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingSignature)?;
    let settings = headers
        .get("x-twilio-webhooks-signature-settings")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (key_id, algorithm) = signature::parse_settings(settings);
    let algorithm = algorithm.map_err(|a| WebhookError::UnknownKey(format!("algorithm {a}")))?;
    let key = match (algorithm, key_id) {
        (signature::Algorithm::HmacSha256, Some(id)) => auth
            .shared_keys
            .get(&id)
            .ok_or_else(|| WebhookError::UnknownKey(format!("SharedKey {id}")))?,
        (signature::Algorithm::HmacSha256, None) => {
            return Err(WebhookError::UnknownKey(
                "HMAC_SHA256 without a key id".into(),
            ));
        }
        (signature::Algorithm::HmacSha1, _) => auth
            .token
            .as_ref()
            .ok_or_else(|| WebhookError::UnknownKey("the Auth Token (TWILIO_AUTH_TOKEN)".into()))?,
    };

    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let url = match &auth.public_url {
        Some(base) => format!("{base}{path_and_query}"),
        None => {
            let host = (auth
                .trust_forwarded
                .then(|| first("x-forwarded-host"))
                .flatten())
            .or_else(|| first("host"))
            .unwrap_or("localhost");
            let scheme = auth
                .trust_forwarded
                .then(|| first("x-forwarded-proto"))
                .flatten()
                .filter(|p| matches!(*p, "http" | "https"))
                .unwrap_or("http");
            format!("{scheme}://{host}{path_and_query}")
        }
    };

    // A URL with bodySHA256 signs the URL alone; the body must match it.
    let none = Params::default();
    let signed_params = match signature::body_sha256_param(&url) {
        Some(hash) => {
            if !signature::body_matches(body, &hash) {
                return Err(WebhookError::BodyHash);
            }
            &none
        }
        None => params,
    };
    if signature::verify_with(algorithm, &key.0, &url, signed_params, given) {
        Ok(())
    } else {
        tracing::warn!(
            url,
            "request refused: signature does not match (behind a proxy or tunnel, set \
             WASMBOT_PUBLIC_URL to the URL Twilio calls)"
        );
        Err(WebhookError::BadSignature)
    }
}

/// Liveness: the process serves HTTP.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Readiness: the plugins folder has been loaded and the state store
/// answers; else 503 with what is missing, one line each (a load balancer
/// then sends messages to another replica).
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let registry = state.dispatcher.registry();
    let mut missing = Vec::new();
    if !registry.is_ready() {
        missing.push("loading plugins".to_owned());
    }
    if let Some(store) = registry.runtime().state()
        && let Err(e) = store.ping().await
    {
        // The reason stays in the log: this endpoint answers anyone.
        tracing::debug!("not ready: {e}");
        missing.push("state store unreachable".to_owned());
    }
    if missing.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let text = missing.join("\n") + "\n";
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever Twilio (or anyone) encodes, parsing gives back exactly
        /// the pairs, in order, repeated names included.
        #[test]
        fn form_round_trip(pairs in proptest::collection::vec((".*", ".*"), 0..20)) {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let params = Params::parse(body.as_bytes());
            let expected: Vec<(&str, &str)> =
                pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(params.iter().collect::<Vec<_>>(), expected);
            let msg = crate::message::Inbound::from_params(pairs.clone());
            prop_assert_eq!(msg.params, params);
        }

        /// Arbitrary bytes never panic and never lose a separator-delimited pair.
        #[test]
        fn any_bytes_parse(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let params = Params::parse(&body);
            let nonempty = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
            prop_assert_eq!(params.len(), nonempty);
            // Decoded exactly as the form_urlencoded crate decodes them
            // (lossily), into the one buffer.
            let decoded: Vec<_> = form_urlencoded::parse(&body).collect();
            prop_assert!(params.iter().eq(decoded.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))));
            let _ = crate::message::Inbound::new(params);
        }

        /// Escapes, pluses, separators and broken UTF-8, dense: decoded
        /// exactly as the form_urlencoded crate decodes them.
        #[test]
        fn escapes_decode_as_form_urlencoded(
            body in proptest::collection::vec(
                proptest::sample::select(b"%+=&2bBfF0\xc3\xa9\xff".to_vec()),
                0..64,
            )
        ) {
            let decoded: Vec<_> = form_urlencoded::parse(&body).collect();
            let params = Params::parse(&body);
            prop_assert!(params.iter().eq(decoded.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))));
        }
    }

    /// A shared store that fails is left alone for a while, then asked
    /// by one caller: a dead Redis does not add its time limit to every
    /// message.
    #[tokio::test]
    async fn a_failing_shared_store_is_asked_again_only_after_a_while() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = Arc::new(
            crate::state::Store::open(
                &crate::state::Location::Redis(format!("redis://127.0.0.1:{port}")),
                crate::state::Limits {
                    timeout: Duration::from_millis(200),
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let replay = Replay::new(8).shared(store.clone());
        assert_eq!(replay.recall("k").await, None);
        assert_eq!(store.unavailable_count(), 1);
        for _ in 0..5 {
            assert_eq!(replay.recall("k").await, None);
        }
        assert_eq!(store.unavailable_count(), 1, "not asked while backing off");
        // Once the time is up, the next caller asks (and fails again).
        *replay.shared_down_until.lock().unwrap() = Some(Instant::now());
        assert_eq!(replay.recall("k").await, None);
        assert_eq!(store.unavailable_count(), 2);
        // A reply of this replica is still found.
        replay.put("mine", "<Response/>".into());
        assert_eq!(replay.recall("mine").await.as_deref(), Some("<Response/>"));
    }

    #[test]
    fn replay_remembers_the_newest_and_forgets_the_oldest() {
        let replay = Replay::new(2);
        replay.put("a", "A".into());
        replay.put("b", "B".into());
        assert_eq!(replay.get("a").as_deref(), Some("A"));
        replay.put("c", "C".into());
        assert_eq!(replay.get("a"), None);
        assert_eq!(replay.get("b").as_deref(), Some("B"));
        assert_eq!(replay.get("c").as_deref(), Some("C"));
        replay.put("c", "C2".into());
        assert_eq!(
            replay.get("b").as_deref(),
            Some("B"),
            "an update is no new entry"
        );
        assert_eq!(replay.get("c").as_deref(), Some("C2"));

        let expired = Replay {
            ttl: Duration::ZERO,
            ..Replay::new(2)
        };
        expired.put("a", "A".into());
        assert_eq!(expired.get("a"), None);
        let off = Replay::new(0);
        off.put("a", "A".into());
        assert_eq!(off.get("a"), None);
    }

    #[test]
    fn a_reused_token_keys_nothing_of_another_message() {
        let key = replay_key("tok", "/bot", "sig=", b"Body=hi&From=a");
        assert_eq!(key, replay_key("tok", "/bot", "sig=", b"Body=hi&From=a"));
        for other in [
            replay_key("tok", "/bot", "sig=", b"Body=hi&From=b"),
            replay_key("tok", "/bot", "other=", b"Body=hi&From=a"),
            replay_key("tok", "/bot?x=1", "sig=", b"Body=hi&From=a"),
            replay_key("tok2", "/bot", "sig=", b"Body=hi&From=a"),
            // Parts cannot be shifted into one another.
            replay_key("to", "k/bot", "sig=", b"Body=hi&From=a"),
        ] {
            assert_ne!(key, other);
        }
    }
}
