//! One call of a plugin: a fresh `Store` with the plugin's grant, a memory
//! limiter that holds both the per-instance cap and the global budget, a
//! deadline, and the outcome classified into a [`PluginError`].

use super::bindings;
use super::host::{HostState, PluginCtx, StderrTail, to_wit_message};
use super::{PluginError, PluginInfo, Runtime, error_chain};
use crate::message::{Inbound, Reply};
use crate::policy::Grant;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};

/// A loaded plugin: ready to be instantiated for each message.
pub struct Plugin {
    info: PluginInfo,
    pre: bindings::BehaviourPre<HostState>,
    ctx: Arc<PluginCtx>,
    runtime: Arc<Runtime>,
}

impl Plugin {
    pub(super) fn new(
        info: PluginInfo,
        pre: bindings::BehaviourPre<HostState>,
        ctx: PluginCtx,
        runtime: Arc<Runtime>,
    ) -> Self {
        Plugin {
            info,
            pre,
            ctx: Arc::new(ctx),
            runtime,
        }
    }

    /// What the plugin declared about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// What the operator granted it: its settings, hosts, variables, folder.
    pub fn grant(&self) -> &Grant {
        &self.ctx.grant
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
            Err(reason) => Err(PluginError::failed(&reason)),
        }
    }
}

impl Runtime {
    /// Runs one export call in a fresh store with `deadline`.
    pub(super) async fn call<R>(
        &self,
        pre: &bindings::BehaviourPre<HostState>,
        ctx: Arc<PluginCtx>,
        deadline: Instant,
        f: impl for<'a> FnOnce(
            &'a bindings::exports::wasmbot::plugin::handler::Guest,
            &'a mut Store<HostState>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
        > + Send,
    ) -> Result<R, PluginError> {
        let stderr = StderrTail::default();
        // Deny by default: no environment, arguments, files or sockets,
        // except what the operator granted.
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        for (name, value) in &ctx.grant.env {
            wasi.env(name, value);
        }
        if let Some(dir) = &ctx.grant.dir {
            wasi.preopened_dir(dir, "/data", FsPerms::ReadOnly)
                .map_err(|e| {
                    PluginError::instantiate(&format!("granted folder {}: {e}", dir.display()))
                })?;
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(self.budget.clone(), self.limits.memory),
            ctx,
            requests: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(self.limits.hostcall_fuel);
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
        let outcome = {
            let run = async {
                let instance = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| (true, e))?;
                f(instance.wasmbot_plugin_handler(), &mut store)
                    .await
                    .map_err(|e| (false, e))
            };
            // The epoch trap cuts guest code; this also bounds time spent
            // waiting in host calls.
            tokio::time::timeout_at(deadline.into(), run).await
        };
        let over_budget = store.data().limiter.hit_budget;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Err(_elapsed) => Err(PluginError::Timeout(budget)),
            Ok(Err((instantiating, e))) => Err(classify(
                &e,
                instantiating,
                over_budget,
                budget,
                &stderr,
                self.limits.memory_budget,
            )),
        }
    }

    /// Guest memory in use now, and the budget.
    pub fn memory_stats(&self) -> MemoryStats {
        MemoryStats {
            budget: self.budget.limit,
            in_use: self.budget.used.load(Ordering::Relaxed),
            per_instance: self.limits.memory,
        }
    }
}

/// What a failed call was.
fn classify(
    e: &wasmtime::Error,
    instantiating: bool,
    over_budget: bool,
    budget: Duration,
    stderr: &StderrTail,
    memory_budget: usize,
) -> PluginError {
    if over_budget {
        return PluginError::Capacity(format!(
            "the {} MiB memory budget of all plugins is in use",
            memory_budget >> 20
        ));
    }
    if let Some(pool) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return PluginError::Capacity(format!("the instance pool is full: {pool}"));
    }
    if instantiating {
        return PluginError::instantiate(&error_chain(e));
    }
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
    PluginError::trap(&reason)
}

/// Guest memory, as `GET /plugins` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryStats {
    /// Linear memory all instances together may use, in bytes.
    pub budget: usize,
    /// Linear memory of the instances alive now, in bytes.
    pub in_use: usize,
    /// Linear memory one instance may use, in bytes.
    pub per_instance: usize,
}

/// The linear memory of all live instances together, against a limit.
#[derive(Debug)]
pub(super) struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub(super) fn new(limit: usize) -> Self {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One store's limits: its instance's memories together up to `per_instance`,
/// every byte of it taken from the global budget and given back when the
/// store is dropped.
pub(super) struct Limiter {
    budget: Arc<MemoryBudget>,
    per_instance: usize,
    reserved: usize,
    /// A growth was refused by the global budget, not by this instance's
    /// own cap: the failure is the host's capacity, not the plugin's fault.
    hit_budget: bool,
}

impl Limiter {
    fn new(budget: Arc<MemoryBudget>, per_instance: usize) -> Self {
        Limiter {
            budget,
            per_instance,
            reserved: 0,
            hit_budget: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.reserved.saturating_add(more) > self.per_instance {
            return Ok(false);
        }
        if !self.budget.try_reserve(more) {
            self.hit_budget = true;
            return Ok(false);
        }
        self.reserved += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        8
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_across_instances_and_is_returned() {
        let budget = Arc::new(MemoryBudget::new(100));
        let mut a = Limiter::new(budget.clone(), 60);
        let mut b = Limiter::new(budget.clone(), 60);
        assert!(a.memory_growing(0, 50, None).unwrap());
        assert!(!a.memory_growing(50, 61, None).unwrap(), "own cap");
        assert!(!a.hit_budget);
        // A second memory of the same instance counts towards its cap.
        assert!(!a.memory_growing(0, 20, None).unwrap());
        assert!(b.memory_growing(0, 50, None).unwrap());
        assert!(!b.memory_growing(50, 55, None).unwrap(), "global budget");
        assert!(b.hit_budget);
        assert_eq!(budget.used.load(Ordering::Relaxed), 100);
        drop(a);
        assert_eq!(budget.used.load(Ordering::Relaxed), 50);
        assert!(b.memory_growing(50, 55, None).unwrap());
        drop(b);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
    }
}
