//! The quote plugin against a failing upstream: a bundled quote, in time.

use std::time::{Duration, Instant};
use wasmbot_tests::fixture::*;

async fn quote_bot(url: String) -> Bot {
    Bot::start(&[("quote.wasm", QUOTE), ("cat.wasm", CAT)], |c| {
        c.env.insert("WASMBOT_QUOTE__URL".into(), url);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_array_shape_works_too() {
    let stub = Stub::start().await;
    let bot = quote_bot(stub.url("/quotes/random")).await;
    let xml = bot.message("quote").await.twiml().to_owned();
    assert_eq!(only_body(&xml), "Arrays too. - Array Author");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_gives_a_bundled_quote_in_time() {
    let stub = Stub::start().await;
    // 500, not JSON, slower than the HTTP limit (500 ms in the fixture),
    // nothing listening, and a host the plugin may not reach.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for url in [
        stub.url("/fail"),
        stub.url("/garbage"),
        stub.url("/slow"),
        format!("http://{closed}/random"),
    ] {
        let bot = quote_bot(url.clone()).await;
        let started = Instant::now();
        let reply = bot.message("quote and a cat").await;
        let took = started.elapsed();
        let xml = reply.twiml();
        assert!(bundled_quotes().contains(&only_body(xml)), "{url}: {xml}");
        assert!(
            xml.contains(&format!("<Media>{CAT_URL}</Media>")),
            "{url}: {xml}"
        );
        assert!(took < Duration::from_millis(1500), "{url}: took {took:?}");
        bot.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_to_allowed_hosts() {
    let stub = Stub::start().await;
    let bot = quote_bot(stub.url("/same-host")).await;
    let quote = bot.plugin("quote").await;
    assert_eq!(quote["hosts"][0]["host"], "127.0.0.1");
    assert_eq!(quote["hosts"][0]["by"], "environment WASMBOT_QUOTE__URL");
    assert_eq!(quote["hosts"].as_array().unwrap().len(), 1);
    let xml = bot.message("quote").await.twiml().to_owned();
    assert_eq!(only_body(&xml), STUB_QUOTE, "same host: followed");
    bot.stop().await;

    // `localhost` is the same machine but not an allowed host name: the
    // hop is refused and the plugin falls back to a bundled quote.
    let bot = quote_bot(stub.url("/other-host")).await;
    let xml = bot.message("quote").await.twiml().to_owned();
    assert!(bundled_quotes().contains(&only_body(&xml)), "{xml}");
    bot.stop().await;
}
