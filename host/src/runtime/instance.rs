//! One call of a plugin: a fresh `Store` with the plugin's grant, a memory
//! limiter that holds both the per-instance cap and the global budget, a
//! deadline, and the outcome classified into a [`PluginError`].

use super::bindings::{v0_1, v0_2};
use super::host::{self, Egress, HostState, PluginCtx, StderrTail};
use super::{Deadline, PluginError, PluginInfo, Runtime, error_chain};
use crate::later::Defer;
use crate::message::{Inbound, Reply};
use crate::policy::Grant;
use crate::trigger::{Seen, Triggers};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::FsPerms;

/// Resources (streams, pollables, HTTP requests, bodies and fields…) one
/// call may hold at once: a plugin needs tens (CPython and SpiderMonkey
/// included); each may hold host memory (a header map up to 16 KiB, a
/// request body's buffer 16 KiB), so this bounds what a call makes the
/// host hold to a few MiB.
const MAX_RESOURCES: usize = 256;

/// A plugin linked against the version of the contract it was built for.
pub(super) enum Contract {
    V0_2(v0_2::BehaviourPre<HostState>),
    V0_1(v0_1::BehaviourPre<HostState>),
}

/// One export call in a fresh instance: the future [`Runtime::call`]
/// runs; the error says whether it failed while instantiating.
pub(super) type Run<'a, R> =
    Pin<Box<dyn Future<Output = Result<R, (bool, wasmtime::Error)>> + Send + 'a>>;

/// Tells the compiler that a [`Run`] borrowing the store for `'a` may also
/// borrow what the caller lent for `'m` (a message lowered without a copy):
/// `'m` outlives any `'a` a store is borrowed for.
pub(super) type Lent<'a, 'm> = std::marker::PhantomData<&'a &'m ()>;

/// `run!(pre, |handler, store| handler.call_x(store, ..))`: instantiates
/// `pre` in the store [`Runtime::call`] prepared and calls one export.
macro_rules! run {
    ($pre:expr, |$handler:ident, $store:ident| $call:expr) => {{
        let pre = $pre.clone();
        move |$store: &mut wasmtime::Store<HostState>,
              _: $crate::runtime::instance::Lent<'_, '_>|
              -> $crate::runtime::instance::Run<'_, _> {
            Box::pin(async move {
                let instance = pre
                    .instantiate_async(&mut *$store)
                    .await
                    .map_err(|e| (true, e))?;
                let $handler = instance.wasmbot_plugin_handler();
                $call.await.map_err(|e| (false, e))
            })
        }
    }};
}
pub(super) use run;

/// A loaded plugin: ready to be instantiated for each message.
pub struct Plugin {
    info: PluginInfo,
    triggers: Triggers,
    contract: Contract,
    ctx: Arc<PluginCtx>,
    runtime: Arc<Runtime>,
}

impl Plugin {
    pub(super) fn new(
        info: PluginInfo,
        triggers: Triggers,
        contract: Contract,
        ctx: PluginCtx,
        runtime: Arc<Runtime>,
    ) -> Self {
        Plugin {
            info,
            triggers,
            contract,
            ctx: Arc::new(ctx),
            runtime,
        }
    }

