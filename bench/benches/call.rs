//! One plugin call, as every message pays it per plugin: a fresh instance
//! from the pool, `handle`, and the store dropped (memory reset).
//!
//!     cargo bench -p wasmbot-bench --bench call
//!
//! The Rust plugins are the repo's own (built by the `wasmbot-tests` build
//! script); the Python (`plugins/dice`) and JavaScript (`plugins/define`)
//! examples are built with `wasmbot build`'s toolchain at start (the first
//! time installs componentize-py/js into the cache folder; without python3
//! or node those cases are skipped, with a line saying so).
//!
//! Next to them, the floor: the smallest component that has what a plugin
//! has (a memory of a Rust plugin's initial 17 pages, a page written, an
//! export called) in the same engine, with no imports, no message and no
//! host state. What it costs is wasmtime's own per-instance price in this
//! pool; a plugin's call is that plus its own.
//!
//! Each case runs in two pools of the same memory budget (768 MiB, a 24 GiB
//! machine's default): the default pool (`max_in_flight` 256 × 16 plugins),
//! where a free slot keeps 28 KiB of the memory an instance dirtied, and a
//! small one (`max_in_flight` 16), where it keeps ~670 KiB: what that buys
//! a plugin that dirties more than a few pages.

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmbot::message::Inbound;
use wasmbot::policy::{Grant, PluginId};
use wasmbot::runtime::{Limits, Plugin, Runtime};
use wasmbot_tests::fixture::whatsapp_form;

/// The server's allocator (`host/src/main.rs`), so a call is measured as
/// the server pays it: with glibc's, malloc and free were a tenth of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn load(runtime: &Arc<Runtime>, file: &Path, id: &str) -> Plugin {
    let bytes = std::fs::read(file).unwrap();
    let compiled = runtime.compile(&bytes).unwrap();
    let id = PluginId::parse(id).unwrap();
    runtime.load(compiled, |_| Grant::none(id)).await.unwrap()
}

/// The example `plugins/<name>` (its `files`) built as `wasmbot build`
/// builds it, kept where the scratch workspace's removal leaves it, or why
/// it could not be built.
fn example(name: &str, files: &[&str]) -> Result<PathBuf, String> {
    let ws = wasmbot_tests::fixture::workspace();
    let built = wasmbot_tests::fixture::build_example(ws.path(), name, files)?;
    let kept = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm-guests")
        .join(format!("{name}-bench.wasm"));
    std::fs::copy(&built, &kept).map_err(|e| e.to_string())?;
    Ok(kept)
}

/// `Limits::default()` with the pool of `max_in_flight` messages of 16
/// plugins each, in the memory budget of a 24 GiB machine.
fn limits(max_in_flight: u32) -> Limits {
    Limits {
        memory_budget: 768 << 20,
        pool_instances: max_in_flight * 16 + 16,
        ..Limits::default()
    }
}

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // (case, file, plugin id, message body)
    let mut plugins: Vec<(&str, PathBuf, &str, &str)> = vec![
        (
            "cat (Rust) answers \"cat\"",
            wasmbot_tests::CAT.into(),
            "cat",
            "cat",
        ),
        (
            "quote (Rust) stays silent on \"hello\"",
            wasmbot_tests::QUOTE.into(),
            "quote",
            "hello",
        ),
    ];
    for (case, name, files, body) in [
        (
            "dice (Python) answers \"roll 2d6\"",
            "dice",
            &["app.py", "dice.py"][..],
            "roll 2d6",
        ),
        (
            "define (JavaScript) stays silent on \"hello\"",
            "define",
            &["plugin.js", "logic.js"][..],
            "hello",
        ),
    ] {
        match example(name, files) {
            Ok(file) => plugins.push((case, file, name, body)),
            Err(why) => println!("SKIPPED {case}: {why}"),
        }
    }
    let mut group = c.benchmark_group("one call (instantiate + handle + drop)");
    for (pool, max_in_flight) in [("default pool", 256), ("max_in_flight 16", 16)] {
        let runtime = Arc::new(Runtime::new(limits(max_in_flight), None).unwrap());
        let floor = Floor::new(runtime.engine());
        group.bench_function(format!("floor: a minimal component, {pool}"), |b| {
            b.to_async(&rt).iter(|| floor.call())
        });
        for (case, file, id, body) in &plugins {
            let plugin = rt.block_on(load(&runtime, file, id));
            let msg = Inbound::from_params(whatsapp_form(body));
            group.bench_function(format!("{case}, {pool}"), |b| {
                b.to_async(&rt).iter(|| async {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    plugin.handle(&msg, deadline).await.unwrap()
                })
            });
        }
    }
    group.finish();
}

/// The floor's component: a Rust plugin's initial memory (17 pages), a
/// word written near where its stack starts (so a page is dirtied and
/// reset), one export lifted with no options.
const FLOOR: &str = r#"
(component
  (core module $m
    (memory (export "memory") 17)
    (func (export "run") (result i32)
      (i32.store (i32.const 1048000) (i32.const 1))
      (i32.const 42)))
  (core instance $i (instantiate $m))
  (func (export "run") (result u32) (canon lift (core func $i "run"))))
"#;

/// A minimal component, ready to instantiate in an engine's pool.
struct Floor {
    engine: wasmtime::Engine,
    pre: wasmtime::component::InstancePre<()>,
}

impl Floor {
    fn new(engine: &wasmtime::Engine) -> Floor {
        let bytes = wat::parse_str(FLOOR).unwrap();
        let component = wasmtime::component::Component::new(engine, bytes).unwrap();
        let linker = wasmtime::component::Linker::<()>::new(engine);
        Floor {
            engine: engine.clone(),
            pre: linker.instantiate_pre(&component).unwrap(),
        }
    }

    /// What a plugin call does, minus the plugin: a store, a fresh
    /// instance, its export called on a fiber, the store dropped.
    async fn call(&self) -> u32 {
        let mut store = wasmtime::Store::new(&self.engine, ());
        // The engine interrupts by epoch (the runtime's ticker advances
        // it): a deadline far enough away that it never fires here.
        store.set_epoch_deadline(1 << 32);
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        let run = instance
            .get_typed_func::<(), (u32,)>(&mut store, "run")
            .unwrap();
        let (answer,) = run.call_async(&mut store, ()).await.unwrap();
        assert_eq!(answer, 42);
        answer
    }
}

criterion_group!(benches, call);
criterion_main!(benches);
