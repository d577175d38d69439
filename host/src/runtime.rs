//! The WebAssembly runtime: compiles components, checks that they implement
//! the `wasmbot:plugin` world, and runs one call per message in a fresh
//! instance with a deadline, a memory cap and no ambient authority.
//!
//! This is the only module that names wasmtime: the `bindgen!` types stay in
//! here, converted to and from [`crate::message`] at the boundary, and
//! wasmtime's errors become [`LoadError`] / [`PluginError`].
//!
//! Design after wasmtime's own `serve`: one [`Engine`] and [`Linker`] for the
//! process, an `InstancePre` per plugin built once at load, a new [`Store`]
//! per call (no state leaks between users, memory is returned at once), and
//! an epoch ticker thread that drives deadlines.

use crate::message::{Inbound, Reply};
use crate::outbound::{self, AllowList, HttpError, Outbound};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "behaviour",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::wasmbot::plugin as wit;

/// The contract this host implements, as written in `wit/`.
pub const WIT_PACKAGE: &str = "wasmbot:plugin";
pub const WIT_VERSION: &str = "0.1.0";
const HANDLER: &str = "handler";

/// How often the epoch advances; the granularity of deadlines.
const TICK: Duration = Duration::from_millis(10);

/// Hits and misses of the compiled-code cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheStats {
    pub dir: String,
    pub hits: usize,
    pub misses: usize,
}

/// Runtime-wide limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory one instance may grow to.
    pub memory: usize,
    /// Time `describe` may take at load.
    pub describe_timeout: Duration,
    /// Instances (and memories, tables, stacks) that may exist at once, all
    /// plugins and messages together; reserved up front. Past it an
    /// instantiation fails and that plugin is left out of that message.
    pub pool_instances: u32,
    /// Outbound HTTP limits.
    pub http: outbound::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            describe_timeout: Duration::from_secs(2),
            pool_instances: 1000,
            http: outbound::Limits::default(),
        }
    }
}

/// A plugin that could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "built for {found}, but this host implements {WIT_PACKAGE}@{WIT_VERSION} \
         (plugins for {WIT_PACKAGE}@{compatible} load); rebuild it against this repo's wit/"
    )]
    Incompatible { found: String, compatible: String },
    #[error(
        "does not export {WIT_PACKAGE}/{HANDLER}@{WIT_VERSION}, so it is not a wasmbot plugin \
         (its exports: {0})"
    )]
    NotAPlugin(String),
    #[error("needs an import this host does not provide: {0}")]
    Link(String),
    #[error("describe() failed: {0}")]
    Describe(PluginError),
    #[error(
        "describe() returned an invalid name {0:?} (use lowercase letters, digits, '-' or '_')"
    )]
    BadName(String),
}

/// A call to a plugin that did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("ran past its {0:?} time limit")]
    Timeout(Duration),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("returned an error: {0}")]
    Failed(String),
}

/// A configuration key a plugin declares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub key: String,
    pub default: Option<String>,
    pub description: String,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub priority: i32,
    pub settings: Vec<Setting>,
}

