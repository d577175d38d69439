//! The registry: which plugins are loaded, from which files, and which
//! files failed to load and why.
//!
//! A plugin's identity is its file. Per-file state lives behind an async
//! mutex that only loading code takes, so loads are serialised; readers
//! take an immutable [`Snapshot`] (an `Arc`, swapped whole), so a message is
//! dispatched to one consistent set of plugins, never waits on a load, and
//! finishes on the versions it started with. Compiling happens on a
//! blocking thread, off the request path. A file that fails to load leaves
//! the previous good version of that file serving.

use crate::runtime::{LoadError, Plugin, Runtime};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, watch};

/// Operator settings for a plugin name.
pub type SettingsFn = dyn Fn(&str) -> BTreeMap<String, String> + Send + Sync;

/// A plugin loaded from a file.
pub struct Loaded {
    pub plugin: Plugin,
    /// File name inside the plugins folder.
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub loaded_at: SystemTime,
    pub stats: Stats,
}

/// How a loaded plugin has fared since it was loaded.
#[derive(Default)]
pub struct Stats {
    calls: AtomicU64,
    failures: AtomicU64,
    consecutive: AtomicU64,
    disabled: AtomicBool,
    last_failure: std::sync::Mutex<Option<String>>,
}

/// [`Stats`] as `GET /plugins` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsView {
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub disabled: bool,
    pub last_failure: Option<String>,
}

impl Stats {
    /// Counts a successful call.
    pub fn success(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
    }

