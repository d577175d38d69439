//! Deliver: messages sent through Twilio's Messages REST API instead of in
//! the webhook's TwiML — the sending half of replies later (issue 12,
//! part 2; the `later` import that hands replies to it, and the queue that
//! keeps them across a restart, are not built yet).
//!
//! One [`Envelope`] is one message (a [`merge`](crate::merge) output with
//! its `From`/`To`), one `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! with HTTP Basic auth: the Account SID and Auth Token, or an API key
//! (`SK…`) and its secret, Twilio's recommended credential for servers.
//!
//! What may be retried is decided so that a message is never sent twice:
//! - retried: the connection could not be made, 429 Too Many Requests
//!   (after its `Retry-After`), 503 Service Unavailable — Twilio did not
//!   take the message;
//! - refused for good: any other 4xx (bad number, credentials, body), with
//!   Twilio's error code and message;
//! - unknown: a timeout once the request was sent, another 5xx (a 503 that
//!   is not Twilio's own JSON error and has no `Retry-After` too: a proxy
//!   may say 503 after forwarding), a redirect, an answer that is not
//!   Twilio's — Twilio may have taken the message, so it is not sent again
//!   and the caller is told.
//!
//! Phone numbers are not logged, nor Twilio's error texts (they may quote
//! one): the log says status, error code and the inbound `MessageSid`.

use crate::config::Secret;
use crate::message::{Inbound, Outgoing};
use std::time::Duration;

/// Where and as whom messages are sent.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account the messages are sent from (`AC` + 32 hex digits).
    pub account_sid: String,
    /// An API key (`SK` + 32 hex digits) and its secret, or `None` to
    /// authenticate with the Account SID and `secret` = the Auth Token.
    pub api_key: Option<String>,
    pub secret: Secret,
}

/// The Messages API of one account.
#[derive(Debug, Clone)]
pub struct Twilio {
    client: reqwest::Client,
    /// `{base}/2010-04-01/Accounts/{AccountSid}/Messages.json`.
    endpoint: String,
    user: String,
    secret: Secret,
}

/// One message to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The user: the inbound message's `From`.
    pub to: String,
    /// The bot: the inbound message's `To`.
    pub from: String,
    pub message: Outgoing,
    /// The inbound message's `MessageSid`, for the log (numbers are not
    /// logged).
    pub in_reply_to: String,
}

/// Without the numbers or the text.
impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("in_reply_to", &self.in_reply_to)
            .field("media", &self.message.media.len())
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The reply to `inbound`: its `From` and `To` swap.
    pub fn reply(inbound: &Inbound, message: Outgoing) -> Self {
        Envelope {
            to: inbound.from.clone(),
            from: inbound.to.clone(),
            message,
            // From the request: made safe for a log line.
            in_reply_to: crate::error::untrusted(&inbound.message_sid, 64),
        }
    }
}

/// Why a message was not sent. Its `Display` names no number and quotes
/// no text from Twilio (see [`SendError::Refused`]'s `message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not a message Twilio would take (size, nothing to send): nothing was
    /// sent.
    #[error("not sendable: {0}")]
    Invalid(String),
    /// Twilio did not take it; worth trying again (after `retry_after`,
    /// when Twilio said).
    #[error("not sent, may be retried: {why}")]
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Twilio refused it; sending it again would be refused again.
    /// `message` is Twilio's text, made safe for a log line; it may quote
    /// a number.
    #[error("refused by Twilio ({status}{})", code.map(|c| format!(", error {c}")).unwrap_or_default())]
    Refused {
        status: u16,
        code: Option<u32>,
        message: String,
    },
    /// It may or may not have been sent: not retried, so that it is never
    /// sent twice.
    #[error("outcome unknown, not retried: {0}")]
    Unknown(String),
}

/// The SID Twilio gave a message it took (`SM…` or `MM…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sid(pub String);