/// Compiles, links and runs plugins. One per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    outbound: Outbound,
    limits: Limits,
    cache: Option<Cache>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime; with `cache_dir`, compiled code is cached on disk there,
    /// keyed by the component's content and the compiler's settings, so a
    /// restart or a re-added file does not compile again.
    /// `operator_hosts`: every host named in the operator's plugin settings
    /// (see [`outbound`]).
    pub fn new(
        limits: Limits,
        cache_dir: Option<&Path>,
        operator_hosts: BTreeSet<String>,
    ) -> Result<Self, LoadError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        // A fresh instance per message is only cheap with pre-reserved
        // memories, tables and fiber stacks (what `wasmtime serve` does):
        // instantiation then costs no mmap/munmap and reuses warm pages.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.pool_instances)
            .total_core_instances(limits.pool_instances)
            .total_memories(limits.pool_instances)
            .total_tables(limits.pool_instances)
            .total_stacks(limits.pool_instances)
            .max_memory_size(limits.memory);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let cache = if let Some(dir) = cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            let cache = Cache::new(cache).map_err(|e| {
                LoadError::Compile(format!("compiled-code cache in {}: {e}", dir.display()))
            })?;
            config.cache(Some(cache.clone()));
            Some(cache)
        } else {
            None
        };
        let engine = Engine::new(&config).map_err(|e| LoadError::Compile(e.to_string()))?;

        let mut linker = Linker::<HostState>::new(&engine);
        let link = |r: wasmtime::Result<()>| r.map_err(|e| LoadError::Link(e.to_string()));
        link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        link(bindings::Behaviour::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |s| s,
        ))?;

        let outbound = Outbound::new(limits.http.clone(), operator_hosts)
            .map_err(|e| LoadError::Link(e.to_string()))?;

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
            .map_err(|e| LoadError::Link(format!("epoch thread: {e}")))?;

        Ok(Runtime {
            engine,
            linker,
            outbound,
            limits,
            cache,
            ticker_stop,
        })
    }

    /// The compiled-code cache's counters, if there is a cache.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| CacheStats {
            dir: cache.directory().display().to_string(),
            hits: cache.cache_hits(),
            misses: cache.cache_misses(),
        })
    }

    /// Compiles `bytes` to machine code (or takes it from the cache). CPU-heavy: call it from a blocking
    /// task, never on the request path.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, LoadError> {
        let component =
            Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(error_chain(&e)))?;
        Ok(Compiled(component))
    }

    /// Checks the world, links and describes a compiled component.
    /// `settings` gives the operator's configuration for a plugin name.
    pub async fn load(
        self: &Arc<Self>,
        compiled: Compiled,
        settings: impl FnOnce(&str) -> BTreeMap<String, String>,
    ) -> Result<Plugin, LoadError> {
        let component = compiled.0;
        self.check_world(&component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(error_chain(&e)))?;
        let pre = bindings::BehaviourPre::new(pre).map_err(|e| LoadError::Link(error_chain(&e)))?;

        // describe() runs with no configuration and no network.
        let bare = Arc::new(PluginCtx {
            name: "(loading)".into(),
            settings: BTreeMap::new(),
            allow: AllowList::default(),
            grants: Grants::default(),
        });
        let deadline = Instant::now() + self.limits.describe_timeout;
        let info = self
            .call(&pre, bare, deadline, |handler, store| {
                Box::pin(async move { handler.call_describe(store).await })
            })
            .await
            .map_err(LoadError::Describe)?;
        let info = from_wit_info(info);
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if info.name.is_empty() || info.name.len() > 64 || !info.name.chars().all(valid) {
            return Err(LoadError::BadName(info.name));
        }

        // Declared defaults, overridden by the operator's settings.
        let declared: BTreeMap<String, String> = info
            .settings
            .iter()
            .filter_map(|s| Some((s.key.to_ascii_lowercase(), s.default.clone()?)))
            .collect();
        let operator = settings(&info.name);
        let grants = Grants::from_operator(&operator);
        let mut effective = declared;
        effective.extend(operator.clone());
        let allow = AllowList::new(&effective, &operator);
        let ctx = Arc::new(PluginCtx {
            name: info.name.clone(),
            settings: effective,
            allow,
            grants,
        });
        Ok(Plugin {
            info,
            pre,
            ctx,
            runtime: self.clone(),
        })
    }

    fn check_world(&self, component: &Component) -> Result<(), LoadError> {
        let ty = component.component_type();
        let exports: Vec<&str> = ty.exports(&self.engine).map(|(name, _)| name).collect();
        let prefix = format!("{WIT_PACKAGE}/{HANDLER}");
        let Some(found) = exports.iter().find(|n| n.starts_with(&prefix)) else {
            let list = if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            };
            return Err(LoadError::NotAPlugin(list));
        };
        let version = found
            .strip_prefix(&prefix)
            .and_then(|v| v.strip_prefix('@'));
        let compatible = compatible_range(WIT_VERSION);
        match version {
            Some(v) if compatible_range(v) == compatible => Ok(()),
            _ => Err(LoadError::Incompatible {
                found: format!("{WIT_PACKAGE}@{}", version.unwrap_or("(unversioned)")),
                compatible,
            }),
        }
    }

    /// Runs one export call in a fresh store with `deadline`.
    async fn call<R>(
        &self,
        pre: &bindings::BehaviourPre<HostState>,
        ctx: Arc<PluginCtx>,
        deadline: Instant,
        f: impl for<'a> FnOnce(
            &'a bindings::exports::wasmbot::plugin::handler::Guest,
            &'a mut Store<HostState>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
        >,
    ) -> Result<R, PluginError> {
        let stderr = StderrTail::default();
        // Deny by default: no environment, arguments, files or sockets,
        // except what the operator granted.
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        for (name, value) in &ctx.grants.env {
            wasi.env(name, value);
        }
        if let Some(dir) = &ctx.grants.dir {
            wasi.preopened_dir(dir, "/data", FsPerms::ReadOnly)
                .map_err(|e| {
                    PluginError::Instantiate(format!("granted folder {}: {e}", dir.display()))
                })?;
        }
        let wasi = wasi.build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory)
                .instances(32)
                .tables(32)
                .memories(8)
                .build(),
            ctx,
            outbound: self.outbound.clone(),
            requests: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            // Yield to tokio every tick, so a busy plugin never holds a
            // worker thread; trap once the deadline has passed.
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let budget = deadline.saturating_duration_since(Instant::now());
        let run = async {
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| PluginError::Instantiate(error_chain(&e)))?;
            f(instance.wasmbot_plugin_handler(), &mut store)
                .await
                .map_err(|e| classify(&e, budget, &stderr))
        };
        // The epoch trap cuts guest code; this also bounds time spent
        // waiting in host calls.
        tokio::time::timeout_at(deadline.into(), run)
            .await
            .unwrap_or(Err(PluginError::Timeout(budget)))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled component, not yet checked or linked.