    /// What the plugin declared about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The version of the contract it implements (`0.2.x`, `0.1.x`).
    pub fn contract(&self) -> &'static str {
        match self.contract {
            Contract::V0_2(_) => "0.2.x",
            Contract::V0_1(_) => "0.1.x",
        }
    }

    /// Whether `handle` is called for this message (its triggers).
    pub fn wants(&self, seen: &Seen<'_>) -> bool {
        self.triggers.matches(seen)
    }

    /// What the operator granted it: its settings, hosts, variables, folder.
    pub fn grant(&self) -> &Grant {
        &self.ctx.grant
    }

    /// Linear memory its live instances hold now, in bytes.
    pub fn memory_in_use(&self) -> usize {
        self.runtime.budget.held_by(self.ctx.grant.id.as_str())
    }

    /// Calls `handle` for `msg` in a fresh instance; gives up at `deadline`.
    pub async fn handle(
        &self,
        msg: &Inbound,
        deadline: Instant,
    ) -> Result<Option<Reply>, PluginError> {
        self.handle_deferrable(msg, Deadline::at(deadline), None)
            .await
    }

    /// [`Plugin::handle`], where the plugin may defer its reply through
    /// `defer` (without, its `later.defer` is `unavailable`); deferring
    /// moves `deadline`.
    pub async fn handle_deferrable(
        &self,
        msg: &Inbound,
        deadline: Deadline,
        defer: Option<Defer>,
    ) -> Result<Option<Reply>, PluginError> {
        let (runtime, ctx) = (&self.runtime, self.ctx.clone());
        let answer = match &self.contract {
            Contract::V0_2(pre) => {
                let (params, media) = (host::params(msg), host::v0_2::media(msg));
                let msg = host::v0_2::message(msg, &params, &media);
                runtime
                    .call(
                        ctx,
                        deadline,
                        defer,
                        run!(pre, |h, s| h.call_handle(s, msg)),
                    )
                    .await?
                    .map(|reply| reply.map(host::v0_2::reply))
            }
            Contract::V0_1(pre) => {
                let (params, media) = (host::params(msg), host::v0_1::media(msg));
                let msg = host::v0_1::message(msg, &params, &media);
                runtime
                    .call(
                        ctx,
                        deadline,
                        defer,
                        run!(pre, |h, s| h.call_handle(s, msg)),
                    )
                    .await?
                    .map(|reply| reply.map(host::v0_1::reply))
            }
        };
        answer.map_err(|reason| PluginError::failed(&reason))
    }
}