/// How [`Twilio::deliver`] retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each one after.
    pub first: Duration,
    /// The longest wait between two attempts, a `Retry-After` included.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 6,
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` + 1 (`attempt` ≥ 1), given what
    /// Twilio asked for: the doubled wait ±20% (so that replicas spread
    /// out), at most `max`, and never shorter than Twilio's `Retry-After`
    /// ([`Twilio::deliver`] stops when that is longer than `max`).
    fn wait(&self, attempt: u32, asked: Option<Duration>, jitter: f64) -> Duration {
        let doubled = self
            .first
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max);
        let jittered = Duration::try_from_secs_f64(
            doubled.as_secs_f64() * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)),
        )
        .unwrap_or(self.max)
        .min(self.max);
        jittered.max(asked.unwrap_or_default())
    }
}

/// Largest answer read from Twilio (its message resource is ~1 KiB).
const MAX_ANSWER: usize = 64 << 10;

/// Twilio's bounds on one message: 1600 characters, 10 media.
const MAX_BODY_CHARS: usize = 1600;
const MAX_MEDIA: usize = 10;

impl Twilio {
    /// The Messages API at `base` (`https://api.twilio.com`; plain `http`
    /// only on loopback, for a local fake). The SIDs are checked, so that
    /// nothing but them ends up in the URL's path or the credential.
    pub fn new(base: &str, credentials: Credentials) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("the Twilio API URL {why}"));
        let Ok(mut url) = reqwest::Url::parse(base.trim()) else {
            return bad("is not a URL");
        };
        let loopback = match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return bad("has no host"),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return bad("must be https:// (http:// only on loopback)"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad("must not carry a user or password");
        }
        if url.query().is_some() || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
            return bad("must be scheme://host[:port] with no path, query or fragment");
        }
        let sid = &credentials.account_sid;
        if !is_sid(sid, "AC") {
            return Err("the Account SID must be AC followed by 32 hex digits".into());
        }
        url.path_segments_mut()
            .map_err(|()| "the Twilio API URL cannot take a path".to_owned())?
            .clear()
            .extend(["2010-04-01", "Accounts", sid, "Messages.json"]);
        let user = match credentials.api_key {
            Some(key) if is_sid(&key, "SK") => key,
            Some(_) => return Err("an API key SID must be SK followed by 32 hex digits".into()),
            None => sid.clone(),
        };
        if credentials.secret.0.is_empty() {
            return Err("the Auth Token or API key secret is empty".into());
        }
        Ok(Twilio {
            client: client(TIMEOUT)?,
            endpoint: url.to_string(),
            user,
            secret: credentials.secret,
        })
    }

    /// The same, waiting at most `timeout` for an answer (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, String> {
        self.client = client(timeout)?;
        Ok(self)
    }

    /// Sends one message, once.
    pub async fn send(&self, envelope: &Envelope) -> Result<Sid, SendError> {
        let form = form(envelope)?;
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.user, Some(&self.secret.0))
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    SendError::Transient {
                        why: format!("cannot connect to Twilio: {}", error_chain(&e)),
                        retry_after: None,
                    }
                } else {
                    SendError::Unknown(format!("no answer from Twilio: {}", error_chain(&e)))
                }
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // At most MAX_ANSWER bytes of it; `None` past that or on error.
        let answer = crate::outbound::read_within(response, MAX_ANSWER)
            .await
            .ok()
            .flatten();
        let json: Option<serde_json::Value> = answer.and_then(|b| serde_json::from_slice(&b).ok());
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
        let message = field("message")
            .and_then(|m| m.as_str())
            .map(|m| crate::error::untrusted(m, 300))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
        // Twilio's own error answer (a proxy's 503 is not one).
        let twilio = field("code").is_some_and(|c| c.is_u64());
        match status.as_u16() {
            200 | 201 => field("sid")
                .and_then(|s| s.as_str())
                .filter(|s| s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
                .map(|s| Sid(s.to_owned()))
                .ok_or_else(|| {
                    SendError::Unknown(format!("Twilio answered {status} without a message SID"))
                }),
            429 => Err(SendError::Transient {
                why: format!("Twilio answered {status}"),
                retry_after,
            }),
            503 if twilio || retry_after.is_some() => Err(SendError::Transient {
                why: format!("Twilio answered {status}"),
                retry_after,
            }),
            400..=499 => Err(SendError::Refused {
                status: status.as_u16(),
                code: field("code")
                    .and_then(|c| c.as_u64())
                    .and_then(|c| u32::try_from(c).ok()),
                message,
            }),
            _ => Err(SendError::Unknown(format!("the API answered {status}"))),
        }
    }

    /// Sends one message, retrying what may be retried (see the module's
    /// doc) as `backoff` says — but not when Twilio asks for a longer wait
    /// than `backoff.max`: that error is returned, with its `retry_after`.
    /// Logs the SID it got or why it gave up. Dropped while a request is
    /// out, the outcome of that request is unknown.
    pub async fn deliver(&self, envelope: &Envelope, backoff: &Backoff) -> Result<Sid, SendError> {
        self.deliver_journaled(envelope, backoff, &mut ()).await
    }

    /// [`Twilio::deliver`], telling `journal` before each attempt (which
    /// may stop it) and after each attempt that surely sent nothing, so
    /// that whoever finds the journal after a crash knows whether the
    /// message may have gone out.
    pub async fn deliver_journaled(
        &self,
        envelope: &Envelope,
        backoff: &Backoff,
        journal: &mut impl Journal,
    ) -> Result<Sid, SendError> {
        let mut attempt = 1;
        loop {
            if !journal.sending().await {
                tracing::warn!(
                    in_reply_to = %envelope.in_reply_to,
                    attempt,
                    "message not sent: its journal refused the attempt"
                );
                return Err(SendError::Transient {
                    why: "the attempt could not be journaled".into(),
                    retry_after: None,
                });
            }
            let sent = self.send(envelope).await;
            if matches!(
                sent,
                Err(SendError::Transient { .. } | SendError::Invalid(_))
            ) {
                journal.not_sent().await;
            }
            match sent {
                Ok(sid) => {
                    tracing::info!(
                        sid = %sid.0,
                        in_reply_to = %envelope.in_reply_to,
                        attempt,
                        "message sent through the Messages API"
                    );
                    return Ok(sid);
                }
                Err(SendError::Transient { why, retry_after })
                    if attempt < backoff.attempts
                        && retry_after.is_none_or(|asked| asked <= backoff.max) =>
                {
                    let wait = backoff.wait(attempt, retry_after, jitter());
                    tracing::warn!(
                        in_reply_to = %envelope.in_reply_to,
                        attempt,
                        "{why}; trying again in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(
                        in_reply_to = %envelope.in_reply_to,
                        attempt,
                        "message not sent: {e}"
                    );
                    return Err(e);
                }
            }
        }
    }
}