pub struct Compiled(Component);

/// A loaded plugin: ready to be instantiated for each message.
pub struct Plugin {
    info: PluginInfo,
    pre: bindings::BehaviourPre<HostState>,
    ctx: Arc<PluginCtx>,
    runtime: Arc<Runtime>,
}

impl Plugin {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The effective configuration: declared defaults plus the operator's.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.ctx.settings
    }

    /// What the operator granted this plugin.
    pub fn grants(&self) -> &Grants {
        &self.ctx.grants
    }

    /// The hosts this plugin may reach over HTTP.
    pub fn allowed_hosts(&self) -> impl Iterator<Item = &str> {
        self.ctx.allow.hosts()
    }

    /// Calls `handle` for `msg` in a fresh instance; gives up at `deadline`.
    pub async fn handle(
        &self,
        msg: &Inbound,
        deadline: Instant,
    ) -> Result<Option<Reply>, PluginError> {
        let msg = to_wit_message(msg);
        let answer = self
            .runtime
            .call(
                &self.pre,
                self.ctx.clone(),
                deadline,
                move |handler, store| {
                    Box::pin(async move { handler.call_handle(store, &msg).await })
                },
            )
            .await?;
        match answer {
            Ok(reply) => Ok(reply.map(|r| Reply {
                text: r.text,
                media: r.media,
            })),
            Err(reason) => Err(PluginError::Failed(reason)),
        }
    }
}

/// What the host functions of one plugin see.
struct PluginCtx {
    name: String,
    settings: BTreeMap<String, String>,
    allow: AllowList,
    grants: Grants,
}

/// What the operator granted a plugin beyond the empty WASI default, in its
/// settings (a plugin's own declared defaults cannot grant anything):
/// `grant_env = "TZ,LANG"` passes those variables of the host's
/// environment; `grant_dir = "/srv/bot-data"` mounts that folder read-only
/// at `/data`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Grants {
    /// Names and values of the variables passed.
    #[serde(serialize_with = "names_only")]
    pub env: Vec<(String, String)>,
    pub dir: Option<std::path::PathBuf>,
}

fn names_only<S: serde::Serializer>(env: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(env.iter().map(|(name, _)| name))
}

impl Grants {
    fn from_operator(operator: &BTreeMap<String, String>) -> Self {
        let env = operator
            .get("grant_env")
            .map_or("", String::as_str)
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
            .collect();
        let dir = operator
            .get("grant_dir")
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from);
        Grants { env, dir }
    }
}

/// The state of one store: one call of one plugin.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    ctx: Arc<PluginCtx>,
    outbound: Outbound,
    /// HTTP requests made in this call.
    requests: u32,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::types::Host for HostState {}

impl wit::log::Host for HostState {
    async fn log(&mut self, level: wit::log::Level, message: String) {
        use wit::log::Level;
        let plugin = self.ctx.name.as_str();
        let message = message.chars().take(2000).collect::<String>();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl wit::config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.ctx.settings.get(&key.to_ascii_lowercase()).cloned()
    }
}

