//! The process-wide half of the runtime: the `Engine` with its pooling
//! allocator and compiled-code cache, the `Linker`, the epoch ticker, and
//! loading a component into a [`Plugin`].

use super::bindings::{v0_1, v0_2};
use super::host::{self, HostState, PluginCtx};
use super::instance::{Contract, MemoryBudget, Plugin, run};
use super::{
    CacheStats, Limits, LoadError, PluginInfo, TICK, WIT_OLDER, WIT_PACKAGE, WIT_VERSION,
    compatible_range, error_chain,
};
use crate::error::{HANDLER, untrusted};
use crate::outbound::Outbound;
use crate::policy::Grant;
use crate::trigger::Triggers;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Cache, CacheConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// Compiles, links and runs plugins. One per process.
pub struct Runtime {
    pub(super) engine: Engine,
    linker: Linker<HostState>,
    pub(super) limits: Limits,
    pub(super) budget: Arc<MemoryBudget>,
    cache: Option<Cache>,
    ticker_stop: Arc<AtomicBool>,
    pub(super) keep: KeepResident,
    /// Plugin state; `None`: plugins get `unavailable`.
    state: Option<Arc<crate::state::Store>>,
}

/// What a free slot of the instance pool keeps resident after a reset, so
/// that the next instance in it neither faults its pages in again nor
/// makes the kernel flush every core's TLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeepResident {
    /// Bytes of dirtied linear memory reset by copy rather than madvise
    /// (needs PAGEMAP_SCAN, else 0: a blind memset of memory costs more
    /// than it saves).
    pub(super) memory: usize,
    /// Bytes of each table reset by copy.
    pub(super) table: usize,
    /// The most all free slots together can keep resident: taken out of
    /// the memory budget, so that live linear memory and what free slots
    /// keep of it and of tables together stay within it. (Free slots'
    /// fiber stacks are not zeroed, so not counted: a known gap.)
    pub(super) reserved: usize,
}

impl KeepResident {
    /// At most a quarter of `budget` for the `instances` slots, and never
    /// so much that one instance of `instance_memory` no longer fits in
    /// what is left; whole pages only: up to half of a slot's part for its
    /// tables (at most [`TABLE_KEEP_MAX`] each), the rest for memory (at
    /// most [`MEMORY_KEEP_MAX`]).
    fn new(budget: usize, instance_memory: usize, instances: u32, pagemap: bool) -> Self {
        let page = rustix::param::page_size();
        let pages = |bytes: usize| bytes / page * page;
        let slots = instances.max(1) as usize;
        let tables = PER_INSTANCE.tables as usize;
        let share = (budget / 4).min(budget.saturating_sub(instance_memory));
        let per_instance = share / slots;
        let table = pages((per_instance / 2 / tables).min(TABLE_KEEP_MAX));
        let memory = if pagemap {
            pages((per_instance - table * tables).min(MEMORY_KEEP_MAX))
        } else {
            0
        };
        KeepResident {
            memory,
            table,
            reserved: slots * (memory + table * tables),
        }
    }
}

/// The most of each table a free slot keeps: a Rust plugin's tables take
/// a page, CPython's and SpiderMonkey's tens of KiB.
const TABLE_KEEP_MAX: usize = 16 << 10;

/// The most linear memory a free slot keeps. A Rust plugin dirties a few
/// pages per message; CPython and SpiderMonkey dirty megabytes, and every
/// page past what is kept is faulted in and copied from the image again by
/// the next instance: one call of the JavaScript `define` example took
/// 935 µs keeping 64 KiB, 598 µs keeping 1 MiB and 537 µs keeping 8 MiB
/// (`bench/benches/call.rs` with the kept size forced; as the bench runs,
/// 1.05 ms in the default pool, 0.64 ms with `max_in_flight` 16). How much
/// a slot really gets is the
/// budget's quarter shared by every slot of the pool: 28 KiB with the
/// defaults on a 24 GiB machine, megabytes with a smaller `max_in_flight`.
const MEMORY_KEEP_MAX: usize = 8 << 20;

/// What one plugin instance may take from the instance pool.
struct PoolShare {
    memories: u32,
    tables: u32,
    core_instances: u32,
}

