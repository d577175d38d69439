//! The registry: which plugins are loaded, from which files, and which
//! files failed to load and why.
//!
//! A plugin's identity is its file. Readers take an immutable [`Snapshot`]
//! (an `Arc`, swapped whole), so a message is dispatched to one consistent
//! set of plugins and never waits on a load. Compiling happens on a
//! blocking thread, off the request path.

use crate::runtime::{LoadError, Plugin, Runtime};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::sync::watch;

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
}

/// A file that failed to load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub file: String,
    pub error: String,
}

/// One consistent view of the plugins folder.
#[derive(Default)]
pub struct Snapshot {
    /// In merge order: priority, then name, then file.
    pub plugins: Vec<Arc<Loaded>>,
    pub errors: Vec<Failure>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    settings: Arc<SettingsFn>,
    current: RwLock<Arc<Snapshot>>,
    ready: watch::Sender<bool>,
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>, dir: PathBuf, settings: Arc<SettingsFn>) -> Self {
        Registry {
            runtime,
            dir,
            settings,
            current: RwLock::new(Arc::default()),
            ready: watch::Sender::new(false),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Loads every `*.wasm` file of the folder (not hidden ones) and makes
    /// the result current. A file that fails is reported, never fatal; an
    /// unreadable folder is reported as an error entry for the folder.
    pub async fn scan(&self) {
        let mut plugins = Vec::new();
        let mut errors = Vec::new();
        let files = match list_plugin_files(&self.dir).await {
            Ok(files) => files,
            Err(e) => {
                let error = format!("cannot read the plugins folder {}: {e}", self.dir.display());
                tracing::error!("{error}");
                errors.push(Failure {
                    file: self.dir.display().to_string(),
                    error,
                });
                Vec::new()
            }
        };
        for file in files {
            match self.load_file(&file).await {
                Ok(loaded) => {
                    let info = loaded.plugin.info();
                    tracing::info!(
                        file,
                        plugin = info.name,
                        version = info.version,
                        sha256 = &loaded.sha256[..12],
                        "plugin loaded"
                    );
                    plugins.push(Arc::new(loaded));
                }
                Err(error) => {
                    tracing::error!(file, "plugin not loaded: {error}");
                    errors.push(Failure { file, error });
                }
            }
        }
        plugins.sort_by(|a, b| {
            let key = |l: &Loaded| {
                (
                    l.plugin.info().priority,
                    l.plugin.info().name.clone(),
                    l.file.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let snapshot = Arc::new(Snapshot { plugins, errors });
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
        self.ready.send_replace(true);
    }

    async fn load_file(&self, file: &str) -> Result<Loaded, String> {
        let path = self.dir.join(file);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let sha256 = hex(&Sha256::digest(&bytes));
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
        })
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
            "quote.wat",
            ".wasm",
            "README.md",
            "quote",
        ] {
            assert!(!is_plugin_file(name), "{name}");
        }
    }
}