impl wit::http::Host for HostState {
    async fn send(
        &mut self,
        req: wit::http::Request,
    ) -> Result<wit::http::Response, wit::http::Error> {
        use wit::http::Method as M;
        let method = match req.method {
            M::Get => outbound::Method::Get,
            M::Head => outbound::Method::Head,
            M::Post => outbound::Method::Post,
            M::Put => outbound::Method::Put,
            M::Patch => outbound::Method::Patch,
            M::Delete => outbound::Method::Delete,
        };
        let request = outbound::HttpRequest {
            method,
            url: req.url,
            headers: req.headers,
            body: req.body,
        };
        let started = Instant::now();
        let max = self.outbound.limits().max_requests;
        self.requests = self.requests.saturating_add(1);
        let result = if self.requests > max {
            Err(HttpError::Denied(format!(
                "limit of {max} requests per message reached"
            )))
        } else {
            self.outbound.send(&self.ctx.allow, request).await
        };
        let plugin = self.ctx.name.as_str();
        match &result {
            Ok(r) => tracing::debug!(
                plugin,
                status = r.status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "http"
            ),
            Err(e) => tracing::warn!(
                plugin,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "http failed: {e}"
            ),
        }
        result
            .map(|r| wit::http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|e| match e {
                HttpError::InvalidUrl(s) => wit::http::Error::InvalidUrl(s),
                HttpError::Denied(s) => wit::http::Error::Denied(s),
                HttpError::Timeout => wit::http::Error::Timeout,
                HttpError::TooLarge => wit::http::Error::TooLarge,
                HttpError::Transport(s) => wit::http::Error::Transport(s),
            })
    }
}

/// A plugin's stderr: accepts every write (so a chatty plugin never fails
/// on a full pipe) and keeps the last [`StderrTail::KEEP`] bytes, where a
/// panic message lands just before a trap.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    const KEEP: usize = 4096;

    fn text(&self) -> String {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&kept).into_owned()
    }
}

impl wasmtime_wasi::cli::IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tail = &buf[buf.len().saturating_sub(Self::KEEP)..];
        kept.extend_from_slice(tail);
        let excess = kept.len().saturating_sub(Self::KEEP);
        kept.drain(..excess);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `major.minor` for 0.x versions, `major` otherwise: the semver range of
/// versions compatible with `version`.
fn compatible_range(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}.x"),
        (Some(major), _) => format!("{major}.x"),
        _ => version.to_owned(),
    }
}

fn classify(e: &wasmtime::Error, budget: Duration, stderr: &StderrTail) -> PluginError {
    let mut reason = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return PluginError::Timeout(budget),
        Some(trap) => trap.to_string(),
        None => error_chain(e),
    };
    // A Rust plugin's panic message goes to stderr just before the trap.
    let written = stderr.text();
    let written = written.split_whitespace().collect::<Vec<_>>().join(" ");
    if !written.is_empty() {
        reason = format!(
            "{reason}; stderr: {}",
            written.chars().take(500).collect::<String>()
        );
    }
    PluginError::Trap(reason)
}

/// One line: the first line of the error and of each of its causes.
fn error_chain(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|cause| {
            cause
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

fn to_wit_message(m: &Inbound) -> wit::types::Message {
    wit::types::Message {
        body: m.body.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        message_sid: m.message_sid.clone(),
        account_sid: m.account_sid.clone(),
        profile_name: m.profile_name.clone(),
        wa_id: m.wa_id.clone(),
        media: m
            .media
            .iter()
            .map(|x| wit::types::Media {
                url: x.url.clone(),
                content_type: x.content_type.clone(),
            })
            .collect(),
        params: m.params.clone(),
    }
}

fn from_wit_info(i: wit::types::PluginInfo) -> PluginInfo {
    PluginInfo {
        name: i.name,
        version: i.version,
        description: i.description,
        priority: i.priority,
        settings: i
            .settings
            .into_iter()
            .map(|s| Setting {
                key: s.key,
                default: s.default,
                description: s.description,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_ranges() {
        assert_eq!(compatible_range("0.1.0"), "0.1.x");
        assert_eq!(compatible_range("0.1.7"), "0.1.x");
        assert_ne!(compatible_range("0.2.0"), compatible_range(WIT_VERSION));
        assert_eq!(compatible_range("2.0.0"), "2.x");
        assert_eq!(compatible_range("2.3.1"), compatible_range("2.0.0"));
    }

    #[test]
    fn stderr_keeps_the_tail() {
        use tokio::io::AsyncWriteExt as _;
        let tail = StderrTail::default();
        let mut writer = tail.clone();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                for _ in 0..100 {
                    writer.write_all(&[b'x'; 1000]).await.unwrap();
                }
                writer.write_all(b"panicked at the end").await.unwrap();
            });
        let text = tail.text();
        assert_eq!(text.len(), StderrTail::KEEP);
        assert!(text.ends_with("xxpanicked at the end"));
    }

    #[test]
    fn garbage_is_not_a_component() {
        let rt = Runtime::new(Limits::default(), None, BTreeSet::new()).unwrap();
        let Err(err) = rt.compile(b"definitely not wasm") else {
            panic!("garbage compiled");
        };
        assert!(matches!(err, LoadError::Compile(_)), "{err}");
    }
}
