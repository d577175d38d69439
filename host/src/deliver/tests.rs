//! The sender against a local fake of Twilio's Messages endpoint, which
//! checks the credential and the form as Twilio does and can be told to
//! answer 429 (with `Retry-After`), 500, a redirect, or nothing in time.

use super::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const KEY: &str = "SKfedcba9876543210fedcba9876543210";
const TOKEN: &str = "the-auth-token";
const USER: &str = "whatsapp:+15550001111";
const BOT: &str = "whatsapp:+14155238886";

/// What the fake answers, in turn; the last one again once they run out.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Created,
    TooMany {
        retry_after: u64,
    },
    Unavailable,
    /// A proxy's 503: plain text, no `Retry-After`.
    ProxyUnavailable,
    /// A 400 that is not Twilio's JSON.
    PlainBadRequest,
    ServerError,
    Redirect,
    Silent,
}

/// One request the fake got: the account in its path, the Basic
/// credential, the form.
type Seen = (String, String, Vec<(String, String)>);

#[derive(Default)]
struct Fake {
    script: Vec<Answer>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Fake>>;

async fn messages(
    State(fake): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    use base64::Engine;
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let answer = {
        let mut fake = fake.lock().unwrap();
        fake.seen
            .push((account.clone(), credential.clone(), form.clone()));
        let n = fake.seen.len();
        fake.script[(n - 1).min(fake.script.len() - 1)]
    };
    let json = |status: StatusCode, value: serde_json::Value| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response()
    };
    let good = [format!("{ACCOUNT}:{TOKEN}"), format!("{KEY}:{TOKEN}")];
    if account != ACCOUNT || !good.contains(&credential) {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401}),
        );
    }
    let has = |name: &str| form.iter().any(|(n, _)| n == name);
    if !has("To") || !has("From") || !(has("Body") || has("MediaUrl")) {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 21602, "message": "Message body is required.", "status": 400}),
        );
    }
    match answer {
        Answer::Created => json(
            StatusCode::CREATED,
            serde_json::json!({"sid": format!("SM{:032x}", fake.lock().unwrap().seen.len()), "status": "queued"}),
        ),
        Answer::TooMany { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.to_string())],
            r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        )
            .into_response(),
        Answer::Unavailable => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"code": 20503, "message": "Service unavailable", "status": 503}),
        ),
        Answer::ProxyUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream").into_response()
        }
        Answer::PlainBadRequest => (StatusCode::BAD_REQUEST, "bad request").into_response(),
        Answer::ServerError => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"code": 20500, "message": "Internal Server Error", "status": 500}),
        ),
        Answer::Redirect => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "/elsewhere")],
        )
            .into_response(),
        Answer::Silent => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::CREATED.into_response()
        }
    }
}

/// A fake Twilio on a free loopback port: its base URL and its record.
async fn fake(script: &[Answer]) -> (String, Shared) {
    let (base, shared, _) = fake_with_elsewhere(script).await;
    (base, shared)
}

/// The same, and how many requests reached `/elsewhere`, where its
/// redirects point.
async fn fake_with_elsewhere(script: &[Answer]) -> (String, Shared, Arc<Mutex<usize>>) {
    let shared: Shared = Arc::new(Mutex::new(Fake {
        script: script.to_vec(),
        seen: Vec::new(),
    }));
    let other = Arc::new(Mutex::new(0usize));
    let elsewhere = {
        let other = other.clone();
        move || async move {
            *other.lock().unwrap() += 1;
            StatusCode::CREATED
        }
    };
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            axum::routing::post(messages),
        )
        .route("/elsewhere", axum::routing::post(elsewhere))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, shared, other)
}

fn twilio(base: &str) -> Twilio {
    Twilio::new(
        base,
        Credentials {
            account_sid: ACCOUNT.into(),
            api_key: None,
            secret: Secret(TOKEN.into()),
        },
    )
    .unwrap()
}

