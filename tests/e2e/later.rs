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

/// How the fake Twilio answers the first Messages request (the others
/// are taken).
#[derive(Clone, Copy)]
enum First {
    Take,
    /// 429 with `Retry-After: 1`, as Twilio's rate limit answers.
    Throttle,
    /// Twilio's own 503 with a `Retry-After` of `secs` seconds, to the
    /// first `times` requests.
    Unavailable {
        secs: u64,
        times: usize,
    },
    /// No answer for a minute: the request is in flight.
    Hold,
}

/// A form as Twilio received it.
type Form = Vec<(String, String)>;

/// A fake Twilio (`POST /2010-04-01/Accounts/{sid}/Messages.json`) and a
/// fake model API (`POST /v1/chat/completions`: a question with "brief"
/// is answered after 300 ms, "slow" after 2.5 s, "sluggish" after 6 s, one
/// with "broken" gets a 500 after 300 ms; others at once).
struct Fakes {
    addr: std::net::SocketAddr,
    /// The forms Twilio took, in order.
    sent: Arc<Mutex<Vec<Form>>>,
    /// Requests to the Messages API, refused ones included.
    attempts: Arc<Mutex<usize>>,
}

impl Fakes {
    async fn start(first: First) -> Fakes {
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
                if account != ACCOUNT || auth != Some(basic.as_str()) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [("retry-after", String::new())],
                        String::new(),
                    );
                }
                match first {
                    First::Unavailable { secs, times } if n <= times => {
                        let error =
                            r#"{"code":20503,"message":"Service Unavailable","status":503}"#;
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", secs.to_string())],
                            error.into(),
                        );
                    }
                    _ if n > 1 => {}
                    First::Take | First::Unavailable { .. } => {}
                    First::Throttle => {
                        let error = r#"{"code":20429,"message":"Too Many Requests","status":429}"#;
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "1".to_owned())],
                            error.into(),
                        );
                    }
                    First::Hold => tokio::time::sleep(Duration::from_secs(60)).await,
                }
                let form: Form = form_urlencoded::parse(body.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                took.lock().unwrap().push(form);
                let sid = format!("SM{:032x}", n);
                (
                    StatusCode::CREATED,
                    [("retry-after", String::new())],
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
            if question.contains("brief") || question.contains("broken") {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if question.contains("broken") {
                return (StatusCode::INTERNAL_SERVER_ERROR, String::from("{}"));
            }
            if question.contains("slow") {
                tokio::time::sleep(Duration::from_millis(2500)).await;
            }
            if question.contains("sluggish") {
                tokio::time::sleep(Duration::from_secs(6)).await;
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
        eventually(&format!("{n} messages sent"), limit, async || {
            let sent = self.sent.lock().unwrap().clone();
            if sent.len() >= n {
                Ok(sent)
            } else {
                Err(format!("{} sent: {sent:?}", sent.len()))
            }
        })
        .await
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Replies later through the fake Twilio, with the account's Auth Token.
fn send_through(c: &mut Config, fakes: &Fakes) {
    c.twilio_api = Some(Credentials {
        account_sid: ACCOUNT.into(),
        api_key: None,
        secret: Secret(TOKEN.into()),
    });
    c.twilio_api_url = fakes.url("");
}

/// A bot with `ask` (pointed at the fake model) and `cat`; `twilio` sends
/// replies later through the fake Twilio.
async fn bot(fakes: &Fakes, twilio: bool, configure: impl FnOnce(&mut Config)) -> Bot {
    let model = fakes.url("/v1/chat/completions");
    Bot::start(&[("ask.wasm", ASK), ("cat.wasm", CAT)], |c| {
        c.env.insert("WASMBOT_ASK__URL".into(), model);
        if twilio {
            send_through(c, fakes);
        }
        c.later.timeout = Duration::from_secs(10);
        configure(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_sent_later_through_the_messages_api() {
    let fakes = Fakes::start(First::Throttle).await;
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
    // The send is counted once Twilio's answer is in, after the fake
    // recorded the request.
    let metrics = eventually("the send counted", Duration::from_secs(5), async || {
        let metrics = bot.metrics().await;
        if metrics.contains(r#"outcome="sent"} 1"#) {
            Ok(metrics)
        } else {
            Err(metrics)
        }
    })
    .await;
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
    let fakes = Fakes::start(First::Take).await;
    let bot = bot(&fakes, true, |c| {
        c.later.max_calls_per_plugin = 1;
        c.later.timeout = Duration::from_millis(3500);
    })
    .await;
    // The model fails: the interim now, the apology later.
    let reply = bot.message("ask something broken").await;
    assert_eq!(only_body(reply.twiml()), INTERIM);
    let sent = fakes.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(field(&sent[0], "Body"), [APOLOGY]);

    // One deferred call at a time for this plugin: while a slow one runs,
    // the next question is told so, at once.
    let started = Instant::now();
    let slow = bot.message_in_background("ask sluggish one");
    let deferred = r#"wasmbot_replies_later_total{plugin="ask",outcome="deferred"} 2"#;
    while !bot.metrics().await.contains(deferred) {
        assert!(started.elapsed() < Duration::from_secs(5), "never deferred");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = bot.message("ask quick one").await;
    assert_eq!(busy.status, 200);
    assert_eq!(only_body(busy.twiml()), BUSY);
    assert_eq!(only_body(slow.await.unwrap().twiml()), INTERIM);
    // The slow one's request gets nine tenths of what is left of its
    // later time limit (3.5 s from its message: past the 2 s plugin limit
    // and the 500 ms HTTP limit), not the model's 6 s: the plugin sees the
    // time-out and fails, and the apology goes out.
    let sent = fakes.wait_sent(2, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(field(&sent[1], "Body"), [APOLOGY]);
    assert!(
        (Duration::from_millis(2900)..Duration::from_millis(5000)).contains(&took),
        "{took:?}"
    );
    let metrics = bot.metrics().await;
    assert!(
        metrics.contains(r#"wasmbot_plugin_failures_total{plugin="ask",kind="failed"} 2"#),
        "{metrics}"
    );
    assert!(captured_log().contains("the model API timed out"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_call_done_while_others_run_replies_in_the_answer() {
    // fetcher defers, then answers 50 ms later; quote takes 150 ms (its
    // upstream is slow and not JSON: a bundled quote). By the time the
    // webhook is answered, fetcher's answer is there: it goes in it.
    let fakes = Fakes::start(First::Take).await;
    let stub = Stub::start().await;
    let bot = Bot::start(&[("fetcher.wasm", FETCHER), ("quote.wasm", QUOTE)], |c| {
        send_through(c, &fakes);
        c.env
            .insert("WASMBOT_QUOTE__URL".into(), stub.url("/inflight"));
    })
    .await;
    let reply = bot.message("deferwait, and a quote").await;
    assert!(reply.text.contains("waited answer"), "{}", reply.text);
    assert!(!reply.text.contains("wait for it"), "{}", reply.text);
    let quote = bundled_quotes()
        .into_iter()
        .any(|q| reply.text.contains(&q));
    assert!(quote, "{}", reply.text);
    let metrics = bot.metrics().await;
    for line in [
        r#"wasmbot_replies_later_total{plugin="fetcher",outcome="deferred"} 1"#,
        r#"wasmbot_replies_later_total{plugin="fetcher",outcome="inline"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*fakes.attempts.lock().unwrap(), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_call_done_at_once_replies_in_the_answer() {
    // Deferring and answering at once: the answer is ready before the
    // webhook's, so it goes there, and nothing through the Messages API.
    let fakes = Fakes::start(First::Take).await;
    let bot = Bot::start(&[("fetcher.wasm", FETCHER)], |c| {
        send_through(c, &fakes);
    })
    .await;
    for _ in 0..5 {
        let reply = bot.message("deferquick").await;
        assert_eq!(only_body(reply.twiml()), "quick answer");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*fakes.attempts.lock().unwrap(), 0);
    assert_eq!(bot.state.dispatcher.later.as_ref().unwrap().running(), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_plugin_answers_now() {
    let fakes = Fakes::start(First::Take).await;
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
    let fakes = Fakes::start(First::Take).await;
    let bot = Bot::start(&[("fetcher.wasm", FETCHER)], |c| {
        send_through(c, &fakes);
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

/// Waits until the fake Twilio saw `n` requests.
async fn wait_attempts(fakes: &Fakes, n: usize) {
    let started = Instant::now();
    while *fakes.attempts.lock().unwrap() < n {
        assert!(started.elapsed() < Duration::from_secs(10), "no request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Processes on one state store (a file, or Redis), with a lease of 1 s:
/// what one leaves, another finds within ~1.5 s.
fn shared_state(state: wasmbot::state::Location) -> impl Fn(&mut Config) + Clone + use<> {
    move |c: &mut Config| {
        c.state = state.clone();
        c.later.lease = Duration::from_secs(1);
    }
}

/// POSTs a WhatsApp message saying `body` with its own `MessageSid`, so
/// that the log lines about it are this test's.
async fn message_with_sid(bot: &Bot, body: &str, sid: &str) -> Reply {
    let mut form = whatsapp_form(body);
    for (name, value) in &mut form {
        if name == "MessageSid" {
            *value = sid.to_owned();
        }
    }
    bot.post_form(&form, &[]).await
}

/// Whether one line of the log says both.
fn logged(what: &str, sid: &str) -> bool {
    captured_log()
        .lines()
        .any(|line| line.contains(what) && line.contains(sid))
}

/// A reply waits in `state` (Twilio said 503, come back in 5 s: surely
/// not sent) when its process stops; `second` (started after the first
/// stopped, or running beside it) takes it over and sends it, once.
async fn a_pending_reply_is_taken_over(state: wasmbot::state::Location, beside: bool, sid: &str) {
    // The first attempt of each process is told 503: the second process
    // is still waiting to try again when the first one's retry wakes up,
    // finds the reply taken over, and must leave it alone.
    let fakes = Fakes::start(First::Unavailable { secs: 5, times: 2 }).await;
    let shared = shared_state(state);
    let first = bot(&fakes, true, shared.clone()).await;
    let mut second = None;
    if beside {
        second = Some(bot(&fakes, true, shared.clone()).await);
    }
    let reply = message_with_sid(&first, "ask brief one", sid).await;
    assert_eq!(only_body(reply.twiml()), INTERIM);
    // The process stops while the reply waits (its sending task, which a
    // real exit would end, is left asleep in this test process).
    wait_attempts(&fakes, 1).await;
    let stopped = Instant::now();
    first.stop().await;
    let second = match second {
        Some(running) => running,
        None => bot(&fakes, true, shared).await,
    };
    let sent = fakes.wait_sent(1, Duration::from_secs(15)).await;
    assert_eq!(field(&sent[0], "Body"), ["Answer: brief one"]);
    assert!(logged(
        "sending a reply later that a stopped replica left",
        sid
    ));
    // Once in all: the first process's retry (at 5 s) sent nothing.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(stopped.elapsed())).await;
    assert_eq!(fakes.sent.lock().unwrap().len(), 1);
    assert_eq!(*fakes.attempts.lock().unwrap(), 3);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_pending_at_a_restart_is_sent_once_by_the_next_process() {
    let data = tempfile::tempdir().unwrap();
    let file = wasmbot::state::Location::File(data.path().join("state.sqlite3"));
    a_pending_reply_is_taken_over(file, false, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_pending_on_a_stopped_replica_is_sent_once_by_another() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = wasmbot::state::Location::parse(&redis.url()).unwrap();
    a_pending_reply_is_taken_over(url, true, "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_in_flight_at_a_crash_is_reported_not_sent_again() {
    let fakes = Fakes::start(First::Hold).await;
    let data = tempfile::tempdir().unwrap();
    let shared = shared_state(wasmbot::state::Location::File(
        data.path().join("state.sqlite3"),
    ));
    let first = bot(&fakes, true, shared.clone()).await;
    let sid = "SMcccccccccccccccccccccccccccccccc";
    message_with_sid(&first, "ask brief one", sid).await;
    // The request is out, unanswered, when the process stops: Twilio may
    // have taken the message.
    wait_attempts(&fakes, 1).await;
    first.stop().await;
    let second = bot(&fakes, true, shared).await;
    let started = Instant::now();
    let unknown = "whether Twilio took it is unknown, so it is not sent again";
    while !logged(unknown, sid) {
        assert!(started.elapsed() < Duration::from_secs(10), "not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*fakes.attempts.lock().unwrap(), 1, "not sent again");
    second.stop().await;
}
