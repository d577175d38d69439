//! Replies later: the `ask` example plugin defers, the webhook is answered
//! at once with its interim text, and the answer reaches a local fake of
//! Twilio's Messages API (which checks the credential and the form, and
//! rate-limits the first request) after the plugin time limit.

use base64::Engine as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmbot::config::{Config, Secret};
use wasmbot::deliver::Credentials;
use wasmbot_tests::fixture::*;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "the-auth-token";
const INTERIM: &str = "Let me think about that…";
const BUSY: &str = "Many questions are being answered right now; ask again in a minute.";

/// A form as Twilio received it.
type Form = Vec<(String, String)>;

/// A fake Twilio (`POST /2010-04-01/Accounts/{sid}/Messages.json`) and a
/// fake model API (`POST /v1/chat/completions`: a question with "slow"
/// is answered after 2.5 s, one with "broken" gets a 500).
struct Fakes {
    addr: std::net::SocketAddr,
    /// The forms Twilio took, in order.
    sent: Arc<Mutex<Vec<Form>>>,
    /// Requests to the Messages API, refused ones included.
    attempts: Arc<Mutex<usize>>,
}

impl Fakes {
    /// With `throttle_first`, the first Messages request gets 429 with
    /// `Retry-After: 1`, as Twilio's rate limit answers.
    async fn start(throttle_first: bool) -> Fakes {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::post;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let (took, tries) = (sent.clone(), attempts.clone());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
        );
        let messages = move |axum::extract::Path(account): axum::extract::Path<String>,
                             headers: HeaderMap,
                             body: String| {
            let (took, tries, basic) = (took.clone(), tries.clone(), basic.clone());
            async move {
                let n = {
                    let mut tries = tries.lock().unwrap();
                    *tries += 1;
                    *tries
                };
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if account != format!("{ACCOUNT}.json").replace(".json", "") || auth != Some(&basic)
                {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [("retry-after", "")],
                        String::new(),
                    );
                }
                if throttle_first && n == 1 {
                    let error = r#"{"code":20429,"message":"Too Many Requests","status":429}"#;
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        error.into(),
                    );
                }
                let form: Form = form_urlencoded::parse(body.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                took.lock().unwrap().push(form);
                let sid = format!("SM{:032x}", n);
                (
                    StatusCode::CREATED,
                    [("retry-after", "")],
                    format!(r#"{{"sid":"{sid}","status":"queued"}}"#),
                )
            }
        };
        let model = |body: String| async move {
            let request: serde_json::Value = serde_json::from_str(&body).unwrap();
            let question = request["messages"][1]["content"]
                .as_str()
                .unwrap()
                .to_owned();
            if question.contains("broken") {
                return (StatusCode::INTERNAL_SERVER_ERROR, String::from("{}"));
            }
            if question.contains("slow") {
                tokio::time::sleep(Duration::from_millis(2500)).await;
            }
            let answer = serde_json::json!({
                "choices": [{"message": {"role": "assistant", "content": format!("Answer: {question}")}}]
            });
            (StatusCode::OK, answer.to_string())
        };
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages),
            )
            .route("/v1/chat/completions", post(model));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fakes {
            addr,
            sent,
            attempts,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until Twilio took `n` messages; what it took.
    async fn wait_sent(&self, n: usize, limit: Duration) -> Vec<Form> {
        let started = Instant::now();
        loop {
            let sent = self.sent.lock().unwrap().clone();
            if sent.len() >= n {
                return sent;
            }
            assert!(
                started.elapsed() < limit,
                "only {} sent: {sent:?}",
                sent.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A bot with `ask` (pointed at the fake model) and `cat`; `twilio` sends
/// replies later through the fake Twilio.
async fn bot(fakes: &Fakes, twilio: bool, configure: impl FnOnce(&mut Config)) -> Bot {
    let model = fakes.url("/v1/chat/completions");
    let api = fakes.url("");
    Bot::start(&[("ask.wasm", ASK), ("cat.wasm", CAT)], |c| {
        c.env.insert("WASMBOT_ASK__URL".into(), model);
        if twilio {
            c.twilio_api = Some(Credentials {
                account_sid: ACCOUNT.into(),
                api_key: None,
                secret: Secret(TOKEN.into()),
            });
            c.twilio_api_url = api;
        }
        c.later.timeout = Duration::from_secs(10);
        configure(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_sent_later_through_the_messages_api() {
    let fakes = Fakes::start(true).await;
    let bot = bot(&fakes, true, |_| {}).await;
    // Slower (2.5 s) than the plugin time limit (2 s) and the HTTP limit
    // (500 ms): answered at once with the interim text and the cat.
    let started = Instant::now();
    let reply = bot
        .message("ask why is the sky blue, slowly? and a cat")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 200);
    assert!(reply.text.contains(INTERIM), "{}", reply.text);
    assert!(reply.text.contains(CAT_URL), "{}", reply.text);
    // Then the answer, through the API: From and To swapped. The first
    // request was rate-limited, and retried after its Retry-After.
    let sent = fakes.wait_sent(1, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let form = &sent[0];
    assert_eq!(field(form, "To"), ["whatsapp:+14155550100"]);
    assert_eq!(field(form, "From"), ["whatsapp:+14155238886"]);
    assert_eq!(
        field(form, "Body"),
        ["Answer: why is the sky blue, slowly? and a cat"]
    );
    assert!(field(form, "MediaUrl").is_empty());
    assert_eq!(*fakes.attempts.lock().unwrap(), 2, "429, then taken");
    assert!(
        took >= Duration::from_millis(3400),
        "2.5 s + 1 s Retry-After: {took:?}"
    );
    let metrics = bot.metrics().await;
    for line in [
        r#"wasmbot_replies_later_total{plugin="ask",outcome="deferred"} 1"#,
        r#"wasmbot_replies_later_total{plugin="ask",outcome="sent"} 1"#,
        r#"wasmbot_plugin_calls_total{plugin="ask",outcome="reply"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_sends_the_apology_and_the_caps_hold() {
    let fakes = Fakes::start(false).await;
    let bot = bot(&fakes, true, |c| {
        c.later.max_calls_per_plugin = 1;
        c.later.timeout = Duration::from_millis(1500);
    })
    .await;
    // The model fails: the interim now, the apology later.
    let reply = bot.message("ask something broken").await;
    assert_eq!(only_body(reply.twiml()), INTERIM);
    let sent = fakes.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(field(&sent[0], "Body"), [APOLOGY]);

    // One deferred call at a time for this plugin: while a slow one runs,
    // the next question is told so, at once. The slow one runs out of its
    // later time limit (1.5 s < 2.5 s): the apology again.
    let slow = bot.message_in_background("ask slow one");
    let started = Instant::now();
    let deferred = r#"wasmbot_replies_later_total{plugin="ask",outcome="deferred"} 2"#;
    while !bot.metrics().await.contains(deferred) {
        assert!(started.elapsed() < Duration::from_secs(5), "never deferred");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = bot.message("ask quick one").await;
    assert_eq!(only_body(busy.twiml()), BUSY);
    assert_eq!(busy.status, 200);
    assert_eq!(only_body(slow.await.unwrap().twiml()), INTERIM);
    let sent = fakes.wait_sent(2, Duration::from_secs(10)).await;
    assert_eq!(field(&sent[1], "Body"), [APOLOGY]);
    // Its request was given what was left of the call's time (not more):
    // the plugin saw the time-out and failed.
    let metrics = bot.metrics().await;
    assert!(
        metrics.contains(r#"wasmbot_plugin_failures_total{plugin="ask",kind="failed"} 2"#),
        "{metrics}"
    );
    assert!(captured_log().contains("the model API timed out"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_plugin_answers_now() {
    let fakes = Fakes::start(false).await;
    let bot = bot(&fakes, false, |_| {}).await;
    let reply = bot.message("ask quick one").await;
    assert_eq!(only_body(reply.twiml()), "Answer: quick one");
    assert!(captured_log().contains("answering now: replies later are unavailable"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*fakes.attempts.lock().unwrap(), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_defers_and_never_ends_is_cut_at_the_later_limit() {
    // The attack: defer, then hold the instance (memory, a pool slot, a
    // place among the deferred calls) for ever.
    let fakes = Fakes::start(false).await;
    let bot = Bot::start(&[("fetcher.wasm", FETCHER)], |c| {
        c.twilio_api = Some(Credentials {
            account_sid: ACCOUNT.into(),
            api_key: None,
            secret: Secret(TOKEN.into()),
        });
        c.twilio_api_url = fakes.url("");
        c.later.timeout = Duration::from_millis(2500);
        c.later.max_calls = 1;
    })
    .await;
    let started = Instant::now();
    let reply = bot.message("deferspin").await;
    assert_eq!(only_body(reply.twiml()), "spinning");
    // The only place is taken: the next one may not defer.
    let busy = bot.message("deferspin").await;
    assert_eq!(only_body(busy.twiml()), "Err(Error::Busy)");
    // Cut at 2.5 s after its message arrived (past the 2 s plugin limit):
    // the apology goes out, and the place is free again.
    let sent = fakes.wait_sent(1, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(field(&sent[0], "Body"), [APOLOGY]);
    assert!(
        (Duration::from_millis(2400)..Duration::from_secs(5)).contains(&took),
        "{took:?}"
    );
    let metrics = bot.metrics().await;
    assert!(
        metrics.contains(r#"wasmbot_plugin_failures_total{plugin="fetcher",kind="timeout"} 1"#),
        "{metrics}"
    );
    assert_eq!(bot.state.dispatcher.later.as_ref().unwrap().running(), 0);
    let again = bot.message("deferspin").await;
    assert_eq!(only_body(again.twiml()), "spinning");
    bot.stop().await;
}