fn reply(body: Option<&str>, media: &[&str]) -> Envelope {
    let inbound = Inbound::from_params(vec![
        ("From", USER),
        ("To", BOT),
        ("MessageSid", "SM\n forged line"),
    ]);
    Envelope::reply(
        &inbound,
        Outgoing {
            body: body.map(Into::into),
            media: media.iter().map(|m| m.to_string()).collect(),
        },
    )
}

fn quick() -> Backoff {
    Backoff {
        attempts: 3,
        first: Duration::from_millis(10),
        max: Duration::from_secs(5),
    }
}

/// Why `twilio` could not deliver a "hi" with the quick backoff.
async fn failure(twilio: &Twilio) -> SendError {
    twilio
        .deliver(&reply(Some("hi"), &[]), &quick())
        .await
        .unwrap_err()
}

fn requests(fake: &Shared) -> usize {
    fake.lock().unwrap().seen.len()
}

#[tokio::test]
async fn a_reply_goes_to_the_sender_from_the_bot_with_its_media() {
    let (base, fake) = fake(&[Answer::Created]).await;
    let sid = twilio(&base)
        .send(&reply(
            Some("Here you go"),
            &["https://cataas.com/cat", "https://example.com/b.png"],
        ))
        .await
        .unwrap();
    assert_eq!(sid, Sid(format!("SM{:032x}", 1)));
    assert!(!reply(None, &[]).in_reply_to.contains('\n'));
    let seen = &fake.lock().unwrap().seen;
    let (account, credential, form) = &seen[0];
    assert_eq!(account, ACCOUNT);
    assert_eq!(credential, &format!("{ACCOUNT}:{TOKEN}"));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("To", USER),
            ("From", BOT),
            ("Body", "Here you go"),
            ("MediaUrl", "https://cataas.com/cat"),
            ("MediaUrl", "https://example.com/b.png"),
        ]
    );
}