impl Runtime {
    /// Runs `run` (see [`run!`]) in a fresh store with `deadline`, and
    /// `defer` for its `later` import.
    pub(super) async fn call<'m, R>(
        &self,
        ctx: Arc<PluginCtx>,
        deadline: Deadline,
        defer: Option<Defer>,
        run: impl for<'a> FnOnce(&'a mut Store<HostState>, Lent<'a, 'm>) -> Run<'a, R> + Send + 'm,
    ) -> Result<R, PluginError> {
        let stderr = StderrTail::default();
        let wasi = match &ctx.grant.dir {
            Some(dir) => {
                let mut wasi = host::wasi(&ctx, &stderr);
                wasi.preopened_dir(dir, "/data", FsPerms::ReadOnly)
                    .map_err(|e| {
                        PluginError::instantiate(&format!("granted folder {}: {e}", dir.display()))
                    })?;
                Some(wasi.build())
            }
            None => None,
        };
        let mut table = ResourceTable::new();
        // Host memory a plugin can make the host hold in one call: streams,
        // pollables, HTTP fields and requests are table entries.
        table.set_max_capacity(MAX_RESOURCES);
        let state = HostState {
            wasi,
            stderr: stderr.clone(),
            table,
            limiter: Limiter::new(self.budget.clone(), ctx.memory_key(), self.limits.memory),
            http: super::wasi_http::context(),
            egress: Egress::new(ctx.clone(), deadline.clone()),
            state_ops: 0,
            state_warned: false,
            later: defer,
            ctx,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(self.limits.hostcall_fuel);
        store.set_epoch_deadline(1);
        let cut = deadline.clone();
        store.epoch_deadline_callback(move |_| {
            // Yield to tokio every tick, so a busy plugin never holds a
            // worker thread; trap once the deadline has passed (it moves
            // when the plugin defers its reply). Tokio's `yield_now`
            // resumes the call only after the runtime has polled for I/O
            // and timers: a plain wake-up would be run again at once, and
            // a worker's runtime (see `edge`) polls I/O only every 61
            // tasks, so a busy plugin would leave every other connection
            // of its worker unread for 61 ticks.
            Ok(if Instant::now() >= cut.get() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });

        let started = Instant::now();
        // The epoch trap cuts guest code; this also bounds time spent
        // waiting in host calls.
        let outcome = {
            let mut running = run(&mut store, std::marker::PhantomData);
            loop {
                let at = deadline.get();
                tokio::select! {
                    // An answer that is in wins over the deadline.
                    biased;
                    done = &mut running => break Some(done),
                    () = tokio::time::sleep_until(at.into()) => {
                        if Instant::now() >= deadline.get() {
                            break None;
                        }
                    }
                }
            }
        };
        let budget = deadline.get().saturating_duration_since(started);
        let refused = store.data().limiter.refused;
        match outcome {
            Some(Ok(value)) => Ok(value),
            None => Err(PluginError::Timeout(budget)),
            Some(Err((instantiating, e))) => Err(classify(
                &e,
                instantiating,
                refused,
                budget,
                &stderr,
                self.limits.memory_budget,
            )),
        }
    }

    /// Guest memory in use now, and the budget.
    pub fn memory_stats(&self) -> MemoryStats {
        let idle = self.engine.pooling_allocator_metrics().map_or(0, |m| {
            m.unused_memory_bytes_resident() + m.unused_table_bytes_resident()
        });
        MemoryStats {
            budget: self.limits.memory_budget,
            in_use: self.budget.used(),
            deferred: self.budget.deferred(),
            per_instance: self.limits.memory,
            idle_reserved: self.keep.reserved,
            idle_resident: idle,
        }
    }
}

/// What a failed call was.
fn classify(
    e: &wasmtime::Error,
    instantiating: bool,
    refused: Option<Refused>,
    budget: Duration,
    stderr: &StderrTail,
    memory_budget: usize,
) -> PluginError {
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return PluginError::Timeout(budget);
    }
    match refused {
        Some(Refused::Full) => {
            return PluginError::Capacity(format!(
                "the {} MiB memory budget of all plugins is in use",
                memory_budget >> 20
            ));
        }
        Some(Refused::OverCap) => {
            return PluginError::Memory(format!(
                "its instances hold their share (half) of the {} MiB memory budget of all \
                 plugins already",
                memory_budget >> 20
            ));
        }
        None => {}
    }
    if let Some(pool) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return PluginError::Capacity(format!("the instance pool is full: {pool}"));
    }
    // A trap or an overrun is the plugin's own, even while it starts.
    let mut reason = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return PluginError::Timeout(budget),
        Some(trap) => trap.to_string(),
        None if instantiating => return PluginError::instantiate(&error_chain(e)),
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
    PluginError::trap(&reason)
}

/// Guest memory, as `GET /plugins` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryStats {
    /// Linear memory and tables all instances together may use, live and
    /// kept by free slots, in bytes: live instances get what
    /// `idle_reserved` leaves.
    pub budget: usize,
    /// Linear memory of the instances alive now, in bytes.
    pub in_use: usize,
    /// What the calls that deferred their reply hold of it (at most half
    /// of `budget`), in bytes.
    pub deferred: usize,
    /// Linear memory one instance may use, in bytes.
    pub per_instance: usize,
    /// The most free pool slots may keep resident (dirtied pages kept for
    /// the next instance), in bytes; at most a quarter of `budget`.
    pub idle_reserved: usize,
    /// What free pool slots keep resident now, in bytes.
    pub idle_resident: usize,
}

/// The linear memory of all live instances together, against a limit, and
/// each plugin's part of it against its cap: with several plugins loaded,
/// none may hold more than half the budget (or one instance's worth, if
/// that is more), so one plugin cannot take the memory every other plugin
/// needs.
#[derive(Debug)]
pub(super) struct MemoryBudget {
    limit: usize,
    /// What one instance may hold: a plugin's cap is never below it.
    per_instance: usize,
    /// Plugins loaded now.
    plugins: AtomicUsize,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    used: usize,
    by_plugin: HashMap<Arc<str>, usize>,
    /// What the calls that deferred their reply hold (counted in their
    /// plugins' too).
    deferred: usize,
}