    /// Counts a failed call; disables the plugin when `disable_after` (not
    /// zero) failures in a row are reached. Returns whether it did.
    pub fn failure(&self, error: &str, disable_after: u64) -> bool {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let row = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
        disable_after > 0 && row >= disable_after && !self.disabled.swap(true, Ordering::Relaxed)
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Gives a disabled plugin another chance (on an explicit rescan).
    fn enable(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        self.disabled.store(false, Ordering::Relaxed);
    }

    pub fn view(&self) -> StatsView {
        StatsView {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            disabled: self.is_disabled(),
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A file whose latest content failed to load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub file: String,
    pub error: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The earlier version of this file that still serves, as
    /// `name version`, if there is one.
    pub still_serving: Option<String>,
}

/// Something loaded but worth an operator's look.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Warning {
    pub plugin: String,
    pub files: Vec<String>,
    pub warning: String,
}

/// One consistent view of the plugins folder.
#[derive(Default)]
pub struct Snapshot {
    /// In merge order: priority, then name, then file.
    pub plugins: Vec<Arc<Loaded>>,
    pub errors: Vec<Failure>,
    pub warnings: Vec<Warning>,
}

/// What the registry knows of one file.
#[derive(Default)]
struct FileState {
    loaded: Option<Arc<Loaded>>,
    error: Option<Failure>,
    /// The content hash that `error` is about.
    error_sha256: Option<String>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    settings: Arc<SettingsFn>,
    /// Per-file state; held across a whole load, which serialises loads.
    files: Mutex<BTreeMap<String, FileState>>,
    /// A folder-level failure (unreadable folder), reported with the files'.
    folder_error: Mutex<Option<Failure>>,
    current: RwLock<Arc<Snapshot>>,
    ready: watch::Sender<bool>,
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>, dir: PathBuf, settings: Arc<SettingsFn>) -> Self {
        Registry {
            runtime,
            dir,
            settings,
            files: Mutex::default(),
            folder_error: Mutex::default(),
            current: RwLock::new(Arc::default()),
            ready: watch::Sender::new(false),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The plugins as they are now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether the first scan of the folder has finished.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first scan has finished.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        // The sender lives in `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Brings every file of the folder up to date: loads new and changed
    /// `*.wasm` files (not hidden ones), forgets removed ones, and gives
    /// plugins disabled for failing another chance. A file that fails is
    /// reported, never fatal; an unreadable folder is reported as an error
    /// entry for the folder.
    pub async fn scan(&self) {
        let mut files = self.files.lock().await;
        for loaded in files.values().filter_map(|s| s.loaded.as_ref()) {
            loaded.stats.enable();
        }
        let listed = match list_plugin_files(&self.dir).await {
            Ok(listed) => {
                *self.folder_error.lock().await = None;
                listed
            }
            Err(e) => {
                let error = format!("cannot read the plugins folder {}: {e}", self.dir.display());
                tracing::error!("{error}");
                *self.folder_error.lock().await = Some(Failure {
                    file: self.dir.display().to_string(),
                    error,
                    at: unix_now(),
                    still_serving: None,
                });
                // Keep what is loaded: the folder may come back.
                files.keys().cloned().collect()
            }
        };
        let gone: Vec<String> = files
            .keys()
            .filter(|name| !listed.contains(name))
            .cloned()
            .collect();
        for name in gone.iter().chain(&listed) {
            self.refresh(&mut files, name).await;
        }
        self.publish(&files).await;
        self.ready.send_replace(true);
    }

    /// Brings the named files up to date (added, changed or removed).
    pub async fn reload(&self, names: impl IntoIterator<Item = String>) {
        let mut files = self.files.lock().await;
        for name in names {
            if is_plugin_file(&name) {
                self.refresh(&mut files, &name).await;
            }
        }
        self.publish(&files).await;
    }

    /// Loads, replaces or forgets one file according to what is on disk.
    async fn refresh(&self, files: &mut BTreeMap<String, FileState>, name: &str) {
        let path = self.dir.join(name);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(old) = files.remove(name).and_then(|s| s.loaded) {
                    let info = old.plugin.info();
                    tracing::info!(
                        file = name,
                        plugin = info.name,
                        version = info.version,
                        "plugin removed"
                    );
                }
                return;
            }
            Err(e) => {
                let state = files.entry(name.to_owned()).or_default();
                state.error =
                    Some(self.failure(state, name, format!("cannot read {}: {e}", path.display())));
                return;
            }
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        let state = files.entry(name.to_owned()).or_default();
        let current = match &state.error {
            Some(_) => state.error_sha256.as_ref(),
            None => state.loaded.as_ref().map(|l| &l.sha256),
        };
        if current == Some(&sha256) {
            return; // touched, not changed
        }
        match self.load(name, bytes, sha256.clone()).await {
            Ok(loaded) => {
                let info = loaded.plugin.info();
                let verb = if state.loaded.is_some() {
                    "plugin replaced"
                } else {
                    "plugin loaded"
                };
                tracing::info!(
                    file = name,
                    plugin = info.name,
                    version = info.version,
                    sha256 = &loaded.sha256[..12],
                    "{verb}"
                );
                state.loaded = Some(Arc::new(loaded));
                state.error = None;
                state.error_sha256 = None;
            }
            Err(error) => {
                let failure = self.failure(state, name, error);
                state.error_sha256 = Some(sha256);
                match &failure.still_serving {
                    Some(old) => tracing::error!(
                        file = name,
                        "plugin not loaded, {old} still serves: {}",
                        failure.error
                    ),
                    None => tracing::error!(file = name, "plugin not loaded: {}", failure.error),
                }
                state.error = Some(failure);
            }
        }
    }

    fn failure(&self, state: &FileState, name: &str, error: String) -> Failure {
        Failure {
            file: name.to_owned(),
            error,
            at: unix_now(),
            still_serving: state.loaded.as_ref().map(|l| {
                let info = l.plugin.info();
                format!("{} {}", info.name, info.version)
            }),
        }
    }

    async fn load(&self, file: &str, bytes: Vec<u8>, sha256: String) -> Result<Loaded, String> {
        let path = self.dir.join(file);
        let size = bytes.len() as u64;
        let runtime = self.runtime.clone();
        let compiled = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| format!("compiler task failed: {e}"))?
            .map_err(|e| describe(&path, e))?;
        let settings = self.settings.clone();
        let plugin = self
            .runtime
            .load(compiled, |name| settings(name))
            .await
            .map_err(|e| describe(&path, e))?;
        Ok(Loaded {
            plugin,
            file: file.to_owned(),
            sha256,
            size,
            loaded_at: SystemTime::now(),
            stats: Stats::default(),
        })
    }

    /// Makes a new snapshot of `files` current.
    async fn publish(&self, files: &BTreeMap<String, FileState>) {
        let mut plugins: Vec<Arc<Loaded>> =
            files.values().filter_map(|s| s.loaded.clone()).collect();
        plugins.sort_by(|a, b| {
            let (ia, ib) = (a.plugin.info(), b.plugin.info());
            (ia.priority, &ia.name, &a.file).cmp(&(ib.priority, &ib.name, &b.file))
        });
        let mut errors: Vec<Failure> = self.folder_error.lock().await.iter().cloned().collect();
        errors.extend(files.values().filter_map(|s| s.error.clone()));

        let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for loaded in &plugins {
            by_name
                .entry(&loaded.plugin.info().name)
                .or_default()
                .push(loaded.file.clone());
        }
        let warnings = by_name
            .into_iter()
            .filter(|(_, files)| files.len() > 1)
            .map(|(name, files)| {
                tracing::warn!(plugin = name, ?files, "several files declare the same plugin; all of them run");
                Warning {
                    plugin: name.to_owned(),
                    warning: format!(
                        "{} files declare the plugin {name:?}; all of them run and share its settings",
                        files.len()
                    ),
                    files,
                }
            })
            .collect();

        let snapshot = Arc::new(Snapshot {
            plugins,
            errors,
            warnings,
        });
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
    }
}

/// The plugin files of `dir`, sorted by name.
async fn list_plugin_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_plugin_file(&name) && entry.file_type().await?.is_file() {
            files.push(name);
        }
    }
    files.sort();
    Ok(files)
}

fn describe(path: &Path, e: LoadError) -> String {
    format!("{}: {e}", path.display())
}

/// `*.wasm`, not hidden (editors' and our own temp files start with `.`).
pub fn is_plugin_file(name: &str) -> bool {
    name.ends_with(".wasm") && !name.starts_with('.') && name.len() > ".wasm".len()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files() {
        for name in ["quote.wasm", "my-plugin.wasm"] {
            assert!(is_plugin_file(name), "{name}");
        }
        for name in [
            ".quote.wasm.tmp",
            ".quote.wasm",
            "quote.wasm~",
            "quote.wasm.swp",
            "quote.wat",
            ".wasm",
            "README.md",
            "quote",
        ] {
            assert!(!is_plugin_file(name), "{name}");
        }
    }
}