#[tokio::test]
async fn an_api_key_authenticates_in_place_of_the_account() {
    let (base, fake) = fake(&[Answer::Created]).await;
    let twilio = Twilio::new(
        &format!("{base}/"),
        Credentials {
            account_sid: ACCOUNT.into(),
            api_key: Some(KEY.into()),
            secret: Secret(TOKEN.into()),
        },
    )
    .unwrap();
    twilio
        .send(&reply(None, &["https://cataas.com/cat"]))
        .await
        .unwrap();
    assert_eq!(fake.lock().unwrap().seen[0].1, format!("{KEY}:{TOKEN}"));
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_twilios_code_and_not_retried() {
    let (base, fake) = fake(&[Answer::Created]).await;
    let twilio = Twilio::new(
        &base,
        Credentials {
            account_sid: ACCOUNT.into(),
            api_key: None,
            secret: Secret("wrong".into()),
        },
    )
    .unwrap();
    let err = failure(&twilio).await;
    assert_eq!(
        err,
        SendError::Refused {
            status: 401,
            code: Some(20003),
            message: "Authenticate".into()
        }
    );
    assert_eq!(requests(&fake), 1);
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_twilio_asks_then_sends() {
    let (base, fake) = fake(&[
        Answer::TooMany { retry_after: 1 },
        Answer::Unavailable,
        Answer::Created,
    ])
    .await;
    let started = Instant::now();
    let sid = twilio(&base)
        .deliver(&reply(Some("later"), &[]), &quick())
        .await
        .unwrap();
    assert!(sid.0.starts_with("SM"), "{sid:?}");
    assert_eq!(requests(&fake), 3);
    // Retry-After: 1 is honoured although the backoff's own wait is 10 ms.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let (base, fake) = fake(&[Answer::TooMany { retry_after: 0 }]).await;
    let err = failure(&twilio(&base)).await;
    assert!(matches!(err, SendError::Transient { .. }), "{err:?}");
    assert_eq!(requests(&fake), 3);
}

#[tokio::test]
async fn an_unknown_outcome_is_never_sent_again() {
    // A 500, and an answer that does not come in time: Twilio may have
    // taken the message.
    for (answer, timeout) in [
        (Answer::ServerError, Duration::from_secs(15)),
        (Answer::Silent, Duration::from_millis(300)),
    ] {
        let (base, fake) = fake(&[answer, Answer::Created]).await;
        let twilio = twilio(&base).with_timeout(timeout).unwrap();
        let err = failure(&twilio).await;
        assert!(matches!(err, SendError::Unknown(_)), "{answer:?}: {err:?}");
        assert_eq!(requests(&fake), 1, "{answer:?}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_credentials() {
    let (base, fake, elsewhere) = fake_with_elsewhere(&[Answer::Redirect]).await;
    let err = failure(&twilio(&base)).await;
    assert!(matches!(err, SendError::Unknown(_)), "{err:?}");
    assert_eq!(requests(&fake), 1);
    assert_eq!(*elsewhere.lock().unwrap(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_503_that_is_not_twilios_may_have_been_taken() {
    let (base, fake) = fake(&[Answer::ProxyUnavailable, Answer::Created]).await;
    let err = failure(&twilio(&base)).await;
    assert!(matches!(err, SendError::Unknown(_)), "{err:?}");
    assert_eq!(requests(&fake), 1);
}

#[tokio::test]
async fn a_4xx_that_is_not_twilios_json_is_still_refused() {
    let (base, fake) = fake(&[Answer::PlainBadRequest]).await;
    let err = twilio(&base)
        .send(&reply(Some("hi"), &[]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Refused {
            status: 400,
            code: None,
            message: "Bad Request".into()
        }
    );
    assert_eq!(requests(&fake), 1);
}

#[tokio::test]
async fn a_wait_longer_than_the_backoff_allows_is_left_to_the_caller() {
    let (base, fake) = fake(&[Answer::TooMany { retry_after: 3600 }, Answer::Created]).await;
    let err = failure(&twilio(&base)).await;
    let SendError::Transient { retry_after, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(requests(&fake), 1);
}

#[tokio::test]
async fn no_connection_is_retried_then_reported() {
    // A port bound but not listening: connections are refused, and no
    // other test can take it meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    let started = Instant::now();
    let err = failure(&twilio(&base)).await;
    let SendError::Transient { why, .. } = err else {
        panic!("{err:?}")
    };
    assert!(why.contains("cannot connect"), "{why}");
    // Three attempts: two waits of at least 0.8 × 10 ms and 0.8 × 20 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(24),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn what_twilio_would_refuse_for_its_size_is_refused_before_sending() {
    let (base, fake) = fake(&[Answer::Created]).await;
    let twilio = twilio(&base);
    let long = "x".repeat(MAX_BODY_CHARS + 1);
    let eleven: Vec<String> = (0..11).map(|i| format!("https://e.com/{i}.png")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    for envelope in [
        reply(Some(&long), &[]),
        reply(None, &eleven),
        reply(None, &[]),
        reply(Some(""), &[]),
    ] {
        let err = twilio.send(&envelope).await.unwrap_err();
        assert!(matches!(err, SendError::Invalid(_)), "{err:?}");
    }
    assert_eq!(requests(&fake), 0);
    // 1600 characters (not bytes), 10 media, and an empty body beside
    // media (left out) are within the limits.
    let full = "é".repeat(MAX_BODY_CHARS);
    twilio.send(&reply(Some(&full), &[])).await.unwrap();
    twilio.send(&reply(None, &eleven[..10])).await.unwrap();
    twilio.send(&reply(Some(""), &eleven[..1])).await.unwrap();
    let seen = &fake.lock().unwrap().seen;
    assert_eq!(
        seen[1].2.iter().filter(|(n, _)| n == "MediaUrl").count(),
        10
    );
    assert!(!seen[2].2.iter().any(|(n, _)| n == "Body"));
}

#[test]
fn only_well_formed_sids_reach_the_url_and_the_credential() {
    let with = |account: &str, key: Option<&str>, base: &str| {
        Twilio::new(
            base,
            Credentials {
                account_sid: account.into(),
                api_key: key.map(Into::into),
                secret: Secret(TOKEN.into()),
            },
        )
    };
    let base = "https://api.twilio.com";
    assert!(with(ACCOUNT, None, base).is_ok());
    assert!(with(ACCOUNT, Some(KEY), base).is_ok());
    assert!(with(ACCOUNT, None, "http://127.0.0.1:8080/").is_ok());
    // 34 characters each: only the hex-digit check stops them.
    for account in [
        "",
        "AC123",
        "AC0123456789abcdef0123456789abc/..",
        "AC0123456789abcdef0123456789abcdeg",
        "SK0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(account.len() == 34, account.len() > 5, "{account}");
        assert!(with(account, None, base).is_err(), "{account}");
    }
    assert!(with(ACCOUNT, Some(ACCOUNT), base).is_err());
    assert!(with(ACCOUNT, Some("SK0123456789abcdef0123456789abc:xy"), base).is_err());
    for base in [
        "api.twilio.com",
        "ftp://api.twilio.com",
        "https://",
        // The Auth Token in clear text, off this machine.
        "http://api.twilio.com",
        "https://user:pw@api.twilio.com",
        "https://api.twilio.com/v1",
        "https://api.twilio.com/?x=",
        "https://api.twilio.com/#x",
    ] {
        assert!(with(ACCOUNT, None, base).is_err(), "{base}");
    }
    let endpoint = with(ACCOUNT, None, "https://api.twilio.com")
        .unwrap()
        .endpoint;
    assert_eq!(
        endpoint,
        format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    let empty = Twilio::new(
        base,
        Credentials {
            account_sid: ACCOUNT.into(),
            api_key: None,
            secret: Secret(String::new()),
        },
    );
    assert!(empty.is_err());
}

#[test]
fn the_backoff_doubles_with_jitter_within_retry_after_and_its_cap() {
    let b = Backoff {
        attempts: 10,
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    assert_eq!(b.wait(1, None, 0.5), Duration::from_secs(1));
    assert_eq!(b.wait(3, None, 0.5), Duration::from_secs(4));
    assert_eq!(b.wait(3, None, 0.0), Duration::from_millis(3200));
    assert_eq!(b.wait(3, None, 1.0), Duration::from_millis(4800));
    assert_eq!(
        b.wait(1, Some(Duration::from_secs(7)), 0.5),
        Duration::from_secs(7)
    );
    assert_eq!(b.wait(9, None, 1.0), Duration::from_secs(60));
    assert_eq!(b.wait(9, None, 0.0), Duration::from_secs(48));
    assert_eq!(b.wait(40, None, 1.0), Duration::from_secs(60));
    // Twilio's wait wins even past `max` (deliver stops before that).
    assert_eq!(
        b.wait(1, Some(Duration::from_secs(3600)), 0.5),
        Duration::from_secs(3600)
    );
    // No overflow, whatever the settings.
    let huge = Backoff {
        attempts: u32::MAX,
        first: Duration::MAX,
        max: Duration::MAX,
    };
    assert!(huge.wait(u32::MAX, Some(Duration::MAX), 1.0) > Duration::ZERO);
    assert!(huge.wait(0, None, 0.0) > Duration::ZERO);
}

#[test]
fn neither_numbers_nor_the_secret_are_in_debug_output() {
    let envelope = reply(Some("secret text"), &[]);
    let shown = format!("{envelope:?}");
    assert!(
        !shown.contains("+1555") && !shown.contains("secret text"),
        "{shown}"
    );
    let shown = format!("{:?}", twilio("https://api.twilio.com"));
    assert!(!shown.contains(TOKEN), "{shown}");
}