/// Why the budget refused memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The plugin's instances together already hold its cap: that plugin
    /// waits (is left out) until it gives memory back; the others run.
    OverCap,
    /// The budget is spent by plugins within their caps: the host is full.
    Full,
}

impl MemoryBudget {
    pub(super) fn new(limit: usize, per_instance: usize) -> Self {
        MemoryBudget {
            limit,
            per_instance,
            plugins: AtomicUsize::new(1),
            state: Mutex::default(),
        }
    }

    pub(super) fn set_plugins(&self, loaded: usize) {
        self.plugins.store(loaded, Ordering::Relaxed);
    }

    /// What the calls that deferred their reply may hold together: half
    /// of the budget (at least one instance's worth), so that answering
    /// messages always has the other half.
    fn deferred_cap(&self) -> usize {
        (self.limit / 2).max(self.per_instance).min(self.limit)
    }

    /// What one plugin may hold: all of it when it is alone, else half
    /// (at least one instance's worth).
    fn cap(&self) -> usize {
        if self.plugins.load(Ordering::Relaxed) <= 1 {
            self.limit
        } else {
            (self.limit / 2).max(self.per_instance).min(self.limit)
        }
    }

    /// The memory the instances of `plugin` hold now.
    pub(super) fn held_by(&self, plugin: &str) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_plugin
            .get(plugin)
            .copied()
            .unwrap_or(0)
    }

    /// Takes `bytes` for an instance of `plugin` (one that deferred its
    /// reply, if `deferred`).
    fn reserve(&self, plugin: &Arc<str>, bytes: usize, deferred: bool) -> Result<(), Refused> {
        if bytes == 0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = state.by_plugin.get(plugin).copied().unwrap_or(0);
        let cap = self.cap();
        if cap < self.limit && mine.saturating_add(bytes) > cap {
            return Err(Refused::OverCap);
        }
        if deferred && state.deferred.saturating_add(bytes) > self.deferred_cap() {
            return Err(Refused::OverCap);
        }
        if state.used.saturating_add(bytes) > self.limit {
            return Err(Refused::Full);
        }
        state.used += bytes;
        if deferred {
            state.deferred += bytes;
        }
        *state.by_plugin.entry(plugin.clone()).or_default() += bytes;
        Ok(())
    }

    /// Counts `bytes` an instance holds among the calls that deferred,
    /// if their share allows.
    fn defer(&self, bytes: usize) -> Result<(), Refused> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.deferred.saturating_add(bytes) > self.deferred_cap() {
            return Err(Refused::OverCap);
        }
        state.deferred += bytes;
        Ok(())
    }

    fn release(&self, plugin: &Arc<str>, bytes: usize, deferred: bool) {
        if bytes == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.used = state.used.saturating_sub(bytes);
        if deferred {
            state.deferred = state.deferred.saturating_sub(bytes);
        }
        if let Some(mine) = state.by_plugin.get_mut(plugin) {
            *mine = mine.saturating_sub(bytes);
            if *mine == 0 {
                state.by_plugin.remove(plugin);
            }
        }
    }

    /// What the calls that deferred hold now.
    fn deferred(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .deferred
    }

    fn used(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used
    }
}

/// One store's limits: its instance's memories together up to
/// `per_instance`, every byte of it taken from the global budget (within
/// the plugin's cap) and given back when the store is dropped.
pub(super) struct Limiter {
    budget: Arc<MemoryBudget>,
    plugin: Arc<str>,
    per_instance: usize,
    reserved: usize,
    /// Whether the call deferred its reply.
    deferred: bool,
    /// Why the budget refused a growth, if it did.
    refused: Option<Refused>,
}

impl Limiter {
    pub(super) fn new(budget: Arc<MemoryBudget>, plugin: Arc<str>, per_instance: usize) -> Self {
        Limiter {
            budget,
            plugin,
            per_instance,
            reserved: 0,
            deferred: false,
            refused: None,
        }
    }
}

