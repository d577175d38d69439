//! Plugin state, one operation as the host performs it for a plugin, on
//! each backend: SQLite (a temp file) and Redis (a `redis-server` on
//! loopback, skipped with a line when it is not installed). And one whole
//! plugin call that makes a state operation (the `hoarder` fixture's
//! `count`: one `keys`), next to the same call on the other backend.
//!
//!     cargo bench -p wasmbot-bench --bench state

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmbot::message::Inbound;
use wasmbot::policy::{Grant, PluginId};
use wasmbot::runtime::{Limits, Runtime};
use wasmbot::state::{Location, Store};
use wasmbot_tests::fixture::{RedisServer, whatsapp_form};

fn state(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Redis's connection runs on this runtime.
    let _in_runtime = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut backends = vec![("sqlite", Location::File(dir.path().join("state.sqlite3")))];
    if let Some(server) = &redis {
        backends.push(("redis", Location::Redis(server.url())));
    }
    let count = Inbound::from_params(whatsapp_form("count"));
    for (name, location) in backends {
        let store = Arc::new(Store::open(&location, Default::default()).unwrap());
        rt.block_on(async {
            for i in 0..100 {
                store
                    .set("bench", &format!("key{i}"), vec![b'x'; 100], None)
                    .await
                    .unwrap();
            }
        });
        let mut group = c.benchmark_group(format!("state on {name}"));
        group.bench_function("get (100-byte value)", |b| {
            b.to_async(&rt)
                .iter(|| async { store.get("bench", "key7").await.unwrap() })
        });
        group.bench_function("set (100-byte value)", |b| {
            b.to_async(&rt).iter(|| async {
                store
                    .set("bench", "key7", vec![b'y'; 100], None)
                    .await
                    .unwrap()
            })
        });
        group.bench_function("increment", |b| {
            b.to_async(&rt)
                .iter(|| async { store.increment("bench", "n", 1).await.unwrap() })
        });
        let runtime = Arc::new(
            Runtime::new(Limits::default(), None)
                .unwrap()
                .with_state(store.clone()),
        );
        let hoarder = rt.block_on(async {
            let bytes = std::fs::read(wasmbot_tests::HOARDER).unwrap();
            let compiled = runtime.compile(&bytes).unwrap();
            let id = PluginId::parse("hoarder").unwrap();
            runtime.load(compiled, |_| Grant::none(id)).await.unwrap()
        });
        group.bench_function("one plugin call making one keys()", |b| {
            b.to_async(&rt).iter(|| async {
                let deadline = Instant::now() + Duration::from_secs(5);
                hoarder.handle(&count, deadline).await.unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, state);
criterion_main!(benches);
