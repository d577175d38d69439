//! The WebAssembly runtime: compiles components, checks that they implement
//! the `wasmbot:plugin` world, and runs one call per message in a fresh
//! instance with a deadline, a memory cap inside a global memory budget,
//! and nothing but what the operator granted.
//!
//! This is the only module that names wasmtime: the `bindgen!` types stay in
//! here, converted to and from [`crate::message`] at the boundary, and
//! wasmtime's errors become [`LoadError`] / [`PluginError`].
//!
//! Design after wasmtime's own `serve`: one [`Engine`](wasmtime::Engine) and
//! `Linker` for the process, an `InstancePre` per plugin built once at load,
//! a new `Store` per call (no state leaks between users, memory is returned
//! at once), and an epoch ticker thread that drives deadlines.
//!
//! - [`engine`] — the `Engine` (pooling allocator sized from the
//!   configuration, compiled-code cache), the `Linker`, compiling, checking
//!   the world and its version, loading (`describe`).
//! - [`instance`] — a loaded [`Plugin`], one call in a fresh `Store`, the
//!   per-instance and global memory limits.
//! - [`host`] — what plugins import: `log`, `config`, `http`, their stderr,
//!   and the conversions between bindgen types and ours.
//! - [`wasi_http`] — `wasi:http/outgoing-handler` (wasmtime-wasi-http), its
//!   requests sent through the same policy and client as `http`.
//!
//! Two versions of the contract are linked side by side, like wasmtime
//! serves several WASI 0.2.x: `wit/` (0.2.0) and `wit/0.1/` (0.1.0). They
//! share every import implementation; a plugin's version is found from its
//! `handler` export when it loads.

mod engine;
mod host;
mod instance;
mod wasi_http;

pub use crate::error::{LoadError, PluginError, WIT_OLDER, WIT_PACKAGE, WIT_VERSION};
pub(crate) use engine::private_cache_dir;
pub use engine::{Compiled, Resources, Runtime};
pub use instance::{MemoryStats, Plugin};

use crate::outbound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod bindings {
    /// The contract in `wit/`.
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "behaviour",
            imports: { default: async },
            exports: { default: async },
            // A message is lowered from borrowed strings: no copy of it
            // per call.
            ownership: Borrowing { duplicate_if_necessary: true },
            // The world's WASI imports are wasmtime's (linked by
            // `wasmtime_wasi` and `wasmtime_wasi_http`), not ours.
            with: {
                "wasi:http": wasmtime_wasi_http::p2::bindings::http,
                "wasi:io": wasmtime_wasi::p2::bindings::io,
                "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            },
        });
    }

    /// The first contract, `wit/0.1/`: still loaded, its plugins get every
    /// message.
    pub mod v0_1 {
        wasmtime::component::bindgen!({
            path: "../wit/0.1",
            world: "behaviour",
            imports: { default: async },
            exports: { default: async },
            ownership: Borrowing { duplicate_if_necessary: true },
        });
    }
}

/// How often the epoch advances; the granularity of deadlines.
const TICK: Duration = Duration::from_millis(10);

/// When a call is cut: fixed, except that a call that defers its reply
/// ([`crate::later`]) moves it later, while it runs. Clones share it.
#[derive(Debug, Clone)]
pub enum Deadline {
    /// Never moves (no allocation: most calls).
    Fixed(Instant),
    /// May move later.
    Movable(Arc<Movable>),
}

#[derive(Debug)]
pub struct Movable {
    start: Instant,
    /// The deadline, in nanoseconds after `start`.
    after: AtomicU64,
}

impl Deadline {
    /// A deadline that never moves.
    pub fn at(deadline: Instant) -> Self {
        Deadline::Fixed(deadline)
    }

    /// A deadline that [`Deadline::extend_to`] may move.
    pub fn movable(deadline: Instant) -> Self {
        Deadline::Movable(Arc::new(Movable {
            start: deadline,
            after: AtomicU64::new(0),
        }))
    }

    /// The deadline now.
    pub fn get(&self) -> Instant {
        match self {
            Deadline::Fixed(at) => *at,
            Deadline::Movable(m) => m.start + Duration::from_nanos(m.after.load(Ordering::Acquire)),
        }
    }