impl Limiter {
    /// From now on, counts this instance's memory among the calls that
    /// deferred their reply too (see [`MemoryBudget::deferred_cap`]);
    /// `false` if they hold their share already.
    pub(super) fn defer(&mut self) -> bool {
        if self.deferred {
            return true;
        }
        if self.budget.defer(self.reserved).is_err() {
            return false;
        }
        self.deferred = true;
        true
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // wasmtime asks before it checks the memory's own maximum: a growth
        // past it fails anyway and must reserve nothing.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let more = desired.saturating_sub(current);
        if self.reserved.saturating_add(more) > self.per_instance {
            return Ok(false);
        }
        if let Err(refused) = self.budget.reserve(&self.plugin, more, self.deferred) {
            self.refused = Some(refused);
            return Ok(false);
        }
        // A guest may survive a refusal (its allocator copes): only the
        // latest refusal explains a failure.
        self.refused = None;
        self.reserved += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000 && maximum.is_none_or(|max| desired <= max))
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        2
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.budget
            .release(&self.plugin, self.reserved, self.deferred);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_that_defer_hold_half_the_budget_together() {
        // The attack: plugins defer, then grow and keep their memory for
        // the whole later time limit, so that messages find none.
        let budget = Arc::new(MemoryBudget::new(100, 30));
        budget.set_plugins(1);
        let slow: Arc<str> = "slow".into();
        let mut a = Limiter::new(budget.clone(), slow.clone(), 60);
        let mut b = Limiter::new(budget.clone(), slow.clone(), 60);
        assert!(a.memory_growing(0, 30, None).unwrap());
        assert!(b.memory_growing(0, 30, None).unwrap());
        assert!(a.defer());
        assert_eq!(budget.deferred(), 30);
        assert_eq!(budget.held_by("slow"), 60, "still the plugin's");
        assert!(a.memory_growing(30, 50, None).unwrap(), "up to half");
        assert!(!a.memory_growing(50, 51, None).unwrap());
        assert_eq!(a.refused, Some(Refused::OverCap));
        // Half is taken: another call may not defer; answering messages
        // still has the rest.
        assert!(!b.defer());
        assert!(b.memory_growing(30, 50, None).unwrap());
        drop(a);
        assert_eq!(budget.deferred(), 0);
        assert!(b.defer());
        drop(b);
        assert_eq!((budget.used(), budget.deferred()), (0, 0));

        // With several plugins, one keeps within its own half, deferred
        // calls included: it cannot hold its half live and the deferred
        // half too.
        budget.set_plugins(2);
        let mut live = Limiter::new(budget.clone(), slow.clone(), 60);
        let mut later = Limiter::new(budget.clone(), slow.clone(), 60);
        assert!(live.memory_growing(0, 40, None).unwrap());
        assert!(later.defer());
        assert!(later.memory_growing(0, 10, None).unwrap());
        assert!(!later.memory_growing(10, 11, None).unwrap());
        assert_eq!(later.refused, Some(Refused::OverCap));
    }

    #[test]
    fn the_budget_holds_across_instances_and_is_returned() {
        let budget = Arc::new(MemoryBudget::new(100, 40));
        budget.set_plugins(3);
        let (hog, other): (Arc<str>, Arc<str>) = ("hog".into(), "other".into());
        let mut a = Limiter::new(budget.clone(), hog.clone(), 60);
        let mut b = Limiter::new(budget.clone(), hog.clone(), 60);
        let mut c = Limiter::new(budget.clone(), other.clone(), 60);
        assert!(a.memory_growing(0, 40, None).unwrap());
        assert!(!a.memory_growing(40, 61, None).unwrap(), "own instance cap");
        assert_eq!(a.refused, None);
        // A second memory of the same instance counts towards its cap.
        assert!(!a.memory_growing(0, 21, None).unwrap());
        // The hog may hold half the budget, whatever the instance.
        assert!(b.memory_growing(0, 10, None).unwrap());
        assert!(!b.memory_growing(10, 11, None).unwrap());
        assert_eq!(b.refused, Some(Refused::OverCap));
        // Another plugin gets the rest, then the host is full for a third
        // one within its cap.
        assert!(c.memory_growing(0, 50, None).unwrap());
        let mut d = Limiter::new(budget.clone(), "third".into(), 60);
        assert!(!d.memory_growing(0, 1, None).unwrap());
        assert_eq!(d.refused, Some(Refused::Full));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 60);
        assert!(d.memory_growing(0, 1, None).unwrap());
        drop((b, c, d));
        assert_eq!(budget.used(), 0);
        assert!(budget.state.lock().unwrap().by_plugin.is_empty());

