//! Measures the server's memory (RSS) while a hostile plugin attacks it,
//! next to quote and cat: every message makes the hostile plugin grow its
//! memory to the cap (`membomb`) or answer 10 MB of text (`bigtext`).
//!
//!     cargo run --release -p wasmbot-tests --example hostile_rss [-- MESSAGES CONCURRENCY]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmbot_tests::fixture::*;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let messages = args.first().copied().unwrap_or(400);
    let concurrency = args.get(1).copied().unwrap_or(8);
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Arc::new(
        Bot::start(
            &[
                ("quote.wasm", QUOTE),
                ("cat.wasm", CAT),
                ("hostile.wasm", HOSTILE),
            ],
            |c| {
                c.env.insert("WASMBOT_QUOTE__URL".into(), url);
            },
        )
        .await,
    );
    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let bot = bot.clone();
        workers.push(tokio::spawn(async move {
            for i in (w..messages).step_by(concurrency) {
                let attack = if i % 2 == 0 { "membomb" } else { "bigtext" };
                let reply = bot.message(&format!("quote and a cat {attack}")).await;
                let xml = reply.twiml();
                assert!(
                    xml.contains(STUB_QUOTE) && xml.contains(CAT_URL),
                    "{xml:.300}"
                );
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let after = rss_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{messages} hostile messages ({concurrency} at once) in {:.1} s, every reply correct\n\
         RSS before {:.0} MiB, peak {:.0} MiB, after {:.0} MiB (instance memory cap 64 MiB)",
        started.elapsed().as_secs_f64(),
        mib(before),
        mib(peak.load(Ordering::Relaxed)),
        mib(after),
    );
}