const PER_INSTANCE: PoolShare = PoolShare {
    memories: 1,
    tables: 4,
    core_instances: 16,
};

/// A compiled component, not yet checked or linked.
pub struct Compiled(Component);

/// What one instance of a component takes from the instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Resources {
    pub memories: u32,
    /// Bytes of linear memory an instance starts with.
    pub initial_memory: u64,
    pub tables: u32,
}

impl Compiled {
    /// The memories and tables one instance needs (`None` when a core
    /// module is imported rather than embedded: unknown).
    pub fn resources(&self) -> Option<Resources> {
        self.0.resources_required().map(|r| Resources {
            memories: r.num_memories,
            initial_memory: r.max_initial_memory_size.unwrap_or(0) << 16, // Wasm pages
            tables: r.num_tables,
        })
    }
}

/// The subfolder of the cache folder that holds compiled code: wasmtime's
/// alone (see `Runtime::new`).
pub const COMPILED: &str = "compiled";

impl Runtime {
    /// A runtime; with `cache_dir`, compiled code is cached on disk there
    /// (in its `compiled/` subfolder),
    /// keyed by the component's content and the compiler's settings, so a
    /// restart or a re-added file does not compile again. A cache folder
    /// others could write to is not used (a cache hit loads native code).
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> Result<Self, LoadError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        // A fresh instance per message is only cheap with pre-reserved
        // memories, tables and fiber stacks (what `wasmtime serve` does):
        // instantiation then costs no mmap/munmap and reuses warm pages.
        let n = limits.pool_instances;
        let mut pool = PoolingAllocationConfig::default();
        // Every instance gets an equal part of the pool, so no plugin can
        // use up another's: components of every toolchain we know (Rust,
        // Python, JavaScript) have one memory and two tables; one that
        // needs more than `PER_INSTANCE` is refused when it loads.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(PER_INSTANCE.core_instances))
            .max_core_instances_per_component(PER_INSTANCE.core_instances)
            .total_memories(n.saturating_mul(PER_INSTANCE.memories))
            .max_memories_per_component(PER_INSTANCE.memories)
            .total_tables(n.saturating_mul(PER_INSTANCE.tables))
            .max_tables_per_component(PER_INSTANCE.tables)
            .total_stacks(n)
            .max_memory_size(limits.memory);
        // Resetting a slot with madvise costs page faults on its next use
        // and, worse, a TLB shootdown on every core the process runs on: a
        // third of the CPU under load. With Linux's PAGEMAP_SCAN the pages
        // an instance dirtied are found and copied back from the image
        // instead, up to `keep.memory` bytes per slot (a Rust plugin dirties
        // a few pages per message), so most resets make no system call.
        // What idle slots keep resident is carved out of the memory budget.
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        let keep = KeepResident::new(limits.memory_budget, limits.memory, n, pagemap);
        if pagemap {
            pool.pagemap_scan(Enabled::Yes);
        }
        pool.linear_memory_keep_resident(keep.memory)
            .table_keep_resident(keep.table);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // wasmtime's cache treats its folder as its own: its clean-up
        // deletes whatever it does not recognise there, two levels deep
        // and every folder below. It gets a subfolder of `cache_dir`, so
        // the build tools beside it (and whatever else an operator keeps
        // in the folder they named) are never its to delete.
        // Both are checked: whoever may write to the folder may swap the
        // subfolder.
        let cache = match cache_dir {
            Some(root) => {
                let dir = root.join(COMPILED);
                let private = [root, dir.as_path()]
                    .into_iter()
                    .try_for_each(|d| private_cache_dir(d).map_err(|why| (d, why)));
                match private {
                    Ok(()) => {
                        let mut cache = CacheConfig::new();
                        cache.with_directory(&dir);
                        let cache = Cache::new(cache).map_err(|e| {
                            LoadError::Compile(format!(
                                "compiled-code cache in {}: {e}",
                                dir.display()
                            ))
                        })?;
                        config.cache(Some(cache.clone()));
                        Some(cache)
                    }
                    Err((dir, why)) => {
                        tracing::warn!(
                            dir = %dir.display(),
                            "compiled-code cache disabled: {why}"
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let engine = Engine::new(&config).map_err(|e| LoadError::Internal(e.to_string()))?;

        let mut linker = Linker::<HostState>::new(&engine);
        let link = |r: wasmtime::Result<()>| r.map_err(|e| LoadError::Link(e.to_string()));
        link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        // Our interfaces one by one: the 0.2 world's WASI imports are
        // linked above and by wasmtime-wasi-http below.
        {
            use super::bindings::v0_2::wasmbot::plugin as wit;
            link(wit::types::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            ))?;
            link(wit::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
            link(wit::config::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            ))?;
            link(wit::http::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            ))?;
            link(wit::state::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            ))?;
            link(wit::later::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            ))?;
        }
        link(v0_1::Behaviour::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |s| s,
        ))?;
        link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(
            &mut linker,
        ))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.clone());
        std::thread::Builder::new()
            .name("wasmbot-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| LoadError::Internal(format!("epoch thread: {e}")))?;

        Ok(Runtime {
            engine,
            linker,
            budget: Arc::new(MemoryBudget::new(
                limits.memory_budget.saturating_sub(keep.reserved),
                limits.memory,
            )),
            keep,
            limits,
            cache,
            ticker_stop,
            state: None,
        })
    }

    /// Plugins loaded from now on keep their state in `store`.
    pub fn with_state(mut self, store: Arc<crate::state::Store>) -> Self {
        self.state = Some(store);
        self
    }

    /// The plugin state store, if there is one.
    pub fn state(&self) -> Option<&Arc<crate::state::Store>> {
        self.state.as_ref()
    }

    /// The compiled-code cache's counters, if there is a cache.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| CacheStats {
            dir: cache.directory().display().to_string(),
            hits: cache.cache_hits(),
            misses: cache.cache_misses(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The engine with its pool, for measuring what wasmtime itself costs
    /// in this configuration (`bench/benches/call.rs`'s floor): plugins
    /// are only ever loaded through [`Runtime::load`].
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many plugins share the memory budget now (the registry says,
    /// on every change of the folder).
    pub fn set_plugins(&self, loaded: usize) {
        self.budget.set_plugins(loaded);
    }

    /// Compiles `bytes` to machine code (or takes it from the cache).
    /// CPU-heavy: call it from a blocking task, never on the request path.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, LoadError> {
        let component =
            Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(error_chain(&e)))?;
        Ok(Compiled(component))
    }

    /// Checks the world, links and describes a compiled component, then
    /// asks `grant` what the operator grants it (given what it declared).
    pub async fn load(
        self: &Arc<Self>,
        compiled: Compiled,
        grant: impl FnOnce(&PluginInfo) -> Grant,
    ) -> Result<Plugin, LoadError> {
        let resources = compiled.resources();
        fits_the_pool(resources)?;
        let component = compiled.0;
        let version = self.check_world(&component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(error_chain(&e)))?;
        let link = |e: wasmtime::Error| LoadError::Link(error_chain(&e));

        // describe() runs with nothing granted: no settings, no network.
        let bare = Arc::new(PluginCtx::describing());
        let deadline = super::Deadline::at(Instant::now() + self.limits.describe_timeout);
        let (contract, info) = if version == compatible_range(WIT_VERSION) {
            let pre = v0_2::BehaviourPre::new(pre).map_err(link)?;
            let info = self
                .call(
                    bare,
                    deadline.clone(),
                    None,
                    run!(pre, |h, store| h.call_describe(store)),
                )
                .await
                .map_err(LoadError::Describe)?;
            (Contract::V0_2(pre), host::info_v0_2(info))
        } else {
            let pre = v0_1::BehaviourPre::new(pre).map_err(link)?;
            let info = self
                .call(
                    bare,
                    deadline.clone(),
                    None,
                    run!(pre, |h, store| h.call_describe(store)),
                )
                .await
                .map_err(LoadError::Describe)?;
            (Contract::V0_1(pre), host::info_v0_1(info))
        };
        let info = checked_info(info)?;
        let triggers = Triggers::compile(&info.triggers).map_err(|e| LoadError::BadInfo {
            field: "triggers",
            value: untrusted(&e.to_string(), 300),
        })?;

        let mut grant = grant(&info);
        // A component that imports no HTTP interface can send no request,
        // whatever its URL defaults name (cat's is the picture Twilio
        // fetches): it asks for no host, and nobody is told to grant one.
        let ours = format!("{WIT_PACKAGE}/http@");
        let sends_http = component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with(&ours) || name.starts_with("wasi:http/"));
        if !sends_http {
            grant.requests.clear();
        }
        let outbound = Outbound::new(self.limits.http.clone(), grant.allow_list())
            .map_err(|e| LoadError::Internal(e.to_string()))?;
        Ok(Plugin::new(
            info,
            triggers,
            contract,
            PluginCtx::new(grant, outbound, self.state.clone()),
            self.clone(),
        ))
    }

    /// The contract version the component implements, as `0.x`: one this
    /// host links, or an error that names it and what would load.
    fn check_world(&self, component: &Component) -> Result<String, LoadError> {
        let ty = component.component_type();
        let exports: Vec<&str> = ty.exports(&self.engine).map(|(name, _)| name).collect();
        let prefix = format!("{WIT_PACKAGE}/{HANDLER}");
        let Some(found) = exports.iter().find(|n| n.starts_with(&prefix)) else {
            let list = if exports.is_empty() {
                "none".to_owned()
            } else {
                untrusted(&exports.join(", "), 300)
            };
            return Err(LoadError::NotAPlugin(list));
        };
        let version = found
            .strip_prefix(&prefix)
            .and_then(|v| v.strip_prefix('@'));
        let linked = std::iter::once(WIT_VERSION).chain(WIT_OLDER.iter().copied());
        match version.map(compatible_range) {
            Some(range) if linked.clone().any(|v| compatible_range(v) == range) => Ok(range),
            _ => Err(LoadError::Incompatible {
                found: untrusted(
                    &format!("{WIT_PACKAGE}@{}", version.unwrap_or("(unversioned)")),
                    100,
                ),
                compatible: linked
                    .map(compatible_range)
                    .collect::<Vec<_>>()
                    .join(" or "),
            }),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Whether one instance of a component needing `resources` fits its part
/// of the instance pool.
fn fits_the_pool(resources: Option<Resources>) -> Result<(), LoadError> {
    let Some(r) = resources else {
        return Err(LoadError::TooBig(
            "it imports a core module, so what it needs cannot be known".into(),
        ));
    };
    if r.memories > PER_INSTANCE.memories || r.tables > PER_INSTANCE.tables {
        return Err(LoadError::TooBig(format!(
            "an instance needs {} memories and {} tables; a plugin instance gets at most {} \
             and {}",
            r.memories, r.tables, PER_INSTANCE.memories, PER_INSTANCE.tables
        )));
    }
    Ok(())
}

/// What `describe()` returned, checked: a name of lowercase letters,
/// digits, `-` and `_` (it is shown next to the id), and every other text
/// made safe for logs and capped.
fn checked_info(mut info: PluginInfo) -> Result<PluginInfo, LoadError> {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if info.name.is_empty() || info.name.len() > 64 || !info.name.chars().all(valid) {
        return Err(LoadError::BadInfo {
            field: "name",
            value: untrusted(&info.name, 80),
        });
    }
    if info.settings.len() > 64 {
        return Err(LoadError::BadInfo {
            field: "number of settings",
            value: info.settings.len().to_string(),
        });
    }
    info.version = untrusted(&info.version, 64);
    info.description = untrusted(&info.description, 300);
    for setting in &mut info.settings {
        // Keys name variables (WASMBOT_<ID>__<KEY>) and are looked up as
        // declared; defaults are what `config.get` returns, so they are
        // checked, never rewritten.
        let key_ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if setting.key.is_empty() || setting.key.len() > 64 || !setting.key.chars().all(key_ok) {
            return Err(LoadError::BadInfo {
                field: "setting key",
                value: untrusted(&setting.key, 80),
            });
        }
        setting.key.make_ascii_lowercase();
        if setting.default.as_ref().is_some_and(|d| d.len() > 64 << 10) {
            return Err(LoadError::BadInfo {
                field: "setting default (over 64 KiB)",
                value: setting.key.clone(),
            });
        }
        setting.description = untrusted(&setting.description, 300);
    }
    Ok(info)
}

/// Creates the cache folder private to this user (0700), or checks that
/// an existing one is ours and writable by nobody else: whoever can write
/// to the cache can make wasmbot run their machine code.
#[cfg(unix)]
pub(crate) fn private_cache_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("it is not a folder (a symlink is not accepted)".into());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it belongs to uid {}, not to this user (uid {me})",
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "others may write to it (mode {:o}); run chmod 700 on it",
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn private_cache_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn an_instance_takes_only_its_part_of_the_pool() {
        let r = |memories, tables| {
            Some(Resources {
                memories,
                initial_memory: 1 << 20,
                tables,
            })
        };
        assert!(fits_the_pool(r(1, 2)).is_ok());
        assert!(fits_the_pool(r(0, 0)).is_ok());
        for too_big in [r(2, 2), r(8, 0), r(1, 5), None] {
            assert!(
                matches!(fits_the_pool(too_big), Err(LoadError::TooBig(_))),
                "{too_big:?}"
            );
        }
    }

    #[test]
    fn idle_slots_keep_at_most_a_quarter_of_the_budget() {
        let page = rustix::param::page_size();
        for (budget, instances) in [
            (753 << 20, 256 * 16 + 16),
            (256 << 20, 4112),
            (64 << 20, 100_000),
            (8 << 30, 10),
        ] {
            for pagemap in [true, false] {
                let keep = KeepResident::new(budget, 64 << 20, instances, pagemap);
                assert!(
                    budget - keep.reserved >= 64 << 20,
                    "one instance still fits"
                );
                assert!(
                    keep.reserved <= budget / 4,
                    "{budget} {instances}: {keep:?}"
                );
                assert_eq!(
                    keep.reserved,
                    instances as usize * (keep.memory + keep.table * PER_INSTANCE.tables as usize)
                );
                assert_eq!(keep.memory % page, 0);
                assert_eq!(keep.table % page, 0);
                assert!(keep.memory <= MEMORY_KEEP_MAX && keep.table <= TABLE_KEEP_MAX);
                if !pagemap {
                    assert_eq!(keep.memory, 0, "a blind memset of memory costs more");
                }
            }
        }
        // The defaults keep a few pages per slot: what a Rust plugin dirties.
        let keep = KeepResident::new(753 << 20, 64 << 20, 256 * 16 + 16, true);
        assert!(keep.memory >= 16 << 10 && keep.table >= page, "{keep:?}");
        // A huge pool of a small budget keeps nothing resident, and a
        // budget of one instance's memory keeps nothing from it.
        assert_eq!(
            KeepResident::new(64 << 20, 1 << 20, 100_000, true).reserved,
            0
        );
        assert_eq!(KeepResident::new(64 << 20, 64 << 20, 10, true).reserved, 0);
        // A smaller pool (`max_in_flight = 16`) lets each slot keep what a
        // Python or JavaScript plugin dirties, up to the cap.
        let keep = KeepResident::new(768 << 20, 64 << 20, 16 * 16 + 16, true);
        assert!(keep.memory >= 512 << 10, "{keep:?}");
        assert_eq!(keep.table, TABLE_KEEP_MAX);
        let keep = KeepResident::new(8 << 30, 64 << 20, 10, true);
        assert_eq!(keep.memory, MEMORY_KEEP_MAX);
    }

    #[test]
    fn the_cache_folder_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/cache");
        private_cache_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_cache_dir(&shared).unwrap_err();
        assert!(err.contains("others may write"), "{err}");
        // A runtime given such a folder runs without a cache.
        let rt = Runtime::new(Limits::default(), Some(&shared)).unwrap();
        assert!(rt.cache_stats().is_none());
        // Its compiled code goes in a subfolder, checked as well.
        let rt = Runtime::new(Limits::default(), Some(&dir)).unwrap();
        let stats = rt.cache_stats().unwrap();
        assert_eq!(Path::new(&stats.dir), dir.join(COMPILED));
        drop(rt);
        let compiled = dir.join(COMPILED);
        std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o777)).unwrap();
        let rt = Runtime::new(Limits::default(), Some(&dir)).unwrap();
        assert!(rt.cache_stats().is_none());

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(private_cache_dir(&link).unwrap_err().contains("symlink"));
    }
}