        // The cap is never below one instance's worth.
        let small = MemoryBudget::new(100, 64);
        small.set_plugins(2);
        assert_eq!(small.cap(), 64);
    }

    #[test]
    fn a_later_success_clears_a_refusal() {
        let budget = Arc::new(MemoryBudget::new(10, 10));
        let mut a = Limiter::new(budget.clone(), "p".into(), 10);
        assert!(!a.memory_growing(0, 11, None).unwrap());
        assert!(a.memory_growing(0, 5, None).unwrap());
        assert!(!a.memory_growing(5, 11, None).unwrap());
        assert_eq!(a.refused, None, "its own instance cap, not the budget");
        let mut b = Limiter::new(budget.clone(), "q".into(), 10);
        assert!(!b.memory_growing(0, 6, None).unwrap());
        assert_eq!(b.refused, Some(Refused::Full));
        assert!(b.memory_growing(0, 5, None).unwrap());
        assert_eq!(b.refused, None);
    }

    #[test]
    fn failures_are_classified_by_cause() {
        let stderr = StderrTail::default();
        let budget = Duration::from_secs(1);
        let trap = |t: Trap| wasmtime::Error::from(t);
        let c = |e: &wasmtime::Error, instantiating, refused| {
            classify(e, instantiating, refused, budget, &stderr, 100 << 20)
        };
        // A trap while starting is the plugin's own.
        assert!(matches!(
            c(&trap(Trap::UnreachableCodeReached), true, None),
            PluginError::Trap(_)
        ));
        assert!(matches!(
            c(&wasmtime::Error::msg("link"), true, None),
            PluginError::Instantiate(_)
        ));
        // The deadline wins over an earlier refusal.
        assert_eq!(
            c(&trap(Trap::Interrupt), false, Some(Refused::Full)),
            PluginError::Timeout(budget)
        );
        assert!(matches!(
            c(
                &trap(Trap::UnreachableCodeReached),
                false,
                Some(Refused::Full)
            ),
            PluginError::Capacity(_)
        ));
        assert!(matches!(
            c(
                &trap(Trap::UnreachableCodeReached),
                false,
                Some(Refused::OverCap)
            ),
            PluginError::Memory(_)
        ));
    }

    #[test]
    fn a_growth_past_the_memorys_maximum_reserves_nothing() {
        let budget = Arc::new(MemoryBudget::new(100 << 20, 64 << 20));
        let mut limiter = Limiter::new(budget.clone(), "p".into(), 64 << 20);
        assert!(
            !limiter
                .memory_growing(1 << 16, 64 << 20, Some(1 << 16))
                .unwrap()
        );
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn alone_a_plugin_may_use_the_whole_budget() {
        let budget = Arc::new(MemoryBudget::new(100, 64));
        budget.set_plugins(1);
        let mut a = Limiter::new(budget.clone(), "only".into(), 101);
        assert!(a.memory_growing(0, 100, None).unwrap());
        // Past the budget it is the host that is full, not the plugin's cap.
        assert!(!a.memory_growing(100, 101, None).unwrap());
        assert_eq!(a.refused, Some(Refused::Full));
    }
}
