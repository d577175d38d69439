//! Measures the server's memory (RSS) while a hostile plugin attacks it,
//! next to quote and cat, with the default limits (64 MiB per instance,
//! the memory budget sized from this machine's RAM): every message makes
//! the hostile plugin grow its memory to the cap (`membomb`) or answer
//! 10 MB of text (`bigtext`). Every message must be answered with quote
//! and cat (200) or refused for capacity (503); never without them.
//!
//!     cargo run --release -p wasmbot-tests --example hostile_rss [-- MESSAGES CONCURRENCY [BUDGET_MIB]]
//!
//! (defaults: 320 messages, 32 at once, the default budget; a huge
//! BUDGET_MIB shows what the per-instance cap alone allows.)

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
    let messages = args.first().copied().unwrap_or(320);
    let concurrency = args.get(1).copied().unwrap_or(32);
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
                if let Some(mib) = args.get(2) {
                    c.memory_budget = mib << 20;
                }
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
    let refused = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (bot, refused) = (bot.clone(), refused.clone());
        workers.push(tokio::spawn(async move {
            for i in (w..messages).step_by(concurrency) {
                let attack = if i % 4 == 3 { "bigtext" } else { "membomb" };
                let reply = bot.message(&format!("quote and a cat {attack}")).await;
                if reply.status == 503 {
                    refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
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
    let budget = bot
        .state
        .dispatcher
        .registry()
        .runtime()
        .memory_stats()
        .budget;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let after = rss_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "{messages} hostile messages ({concurrency} at once) in {:.1} s: {} answered with quote \
         and cat, {} refused with 503\n\
         RSS before {:.0} MiB, peak {:.0} MiB (growth {:.0} MiB), after {:.0} MiB \
         (64 MiB per instance, budget {} MiB for all)",
        started.elapsed().as_secs_f64(),
        messages as u64 - refused.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        mib(before),
        mib(peak),
        mib(peak.saturating_sub(before)),
        mib(after),
        budget >> 20,
    );
}
