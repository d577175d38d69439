//! `wasi:http/outgoing-handler`: a plugin's own HTTP client (Rust's wstd
//! here; JavaScript's fetch and Python's helper in `authoring`) under the
//! same policy as the host's `http` import. Each attack of the `fetcher`
//! fixture reproduces one way around that policy; the host's answer is
//! what the fixture replies.

use std::time::{Duration, Instant};
use wasmbot_tests::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_http_requests_meet_the_same_policy_as_the_http_import() {
    let stub = Stub::start().await;
    let base = stub.url("");
    let bot = Bot::start(
        &[
            ("quote.wasm", QUOTE),
            ("cat.wasm", CAT),
            ("fetcher.wasm", FETCHER),
        ],
        |c| {
            c.env
                .insert("WASMBOT_QUOTE__URL".into(), stub.url("/random"));
            // The operator's URL value grants the stub (on loopback).
            c.env.insert("WASMBOT_FETCHER__BASE_URL".into(), base);
            // A public-only grant of a name that resolves to loopback.
            c.env
                .insert("WASMBOT_FETCHER__ALLOWED_HOSTS".into(), "localhost".into());
            c.plugin_timeout = Duration::from_millis(1500);
        },
    )
    .await;
    let port = stub.addr.port();
    let redirect = format!("status 307 to http://localhost:{port}/random:");
    let attacks: &[(&str, &str)] = &[
        // What works: GET, and POST with a body and its content type.
        ("get", r#"status 200: {"_id":"s1","content":"Stay hungry."#),
        ("post", "status 200: got 5 bytes of application/json"),
        // Not granted; granted only as a public host; too slow.
        ("forbidden", "error: ErrorCode::HttpRequestDenied"),
        ("private", "error: ErrorCode::HttpRequestDenied"),
        ("slowhttp", "error: ErrorCode::HttpResponseTimeout"),
        // 4 through `http` and 6 through wasi:http make the 10 allowed.
        (
            "manyhttp",
            "10 ok, last: error: ErrorCode::HttpRequestDenied",
        ),
        // A redirect to another host comes back to the guest: its next
        // request would be checked like any other.
        ("redirect", &redirect),
        // Tunnels and request echoes are not for plugins.
        (
            "connect",
            "error: ErrorCode::HttpRequestDenied; error: ErrorCode::HttpRequestDenied",
        ),
        ("bigresponse", "error: ErrorCode::HttpResponseBodySize"),
        // Started at once, sent two at a time: a call's connections.
        ("parallel", "most at once: 2"),
    ];
    for (attack, expected) in attacks {
        let said = fetcher_says(&bot, attack).await;
        assert!(said.starts_with(expected), "{attack}: {said:.300}");
    }
    // A Host header of the plugin's choosing never reaches the server:
    // wasi:http refuses to set it.
    let said = fetcher_says(&bot, "hostheader").await;
    assert!(said.contains("HeaderError::Forbidden"), "{said}");
    assert!(!said.contains("host header:"), "{said}");
    // A request body over the size cap is not sent. (Whether the guest
    // sees the code or its body stream closing first is a race inside
    // wstd: both are errors, and nothing reaches the stub.)
    let said = fetcher_says(&bot, "bigbody").await;
    assert!(said.starts_with("error: "), "{said}");
    assert!(!said.contains("got"), "{said}");
    // The host's side is logged by the task that streamed the body, which
    // may end just after the plugin answered.
    let refused = "http failed: HTTP request body size exceeds limit: 1048576 bytes";
    eventually("the refusal logged", Duration::from_secs(5), async || {
        let log = captured_log();
        if log.contains(refused) {
            Ok(())
        } else {
            Err(format!("{log:.2000}"))
        }
    })
    .await;
    bot.stop().await;
}

/// What the fetcher answered to `attack`, next to quote and cat, which
/// always answer.
async fn fetcher_says(bot: &Bot, attack: &str) -> String {
    let started = Instant::now();
    let answer = bot.dispatch(&format!("quote and a cat {attack}")).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{attack}: took {:?}",
        started.elapsed()
    );
    assert_eq!(
        answer.answered,
        ["fetcher", "quote", "cat"],
        "{attack}: {:?}",
        answer.failed
    );
    let bodies: Vec<&str> = answer
        .messages
        .iter()
        .filter_map(|m| m.body.as_deref())
        .collect();
    let body = bodies.join("\n\n");
    assert!(body.contains(STUB_QUOTE), "{attack}: {body:.200}");
    body.split("\n\n").next().unwrap().to_owned()
}

/// Host memory a plugin can make the host hold through wasi:http
/// resources is bounded: the call traps, the others answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_wasi_http_resources_trap_the_plugin_alone() {
    let bot = Bot::start(&[("cat.wasm", CAT), ("fetcher.wasm", FETCHER)], |_| {}).await;
    let answer = bot.dispatch("a cat and manyfields").await;
    assert_eq!(answer.answered, ["cat"]);
    let failed: std::collections::BTreeMap<_, _> = answer.failed.into_iter().collect();
    let why = failed["fetcher"].to_string();
    assert!(why.starts_with("trapped: "), "{why}");
    assert!(why.contains("resource table has no free keys"), "{why}");
    bot.stop().await;
}

/// The Rust example that fetches with wstd: its joke from the stub, and
/// an apology, with nothing sent, while its default host is not granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_joke_example_fetches_with_wstd() {
    let stub = Stub::start().await;
    let bot = Bot::start(&[("joke.wasm", JOKE), ("cat.wasm", CAT)], |c| {
        c.env.insert("WASMBOT_JOKE__URL".into(), stub.url("/joke"));
    })
    .await;
    let xml = bot.message("tell me a joke").await.twiml().to_owned();
    assert_eq!(only_body(&xml), STUB_JOKE.replace('\'', "&apos;"), "{xml}");
    bot.stop().await;

    let bot = Bot::start(&[("joke.wasm", JOKE)], |_| {}).await;
    let xml = bot.message("joke please").await.twiml().to_owned();
    assert_eq!(
        only_body(&xml),
        "Sorry, I cannot think of a joke right now.",
        "{xml}"
    );
    let log = captured_log();
    assert!(
        log.contains("http failed: refused: icanhazdadjoke.com is not an allowed host"),
        "{log:.3000}"
    );
    // A wasi:http plugin's URL default asks for its host, like `http`'s.
    let joke = bot.plugin("joke").await;
    assert_eq!(
        joke["requested"],
        serde_json::json!([{"host": "icanhazdadjoke.com", "setting": "url", "granted": false}])
    );
    bot.stop().await;
}