/// Where a sender writes down what it is about to do: before an attempt,
/// the message may be out; after one that failed transiently, it is
/// surely not. [`crate::later`] keeps this in the state store, so that a
/// message a crash interrupted is resent only if it surely was not sent.
pub trait Journal: Send {
    /// Before each attempt; `false` stops (nothing is sent).
    fn sending(&mut self) -> impl Future<Output = bool> + Send;
    /// After an attempt that surely sent nothing.
    fn not_sent(&mut self) -> impl Future<Output = ()> + Send;
}

/// No journal: every attempt goes ahead.
impl Journal for () {
    async fn sending(&mut self) -> bool {
        true
    }
    async fn not_sent(&mut self) {}
}

/// How long an answer may take: Twilio's API answers in well under a
/// second.
const TIMEOUT: Duration = Duration::from_secs(15);

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // Shorter than the whole exchange, so that a connection not made
        // in time is told apart (retried) from an answer not received.
        .connect_timeout(Duration::from_secs(5).min(timeout / 3))
        .timeout(timeout)
        // Below servers' idle timeouts: a pooled connection the server
        // closes as a request is written makes that request's outcome
        // unknown (lost, never doubled).
        .pool_idle_timeout(Duration::from_secs(20))
        // A redirect is not Twilio's answer; the credentials go nowhere else.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// The form Twilio takes for `envelope`; a message Twilio would refuse
/// for its size is refused here, before anything is sent.
fn form(envelope: &Envelope) -> Result<Vec<(&'static str, String)>, SendError> {
    let refuse = SendError::Invalid;
    let Outgoing { body, media } = &envelope.message;
    // An empty body is no body (Twilio refuses it: error 21602).
    let body = body.as_ref().filter(|b| !b.is_empty());
    let mut form = vec![("To", envelope.to.clone()), ("From", envelope.from.clone())];
    if let Some(body) = body {
        if body.chars().count() > MAX_BODY_CHARS {
            return Err(refuse(format!(
                "a body is at most {MAX_BODY_CHARS} characters"
            )));
        }
        form.push(("Body", body.clone()));
    }
    if media.len() > MAX_MEDIA {
        return Err(refuse(format!(
            "a message carries at most {MAX_MEDIA} media"
        )));
    }
    form.extend(media.iter().map(|url| ("MediaUrl", url.clone())));
    if body.is_none() && media.is_empty() {
        return Err(refuse("a message needs a body or media".into()));
    }
    Ok(form)
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A number in [0, 1) that differs between calls and processes.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::time::Instant::now()) % 1000) as f64 / 1000.0
}

#[cfg(test)]
mod tests;
