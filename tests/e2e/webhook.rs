//! The seed's behaviour through real HTTP, and bad input at the edge.

use std::time::Duration;
use wasmbot_tests::fixture::*;

async fn quote_and_cat(stub: &Stub) -> Bot {
    with_quotes_from(
        stub.url("/random"),
        &[("quote.wasm", QUOTE), ("cat.wasm", CAT)],
    )
    .await
}

/// A bot with `files`, its quote plugin pointed at `url`.
async fn with_quotes_from(url: String, files: &[PluginFile<'_>]) -> Bot {
    Bot::start(files, |c| {
        c.env.insert("WASMBOT_QUOTE__URL".into(), url);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_conversations() {
    let stub = Stub::start().await;
    let bot = quote_and_cat(&stub).await;
    let cases = [
        ("hello", twiml(&[(Some(APOLOGY), None)])),
        ("", twiml(&[(Some(APOLOGY), None)])),
        ("cat", twiml(&[(None, Some(CAT_URL))])),
        ("quote", twiml(&[(Some(STUB_QUOTE), None)])),
        // One message: the quote is the picture's caption.
        (
            "Quote AND a CAT please",
            twiml(&[(Some(STUB_QUOTE), Some(CAT_URL))]),
        ),
    ];
    for (body, expected) in cases {
        let reply = bot.message(body).await;
        assert_eq!(reply.twiml(), expected, "message {body:?}");
    }
    bot.stop().await;
}

/// Merge by channel: two plugins that each send a picture make one MMS
/// over SMS (up to 10 media per message) and two messages on WhatsApp
/// (one media per message), with the quote as the first one's caption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_gets_its_pictures_in_one_message_whatsapp_one_per_message() {
    let stub = Stub::start().await;
    let files = [
        ("quote.wasm", QUOTE),
        ("cat.wasm", CAT),
        ("kitten.wasm", CAT),
    ];
    let bot = with_quotes_from(stub.url("/random"), &files).await;
    let body = "a quote and a cat";
    let whatsapp = bot.message(body).await;
    assert_eq!(
        whatsapp.twiml(),
        twiml(&[(Some(STUB_QUOTE), Some(CAT_URL)), (None, Some(CAT_URL))])
    );
    let mut sms = whatsapp_form(body);
    for (name, value) in &mut sms {
        match name.as_str() {
            "From" => *value = "+14155550100".into(),
            "To" => *value = "+14155238886".into(),
            _ => {}
        }
    }
    let sms = bot.post_form(&sms, &[]).await;
    assert_eq!(
        sms.twiml(),
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message><Body>{STUB_QUOTE}</Body><Media>{CAT_URL}</Media><Media>{CAT_URL}</Media></Message></Response>"#
        )
    );
    bot.stop().await;
}

/// Triggers (contract 0.2): a message starts only the plugins whose
/// triggers it matches; a plugin built for 0.1 still gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_starts_only_the_plugins_it_triggers() {
    let stub = Stub::start().await;
    let files = [
        ("quote.wasm", QUOTE),
        ("cat.wasm", CAT),
        ("trap.wasm", TRAP),
    ];
    let bot = with_quotes_from(stub.url("/counted"), &files).await;
    let sent = ["hello", "cat", "quote", "a Quote and a cat", "politely"];
    for body in sent {
        bot.message(body).await;
    }
    let listing = bot.plugins().await;
    let plugin = |id: &str| {
        listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()
            .clone()
    };
    let (quote, cat, trap) = (plugin("quote"), plugin("cat"), plugin("trap"));
    assert_eq!(quote["calls"], 2, "{quote}");
    assert_eq!(cat["calls"], 2, "{cat}");
    assert_eq!(trap["calls"], sent.len(), "0.1: every message: {trap}");
    assert_eq!(quote["contract"], "0.2.x");
    assert_eq!(
        quote["triggers"],
        serde_json::json!([{"contains": "quote"}])
    );
    assert_eq!(trap["contract"], "0.1.x");
    assert_eq!(trap["triggers"], serde_json::json!(["everything"]));
    // The upstream was fetched for the two quote messages only.
    let reply = bot.message("quote").await;
    assert!(reply.twiml().contains("Call 3."), "{}", reply.twiml());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_and_health_are_reported() {
    let stub = Stub::start().await;
    let bot = quote_and_cat(&stub).await;
    let health = bot.client.get(bot.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = bot.client.get(bot.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");

    let listing = bot.plugins().await;
    let store = listing["state"]["store"].as_str().unwrap();
    assert!(
        store.starts_with("sqlite ") && store.ends_with("state.sqlite3"),
        "{store}"
    );
    assert_eq!(listing["state"]["max_keys"], 10_000);
    let plugins = listing["plugins"].as_array().unwrap();
    let names: Vec<_> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quote", "cat"], "merge order: priority, then name");
    let quote = &plugins[0];
    assert_eq!(quote["file"], "quote.wasm");
    assert_eq!(quote["version"], "0.1.0");
    assert_eq!(quote["sha256"].as_str().unwrap().len(), 64);
    assert!(quote["loaded_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(quote["id"], "quote");
    assert_eq!(
        quote["hosts"],
        serde_json::json!([{"host": "127.0.0.1", "private": true, "by": "environment WASMBOT_QUOTE__URL"}])
    );
    assert_eq!(
        quote["requested"],
        serde_json::json!([{"host": "api.quotable.io", "setting": "url", "granted": false}])
    );
    assert_eq!(quote["configured"]["url"], "environment WASMBOT_QUOTE__URL");
    assert_eq!(quote["settings"][0]["key"], "url");
    assert_eq!(listing["errors"], serde_json::json!([]));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx() {
    let bot = Bot::start(&[("cat.wasm", CAT)], |_| {}).await;
    let c = &bot.client;
    let url = bot.url("/bot");

    let get = c.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);

    let json = c
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"Body":"cat"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    assert!(json.text().await.unwrap().contains("x-www-form-urlencoded"));

    let bare = c.post(&url).body("Body=cat").send().await.unwrap();
    assert_eq!(bare.status(), 415);

    let huge = format!("Body={}", "a".repeat(100 * 1024));
    let too_big = c
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    let missing = c.get(bot.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Malformed but form-typed input is parsed leniently, never a 5xx.
    for body in [&b"Body=%ZZcat%"[..], b"&&==&Body", b"Body=\xff\xfecat", b""] {
        let r = c
            .post(&url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(body));
    }
    // ... and the bot still answers properly afterwards.
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_repeated_params_reach_the_plugins_untouched() {
    // The cat plugin only reads Body; what matters is that odd input does
    // not disturb parsing of the fields that follow it.
    let bot = Bot::start(&[("cat.wasm", CAT)], |_| {}).await;
    let mut form = vec![
        ("NewTwilioParam".to_string(), "x".to_string()),
        ("NewTwilioParam".to_string(), "y".to_string()),
        (
            "ChannelMetadata".to_string(),
            r#"{"type":"whatsapp"}"#.to_string(),
        ),
    ];
    form.extend(whatsapp_form("a CAT & a <dog>"));
    let reply = bot.post_form(&form, &[]).await;
    assert_eq!(reply.twiml(), twiml(&[(None, Some(CAT_URL))]));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_messages_in_flight_finish() {
    let stub = Stub::start().await;
    let bot = with_quotes_from(stub.url("/slow"), &[("quote.wasm", QUOTE)]).await;
    let in_flight = bot.message_in_background("quote");
    tokio::time::sleep(Duration::from_millis(150)).await;
    bot.stop().await;
    let xml = in_flight.await.unwrap().twiml().to_owned();
    assert!(bundled_quotes().contains(&only_body(&xml)), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_token_gets_the_same_reply() {
    let stub = Stub::start().await;
    let bot = with_quotes_from(stub.url("/counted"), &[("quote.wasm", QUOTE)]).await;
    let form = whatsapp_form("quote");
    let token = |t| [("i-twilio-idempotency-token", t)];
    let first = bot.post_form(&form, &token("t-1")).await.twiml().to_owned();
    assert_eq!(only_body(&first), "Call 1. - Counter");
    let retry = bot.post_form(&form, &token("t-1")).await.twiml().to_owned();
    assert_eq!(retry, first, "a retry must not run the plugins again");
    let other = bot.post_form(&form, &token("t-2")).await.twiml().to_owned();
    assert_eq!(only_body(&other), "Call 2. - Counter");
    let untokened = bot.message("quote").await.twiml().to_owned();
    assert_eq!(only_body(&untokened), "Call 3. - Counter");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_cap_messages_are_shed_with_503() {
    let stub = Stub::start().await;
    let slow = stub.url("/slow");
    let bot = Bot::start(&[("quote.wasm", QUOTE)], |c| {
        c.env.insert("WASMBOT_QUOTE__URL".into(), slow);
        c.max_in_flight = 1;
    })
    .await;
    let slow_one = bot.message_in_background("quote");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let shed = bot
        .client
        .post(bot.url("/bot"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&whatsapp_form("hello")))
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let metrics = bot.metrics().await;
    assert!(
        metrics.contains("wasmbot_messages_total{outcome=\"shed\"} 1\n"),
        "{metrics:.600}"
    );
    assert_eq!(slow_one.await.unwrap().status, 200);
    // Capacity is back once the slow one is answered.
    assert_eq!(bot.message("hello").await.status, 200);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_in_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let bot = Bot::start(&[("cat.wasm", CAT)], |_| {}).await;
    let mut conn = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
    conn.write_all(
        b"POST /bot HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nBody=c",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut response = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut response))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let head = String::from_utf8_lossy(&response[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    // Other requests were served meanwhile and still are.
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_messages_calls_and_failures_for_prometheus() {
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Bot::start(
        &[
            ("quote.wasm", QUOTE),
            ("cat.wasm", CAT),
            ("trap.wasm", TRAP),
        ],
        |c| {
            c.env.insert("WASMBOT_QUOTE__URL".into(), url);
            c.admin_token = Some(wasmbot::config::Secret("metrics-token".into()));
        },
    )
    .await;
    bot.message("quote and a cat").await;
    bot.message("cat").await;
    bot.message("hello").await;
    let token = [("i-twilio-idempotency-token", "t-m")];
    let form = whatsapp_form("quote");
    bot.post_form(&form, &token).await;
    bot.post_form(&form, &token).await;
    let text = bot.metrics().await;
    let has = |line: &str| {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    };
    has("# TYPE wasmbot_messages_total counter");
    has("wasmbot_messages_total{outcome=\"answered\"} 3");
    has("wasmbot_messages_total{outcome=\"replayed\"} 1");
    has("wasmbot_plugin_calls_total{plugin=\"cat\",outcome=\"reply\"} 2");
    has("wasmbot_plugin_calls_total{plugin=\"quote\",outcome=\"reply\"} 2");
    has("wasmbot_messages_total{outcome=\"apology\"} 1");
    has("wasmbot_plugin_failures_total{plugin=\"trap\",kind=\"trap\"} 4");
    has("wasmbot_plugin_call_duration_seconds_count{plugin=\"cat\"} 2");
    has("wasmbot_message_duration_seconds_count 4");
    has("wasmbot_plugins_loaded 3");
    has("wasmbot_plugin_load_errors 0");
    has("wasmbot_state_store_errors_total 0");
    assert!(
        text.contains("wasmbot_plugin_folder_scans_total "),
        "{text}"
    );
    // The operator's credential, as for /plugins.
    let anonymous = bot.client.get(bot.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    bot.stop().await;
}
