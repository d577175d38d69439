//! One plugin call, as every message pays it per plugin: a fresh instance
//! from the pool, `handle`, and the store dropped (memory reset).
//!
//!     cargo bench -p wasmbot-bench --bench call
//!
//! With the runtime's default limits; the components are the repo's own
//! (built by the `wasmbot-tests` build script).

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmbot::message::Inbound;
use wasmbot::policy::{Grant, PluginId};
use wasmbot::runtime::{Limits, Plugin, Runtime};
use wasmbot_tests::fixture::whatsapp_form;

async fn load(runtime: &Arc<Runtime>, file: &str, id: &str) -> Plugin {
    let bytes = std::fs::read(file).unwrap();
    let compiled = runtime.compile(&bytes).unwrap();
    let id = PluginId::parse(id).unwrap();
    runtime.load(compiled, |_| Grant::none(id)).await.unwrap()
}

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(Runtime::new(Limits::default(), None).unwrap());
    let cat = rt.block_on(load(&runtime, wasmbot_tests::CAT, "cat"));
    let quote = rt.block_on(load(&runtime, wasmbot_tests::QUOTE, "quote"));
    let cases = [
        ("cat answers \"cat\"", &cat, "cat"),
        ("quote stays silent on \"hello\"", &quote, "hello"),
    ];
    let mut group = c.benchmark_group("one call (instantiate + handle + drop)");
    for (name, plugin, body) in cases {
        let msg = Inbound::from_params(whatsapp_form(body));
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let deadline = Instant::now() + Duration::from_secs(5);
                plugin.handle(&msg, deadline).await.unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, call);
criterion_main!(benches);
