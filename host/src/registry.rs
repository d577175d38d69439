//! The registry: which plugins are loaded, from which files, and which
//! files failed to load and why.
//!
//! A plugin's identity is its file: `quote.wasm` is the plugin `quote`
//! ([`PluginId`]) and gets what the [`Policy`] grants `quote`, whatever it
//! declares. Per-file state lives behind an async mutex that only loading
//! code takes, so loads are serialised; readers take an immutable
//! [`Snapshot`] (an `Arc`, swapped whole), so a message is dispatched to
//! one consistent set of plugins, never waits on a load, and finishes on
//! the versions it started with. Reading, hashing and compiling happen on
//! blocking threads, off the request path and off the async workers. A file
//! that fails to load leaves the previous good version of that file
//! serving.
//!
//! Only regular files (or symlinks to them) up to `max_plugin_size` are
//! read, opened without blocking, so a FIFO or a device named `*.wasm`
//! is an error entry, never a stuck loader. A failure that may pass
//! ([`LoadError::is_transient`]) is retried with backoff instead of being
//! remembered until the bytes change.

use crate::error::{LoadError, untrusted};
use crate::policy::{PluginId, Policy};
use crate::runtime::{Plugin, Runtime};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, watch};

/// How the registry loads files.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest plugin file read (a bigger one is an error entry).
    pub max_plugin_size: u64,
    /// Plugins loaded at once; the instance pool is sized for them.
    pub max_plugins: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_plugin_size: 64 << 20,
            max_plugins: 16,
        }
    }
}

/// Transient failures are retried this often (after 1, 2, 4, 8, 16 s),
/// then remembered until the file changes or the folder is rescanned.
const RETRIES: u32 = 5;

/// A plugin loaded from a file.
pub struct Loaded {
    pub plugin: Plugin,
    /// The plugin's identity, from its file name.
    pub id: PluginId,
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
    last_failure: std::sync::Mutex<Option<crate::error::PluginError>>,
}

/// [`Stats`] as `GET /plugins` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsView {
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub disabled: bool,
    pub last_failure: Option<crate::error::PluginError>,
}

impl Stats {
    /// Counts a successful call.
    pub fn success(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
    }

    /// Counts a failed call; disables the plugin when `disable_after` (not
    /// zero) failures in a row are reached. Failures that are not the
    /// plugin's fault (capacity, instantiation) are shown but do not count
    /// towards disabling it. Returns whether it disabled the plugin.
    pub fn failure(&self, error: &crate::error::PluginError, disable_after: u64) -> bool {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        if !error.is_plugins_fault() {
            return false;
        }
        let row = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
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
    /// The id its name gives, when it is a valid one.
    pub id: Option<PluginId>,
    pub error: LoadError,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The earlier version of this file that still serves, as
    /// `name version`, if there is one.
    pub still_serving: Option<String>,
    /// Seconds until it is tried again, for a failure that may pass.
    pub retry_in: Option<u64>,
}

/// Something loaded but worth an operator's look.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Warning {
    pub plugin: PluginId,
    pub file: String,
    pub warning: String,
}

/// One consistent view of the plugins folder.
#[derive(Default)]
pub struct Snapshot {
    /// In merge order: priority, then id.
    pub plugins: Vec<Arc<Loaded>>,
    pub errors: Vec<Failure>,
    pub warnings: Vec<Warning>,
}

