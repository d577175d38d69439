//! Measures hot reload: the time from replacing a plugin file to the first
//! reply that shows the new behaviour, over 20 swaps.
//!
//!     cargo run --release -p wasmbot-tests --example reload_latency
//!     cargo run --release -p wasmbot-tests --example reload_latency -- [--cache] A.wasm B.wasm BODY
//!
//! Without arguments it swaps `bot.wasm` between the quote and cat
//! components (~100-200 KB). With two component files and a message body,
//! it swaps between those; each must answer BODY differently. The compiled
//! code cache is off, so every swap compiles (the worst case), unless
//! `--cache` is given: then every swap after the first two is a cache hit
//! (a known file put back).

use std::time::{Duration, Instant};
use wasmbot_tests::fixture::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cache = args.first().is_some_and(|a| a == "--cache");
    if cache {
        args.remove(0);
    }
    let cache_dir = tempfile::tempdir().unwrap();
    let (a, b, body) = match &args[..] {
        [] => (
            QUOTE.to_owned(),
            CAT.to_owned(),
            "a quote about a cat".to_owned(),
        ),
        [a, b, body] => (a.clone(), b.clone(), body.clone()),
        _ => panic!("usage: reload_latency [--cache] [A.wasm B.wasm BODY]"),
    };
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Bot::start(&[("bot.wasm", &a)], |c| {
        c.env.insert("WASMBOT_QUOTE__URL".into(), url);
        c.plugin_timeout = Duration::from_secs(5);
        c.cache_dir = cache.then(|| cache_dir.path().to_owned());
    })
    .await;
    let answer_a = answer(&bot, &body).await;
    copy_atomically(&b, &bot.plugin_path("bot.wasm"));
    bot.wait_for(&body, Duration::from_secs(60), |xml| xml != answer_a)
        .await;
    let answer_b = answer(&bot, &body).await;
    assert_ne!(answer_a, answer_b, "the two components answer alike");

    let mut times = Vec::new();
    for swap in 0..20 {
        let (file, expected) = if swap % 2 == 0 {
            (&a, &answer_a)
        } else {
            (&b, &answer_b)
        };
        let written = Instant::now();
        copy_atomically(file, &bot.plugin_path("bot.wasm"));
        loop {
            if &answer(&bot, &body).await == expected {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(60),
                "swap {swap} never showed"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(written.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let size = |f: &str| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    println!(
        "components: {a} ({} B), {b} ({} B)\ncache: {}\nswaps: {}\nwrite -> new behaviour: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        size(&a),
        size(&b),
        if cache { "on" } else { "off" },
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
    );
    bot.stop().await;
}

async fn answer(bot: &Bot, body: &str) -> String {
    bot.message(body).await.twiml().to_owned()
}