    /// Whether it was moved (the call deferred its reply).
    pub fn is_extended(&self) -> bool {
        match self {
            Deadline::Fixed(_) => false,
            Deadline::Movable(m) => m.after.load(Ordering::Acquire) > 0,
        }
    }

    /// Moves the deadline to `later`, never earlier than it is; whether it
    /// can move.
    pub fn extend_to(&self, later: Instant) -> bool {
        let Deadline::Movable(m) = self else {
            return false;
        };
        let after = later.saturating_duration_since(m.start).as_nanos();
        let after = u64::try_from(after).unwrap_or(u64::MAX);
        m.after.fetch_max(after, Ordering::AcqRel);
        true
    }
}

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
    /// Linear memory one instance may grow to, all its memories together.
    pub memory: usize,
    /// Linear memory all instances together may use; past it an
    /// instantiation or growth is refused as [`PluginError::Capacity`].
    pub memory_budget: usize,
    /// Time `describe` may take at load.
    pub describe_timeout: Duration,
    /// Component instances (and as many memories, tables, fiber stacks)
    /// that may exist at once, all plugins and messages together; reserved
    /// up front. Past it an instantiation fails as
    /// [`PluginError::Capacity`].
    pub pool_instances: u32,
    /// Bytes the host copies out of a plugin in one host call or one
    /// returned value (wasmtime's hostcall fuel): the most one call can
    /// make the host allocate.
    pub hostcall_fuel: usize,
    /// Outbound HTTP limits.
    pub http: outbound::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            memory_budget: 512 << 20,
            describe_timeout: Duration::from_secs(2),
            pool_instances: 1000,
            // A reply is at most 5 × 1600 characters and a few media URLs;
            // an HTTP request body a few hundred KiB. 4 MiB is far above
            // either and far below what a plugin's 64 MiB could expand to.
            hostcall_fuel: 4 << 20,
            http: outbound::Limits::default(),
        }
    }
}

/// A configuration key a plugin declares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub key: String,
    pub default: Option<String>,
    pub description: String,
}

/// What a plugin says about itself. Metadata: the plugin's identity is its
/// file (see [`crate::policy`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub priority: i32,
    pub settings: Vec<Setting>,
    /// When it is called; a 0.1 plugin: everything.
    pub triggers: Vec<crate::trigger::Declared>,
}

impl PluginInfo {
    /// The settings it declares, as the policy reads them.
    pub fn declared(&self) -> Vec<crate::policy::Declared> {
        self.settings
            .iter()
            .map(|s| crate::policy::Declared {
                key: s.key.clone(),
                default: s.default.clone(),
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_ranges() {
        assert_eq!(compatible_range("0.1.0"), "0.1.x");
        assert_eq!(compatible_range("0.1.7"), "0.1.x");
        assert_eq!(compatible_range("0.2.0"), compatible_range(WIT_VERSION));
        assert_ne!(compatible_range("0.3.0"), compatible_range(WIT_VERSION));
        assert_eq!(compatible_range("2.0.0"), "2.x");
        assert_eq!(compatible_range("2.3.1"), compatible_range("2.0.0"));
    }

    #[test]
    fn a_deadline_only_moves_later_and_clones_share_it() {
        let now = Instant::now();
        let fixed = Deadline::at(now + Duration::from_secs(5));
        assert!(!fixed.extend_to(now + Duration::from_secs(120)));
        assert_eq!(fixed.get(), now + Duration::from_secs(5));
        let deadline = Deadline::movable(now + Duration::from_secs(5));
        let shared = deadline.clone();
        shared.extend_to(now + Duration::from_secs(1));
        assert_eq!(deadline.get(), now + Duration::from_secs(5));
        assert!(!deadline.is_extended());
        shared.extend_to(now + Duration::from_secs(120));
        assert_eq!(deadline.get(), now + Duration::from_secs(120));
        assert!(deadline.is_extended());
        deadline.extend_to(now + Duration::from_secs(60));
        assert_eq!(shared.get(), now + Duration::from_secs(120));
    }

    #[test]
    fn garbage_is_not_a_component() {
        let rt = Runtime::new(Limits::default(), None).unwrap();
        let Err(err) = rt.compile(b"definitely not wasm") else {
            panic!("garbage compiled");
        };
        assert!(matches!(err, LoadError::Compile(_)), "{err}");
    }
}