/// What the registry knows of one file.
#[derive(Default)]
struct FileState {
    loaded: Option<Arc<Loaded>>,
    error: Option<Failure>,
    /// The content hash that `error` is about, when it is remembered until
    /// the content changes.
    error_sha256: Option<String>,
    /// Transient failures in a row of the content `attempted`.
    attempts: u32,
    attempted: Option<String>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    policy: Arc<Policy>,
    limits: Limits,
    /// Per-file state; held across a whole load, which serialises loads.
    files: Mutex<BTreeMap<String, FileState>>,
    /// A folder-level failure (unreadable folder), reported with the files'.
    folder_error: Mutex<Option<String>>,
    current: RwLock<Arc<Snapshot>>,
    ready: watch::Sender<bool>,
    /// Scans asked for, and the latest asked-for scan a finished scan
    /// covered: requests that queue up during a scan share the next one.
    scans_requested: AtomicU64,
    scans_covered: AtomicU64,
    /// Scans performed.
    scans_done: AtomicU64,
    /// Files to load again later, with the delay (transient failures),
    /// and the signal that there are some.
    retries: std::sync::Mutex<Vec<(String, Duration)>>,
    retries_ready: tokio::sync::Notify,
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>, dir: PathBuf, policy: Arc<Policy>, limits: Limits) -> Self {
        Registry {
            runtime,
            dir,
            policy,
            limits,
            files: Mutex::default(),
            folder_error: Mutex::default(),
            current: RwLock::new(Arc::default()),
            ready: watch::Sender::new(false),
            scans_requested: AtomicU64::new(0),
            scans_covered: AtomicU64::new(0),
            scans_done: AtomicU64::new(0),
            retries: std::sync::Mutex::default(),
            retries_ready: tokio::sync::Notify::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
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

    /// How many scans of the whole folder have run.
    pub fn scans(&self) -> u64 {
        self.scans_done.load(Ordering::Relaxed)
    }

    /// Resolves when there are retries to take (whoever caused them: the
    /// watcher, SIGHUP or `POST /plugins/reload`).
    pub async fn retries_ready(&self) {
        self.retries_ready.notified().await;
    }

    /// Files whose transient failure should be retried, with the delay;
    /// taken by the reload task, which schedules them.
    pub fn take_retries(&self) -> Vec<(String, Duration)> {
        std::mem::take(&mut *self.retries.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Brings every file of the folder up to date: loads new and changed
    /// `*.wasm` files (not hidden ones) and forgets removed ones. A file
    /// that fails is reported, never fatal; an unreadable folder is
    /// reported as an error entry for the folder. An operator's rescan
    /// (`fresh`: SIGHUP, `POST /plugins/reload`) also tries failed files
    /// again and gives plugins disabled for failing another chance.
    ///
    /// Scans asked for while one runs are coalesced: they all return when
    /// the next scan, which started after they asked, has finished.
    pub async fn scan(&self, fresh: bool) {
        let ticket = self.scans_requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut files = self.files.lock().await;
        if self.scans_covered.load(Ordering::Acquire) >= ticket {
            return; // a scan that started after we asked has finished
        }
        let covers = self.scans_requested.load(Ordering::Acquire);
        for state in files.values_mut().filter(|_| fresh) {
            if let Some(loaded) = &state.loaded {
                loaded.stats.enable();
            }
            state.error_sha256 = None;
            state.attempts = 0;
        }
        let listed = match list_plugin_files(&self.dir).await {
            Ok(listed) => {
                *self.folder_error.lock().await = None;
                listed
            }
            Err(e) => {
                let error = format!("cannot read the plugins folder {}: {e}", self.dir.display());
                tracing::error!("{error}");
                *self.folder_error.lock().await = Some(error);
                // Keep what is loaded: the folder may come back.
                files.keys().cloned().collect()
            }
        };
        let names: BTreeSet<String> = files
            .keys()
            .cloned()
            .chain(listed.iter().cloned())
            .collect();
        for name in &names {
            self.refresh(&mut files, name).await;
        }
        self.publish(&files).await;
        self.scans_covered.fetch_max(covers, Ordering::AcqRel);
        self.scans_done.fetch_add(1, Ordering::Relaxed);
        self.ready.send_replace(true);
    }

    /// Brings the named files up to date (added, changed or removed).
    pub async fn reload(&self, names: impl IntoIterator<Item = String>) {
        let mut files = self.files.lock().await;
        let before: BTreeSet<String> = files.keys().cloned().collect();
        for name in names {
            if is_plugin_file(&name) {
                self.refresh(&mut files, &name).await;
            }
        }
        // A file that went away may have been what another was refused
        // for (the plugin limit): try those again.
        if before.iter().any(|name| !files.contains_key(name)) {
            let waiting: Vec<String> = files
                .iter()
                .filter(|(_, s)| {
                    s.loaded.is_none()
                        && matches!(
                            s.error.as_ref().map(|f| &f.error),
                            Some(LoadError::TooMany { .. })
                        )
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in waiting {
                self.refresh(&mut files, &name).await;
            }
        }
        self.publish(&files).await;
    }

    /// Loads, replaces or forgets one file according to what is on disk.
    async fn refresh(&self, files: &mut BTreeMap<String, FileState>, name: &str) {
        let id = match PluginId::from_file(name) {
            Ok(id) => id,
            Err(e) => {
                if tokio::fs::symlink_metadata(self.dir.join(name))
                    .await
                    .is_ok()
                {
                    let state = files.entry(name.to_owned()).or_default();
                    if state.error.is_none() {
                        tracing::error!(file = name, "plugin not loaded: {e}");
                    }
                    state.error = Some(self.failure(state, name, None, e.into(), None));
                } else {
                    files.remove(name);
                }
                return;
            }
        };
        let path = self.dir.join(name);
        let max = self.limits.max_plugin_size;
        let read = tokio::task::spawn_blocking(move || read_plugin_file(&path, max))
            .await
            .unwrap_or_else(|e| Err(LoadError::Internal(format!("reader task: {e}"))));
        let (bytes, sha256) = match read {
            Ok(Some(read)) => read,
            Ok(None) => {
                if let Some(old) = files.remove(name).and_then(|s| s.loaded) {
                    tracing::info!(
                        file = name,
                        plugin = %old.id,
                        version = old.plugin.info().version,
                        "plugin removed"
                    );
                }
                return;
            }
            Err(error) => {
                self.fail(files, name, &id, error, None);
                return;
            }
        };
        let state = files.entry(name.to_owned()).or_default();
        let current = match &state.error {
            Some(_) => state.error_sha256.as_ref(),
            None => state.loaded.as_ref().map(|l| &l.sha256),
        };
        if current == Some(&sha256) {
            return; // touched, not changed (or a remembered failure)
        }
        if let Some(error) = self.refusal(files, name) {
            self.fail(files, name, &id, error, Some(sha256));
            return;
        }
        let size = bytes.len() as u64;
        match self.load(&id, bytes).await {
            Ok(plugin) => {
                let state = files.entry(name.to_owned()).or_default();
                let loaded = Loaded {
                    plugin,
                    id: id.clone(),
                    file: name.to_owned(),
                    sha256,
                    size,
                    loaded_at: SystemTime::now(),
                    stats: Stats::default(),
                };
                self.log_loaded(&loaded, state.loaded.is_some());
                state.loaded = Some(Arc::new(loaded));
                state.error = None;
                state.error_sha256 = None;
                state.attempts = 0;
                state.attempted = None;
            }
            Err(error) => self.fail(files, name, &id, error, Some(sha256)),
        }
    }

    /// Why a file may not be loaded now whatever its content: the plugin
    /// limit is reached.
    fn refusal(&self, files: &BTreeMap<String, FileState>, name: &str) -> Option<LoadError> {
        let is_loaded = |file: &str| files.get(file).is_some_and(|s| s.loaded.is_some());
        let loaded = files.values().filter(|s| s.loaded.is_some()).count();
        if !is_loaded(name) && loaded >= self.limits.max_plugins {
            return Some(LoadError::TooMany { loaded });
        }
        None
    }

    /// Records a failure of `name`; a transient one is scheduled again.
    fn fail(
        &self,
        files: &mut BTreeMap<String, FileState>,
        name: &str,
        id: &PluginId,
        error: LoadError,
        sha256: Option<String>,
    ) {
        let state = files.entry(name.to_owned()).or_default();
        if state.attempted != sha256 {
            state.attempts = 0;
            state.attempted = sha256.clone();
        }
        let retry = (error.is_transient() && state.attempts < RETRIES)
            .then(|| Duration::from_secs(1 << state.attempts));
        if retry.is_some() {
            state.attempts += 1;
            state.error_sha256 = None;
            self.retries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((name.to_owned(), retry.unwrap_or_default()));
            self.retries_ready.notify_one();
        } else if matches!(error, LoadError::TooMany { .. }) {
            // Not about the bytes: tried again when the folder changes.
            state.error_sha256 = None;
        } else {
            state.error_sha256 = sha256;
        }
        let failure = self.failure(state, name, Some(id.clone()), error, retry);
        let again = retry.map(|d| format!(" (trying again in {} s)", d.as_secs()));
        let again = again.as_deref().unwrap_or("");
        // Compiler messages may quote names the component chose.
        let error = untrusted(&failure.error.to_string(), 1000);
        match &failure.still_serving {
            Some(old) => tracing::error!(
                file = name,
                "plugin not loaded, {old} still serves: {error}{again}"
            ),
            None => tracing::error!(file = name, "plugin not loaded: {error}{again}"),
        }
        state.error = Some(failure);
    }

    fn failure(
        &self,
        state: &FileState,
        name: &str,
        id: Option<PluginId>,
        error: LoadError,
        retry: Option<Duration>,
    ) -> Failure {
        Failure {
            file: name.to_owned(),
            id,
            error,
            at: unix_now(),
            still_serving: state.loaded.as_ref().map(|l| {
                let info = l.plugin.info();
                format!("{} {}", l.id, info.version)
            }),
            retry_in: retry.map(|d| d.as_secs()),
        }
    }

    async fn load(&self, id: &PluginId, bytes: Vec<u8>) -> Result<Plugin, LoadError> {
        let runtime = self.runtime.clone();
        let compiled = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| LoadError::Internal(format!("compiler task: {e}")))??;
        let policy = self.policy.clone();
        self.runtime
            .load(compiled, |info| policy.grant(id, &info.declared()))
            .await
    }

    /// The load log: what was loaded, what it asked for, what it got.
    fn log_loaded(&self, loaded: &Loaded, replaced: bool) {
        let info = loaded.plugin.info();
        let grant = loaded.plugin.grant();
        let hosts: Vec<String> = grant
            .hosts
            .iter()
            .map(|h| format!("{} (by {})", h.host, h.by))
            .collect();
        tracing::info!(
            file = loaded.file,
            plugin = %loaded.id,
            name = info.name,
            version = info.version,
            sha256 = &loaded.sha256[..12],
            hosts = ?hosts,
            env = ?grant.env_names(),
            dir = ?grant.dir,
            "{}",
            if replaced { "plugin replaced" } else { "plugin loaded" }
        );
        for warning in warnings_of(loaded, &self.policy) {
            tracing::warn!(file = loaded.file, plugin = %loaded.id, "{}", warning.warning);
        }
    }

    /// Makes a new snapshot of `files` current.
    async fn publish(&self, files: &BTreeMap<String, FileState>) {
        let mut plugins: Vec<Arc<Loaded>> =
            files.values().filter_map(|s| s.loaded.clone()).collect();
        self.runtime.set_plugins(plugins.len());
        plugins.sort_by(|a, b| {
            (a.plugin.info().priority, &a.id).cmp(&(b.plugin.info().priority, &b.id))
        });
        let mut errors: Vec<Failure> = self
            .folder_error
            .lock()
            .await
            .iter()
            .map(|error| Failure {
                file: self.dir.display().to_string(),
                id: None,
                error: LoadError::Read(error.clone()),
                at: unix_now(),
                still_serving: None,
                retry_in: None,
            })
            .collect();
        errors.extend(files.values().filter_map(|s| s.error.clone()));
        let warnings = plugins
            .iter()
            .flat_map(|loaded| warnings_of(loaded, &self.policy))
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

/// What an operator should know of a loaded plugin: a declared name that
/// is not its id, variables in the old form, hosts it asks for but was
/// not granted.
fn warnings_of(loaded: &Loaded, policy: &Policy) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut warn = |warning: String| {
        warnings.push(Warning {
            plugin: loaded.id.clone(),
            file: loaded.file.clone(),
            warning,
        })
    };
    let name = &loaded.plugin.info().name;
    if name != loaded.id.as_str() {
        warn(format!(
            "the plugin calls itself {name:?}, but its file makes it {:?}: it gets the \
             settings and grants of {:?}, never those of {name:?}",
            loaded.id.as_str(),
            loaded.id.as_str()
        ));
    }
    for var in policy.legacy_vars(&loaded.id) {
        let key = var.rsplit_once(&format!("{}_", loaded.id.env_name()));
        let new = key.map_or(String::new(), |(_, key)| {
            format!(": use {}", loaded.id.env_var(key))
        });
        warn(format!(
            "{var} is not read (per-plugin variables are WASMBOT_<ID>__<KEY>, with two \
             underscores){new}"
        ));
    }
    let grant = loaded.plugin.grant();
    if let Some(line) = grant.grant_line() {
        warn(format!(
            "asks for {} but is not granted it; to grant, put in {}: {} (or set {})",
            grant.missing_hosts().join(", "),
            line.file,
            line.toml.replace('\n', " "),
            line.env
        ));
    }
    warnings
}

/// The content of a plugin file and its SHA-256, read the safe way: opened
/// without blocking (a FIFO would block an ordinary open), only a regular
/// file (after symlinks), at most `max` bytes. `None`: there is no such
/// file (any more).
fn read_plugin_file(path: &Path, max: u64) -> Result<Option<(Vec<u8>, String)>, LoadError> {
    use std::io::Read as _;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Read(e.to_string())),
    };
    let meta = file
        .metadata()
        .map_err(|e| LoadError::Read(e.to_string()))?;
    if !meta.is_file() {
        return Err(LoadError::NotRegular(file_kind(&meta)));
    }
    if meta.len() > max {
        return Err(LoadError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // It may grow while it is read: never past the cap.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Read(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(LoadError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok(Some((bytes, sha256)))
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// The plugin file names of `dir` (symlinks included: what they point to
/// is checked when they are read), sorted.
async fn list_plugin_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_plugin_file(&name) {
            files.push(name);
        }
    }
    files.sort();
    Ok(files)
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
        for name in ["quote.wasm", "my-plugin.wasm", "Odd Name.wasm"] {
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

    #[cfg(unix)]
    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n);
        std::fs::write(path("ok.wasm"), b"0123456789").unwrap();
        let (bytes, sha) = read_plugin_file(&path("ok.wasm"), 10).unwrap().unwrap();
        assert_eq!(bytes, b"0123456789");
        assert_eq!(sha.len(), 64);
        assert_eq!(
            read_plugin_file(&path("ok.wasm"), 9).unwrap_err(),
            LoadError::TooLarge { size: 10, max: 9 }
        );
        assert_eq!(read_plugin_file(&path("missing.wasm"), 9).unwrap(), None);

        // A FIFO would block an ordinary open() until a writer comes.
        let fifo = path("fifo.wasm");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            read_plugin_file(&fifo, 1 << 20).unwrap_err(),
            LoadError::NotRegular("a FIFO")
        );
        std::os::unix::fs::symlink("/dev/zero", path("zero.wasm")).unwrap();
        assert_eq!(
            read_plugin_file(&path("zero.wasm"), 1 << 20).unwrap_err(),
            LoadError::NotRegular("a character device")
        );
        std::os::unix::fs::symlink(path("ok.wasm"), path("link.wasm")).unwrap();
        assert!(read_plugin_file(&path("link.wasm"), 10).unwrap().is_some());
        std::fs::create_dir(path("dir.wasm")).unwrap();
        assert_eq!(
            read_plugin_file(&path("dir.wasm"), 10).unwrap_err(),
            LoadError::NotRegular("a folder")
        );
    }
}
