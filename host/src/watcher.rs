//! The plugins-folder watcher. It only reports: debounced file-system
//! events become file names sent on a channel, and one task
//! ([`reload_loop`]) loads them. Editors and `cp` write a file in several
//! steps; the debouncer waits until a file has been quiet for
//! [`DEBOUNCE`] before naming it.

use crate::registry::{Registry, is_plugin_file};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time before a changed file is loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(75);

/// What the reload task is asked to do.
#[derive(Debug)]
pub enum Reload {
    /// These files changed (added, replaced or removed).
    Files(Vec<String>),
    /// Look at the whole folder again (start, watcher error).
    All,
    /// The operator asks for a rescan (SIGHUP): also retry failed files
    /// and enable disabled plugins.
    Rescan,
}

/// Keeps watching while alive.
pub struct Watcher {
    _debouncer: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
}

/// Starts watching `dir`; events go to `tx`.
pub fn watch(
    dir: &Path,
    tx: mpsc::UnboundedSender<Reload>,
) -> notify_debouncer_mini::notify::Result<Watcher> {
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        let reload = match result {
            Ok(events) => {
                let names: BTreeSet<String> = events
                    .into_iter()
                    // `AnyContinuous` fires during long writes: wait for quiet.
                    .filter(|e| e.kind == DebouncedEventKind::Any)
                    .filter_map(|e| Some(e.path.file_name()?.to_string_lossy().into_owned()))
                    .filter(|name| is_plugin_file(name))
                    .collect();
                if names.is_empty() {
                    return;
                }
                Reload::Files(names.into_iter().collect())
            }
            Err(e) => {
                tracing::warn!("plugins folder watcher: {e}; rescanning");
                Reload::All
            }
        };
        let _ = tx.send(reload);
    })?;
    debouncer
        .watcher()
        .watch(dir, RecursiveMode::NonRecursive)?;
    Ok(Watcher {
        _debouncer: debouncer,
    })
}

/// Applies reload requests to `registry` until the channel closes,
/// coalescing requests that queued up during a load, and schedules the
/// retries of transient failures (sent back through `tx` after their delay).
pub async fn reload_loop(
    registry: Arc<Registry>,
    mut rx: mpsc::UnboundedReceiver<Reload>,
    tx: mpsc::UnboundedSender<Reload>,
) {
    // Dropped with this task, which cancels the pending retries.
    let mut retries = tokio::task::JoinSet::new();
    loop {
        let first = tokio::select! {
            request = rx.recv() => match request {
                Some(request) => Some(request),
                None => return,
            },
            // Retries of failures found outside this task (POST /plugins/reload).
            () = registry.retries_ready() => None,
        };
        let mut all = None;
        let mut names = BTreeSet::new();
        let mut next = first;
        while let Some(request) = next {
            match request {
                Reload::All => all = Some(all.unwrap_or(false)),
                Reload::Rescan => all = Some(true),
                Reload::Files(files) => names.extend(files),
            }
            next = rx.try_recv().ok();
        }
        match all {
            Some(fresh) => registry.scan(fresh).await,
            None if !names.is_empty() => registry.reload(names).await,
            None => {}
        }
        while retries.try_join_next().is_some() {}
        for (file, delay) in registry.take_retries() {
            let tx = tx.clone();
            retries.spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Reload::Files(vec![file]));
            });
        }
    }
}
