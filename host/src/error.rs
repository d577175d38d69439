//! Typed outcomes of loading and calling plugins. They travel as these
//! types from the runtime and the registry to dispatch, `GET /plugins`,
//! `wasmbot check` and the logs; only those edges render them.
//!
//! Every text in them that a plugin could have chosen (its error string,
//! its stderr, a trap message naming its functions) is made safe for a log
//! line when the error is built: control characters escaped, length capped
//! ([`untrusted`]).

use crate::policy::IdError;
use serde::Serialize;
use std::time::Duration;

/// The contract the host implements, as written in `wit/`.
pub const WIT_PACKAGE: &str = "wasmbot:plugin";
pub const WIT_VERSION: &str = "0.2.0";
/// Older versions of the contract whose plugins still load.
pub const WIT_OLDER: &[&str] = &["0.1.0"];
pub const HANDLER: &str = "handler";

/// A call to a plugin that did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// It ran past its deadline (guest code cut by the epoch, or host calls
    /// cut by the timeout).
    #[error("ran past its {0:?} time limit")]
    Timeout(Duration),
    /// It trapped: a panic, `unreachable`, out-of-bounds access, its own
    /// memory cap.
    #[error("trapped: {0}")]
    Trap(String),
    /// It could not be instantiated (e.g. a granted folder is missing).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// It answered `err(reason)`.
    #[error("returned an error: {0}")]
    Failed(String),
    /// It wanted more of the memory budget than one plugin may hold while
    /// others run: left out of this message, like a memory bomb.
    #[error("ran out of memory: {0}")]
    Memory(String),
    /// The host had no room for it: the global memory budget or the
    /// instance pool was exhausted. Not the plugin's fault; the whole
    /// message is refused with 503 so that Twilio retries it.
    #[error("the host is at capacity: {0}")]
    Capacity(String),
}

impl PluginError {
    pub fn trap(reason: &str) -> Self {
        PluginError::Trap(untrusted(reason, 600))
    }

    pub fn failed(reason: &str) -> Self {
        PluginError::Failed(untrusted(reason, 600))
    }

    pub fn instantiate(reason: &str) -> Self {
        PluginError::Instantiate(untrusted(reason, 600))
    }

    /// A short name of the variant, for `GET /plugins` and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Timeout(_) => "timeout",
            PluginError::Trap(_) => "trap",
            PluginError::Instantiate(_) => "instantiate",
            PluginError::Failed(_) => "failed",
            PluginError::Memory(_) => "memory",
            PluginError::Capacity(_) => "capacity",
        }
    }

    /// Whether the plugin is to blame, so the failure counts towards
    /// `disable_after_failures`. Instantiation and capacity failures are
    /// the host's or the operator's, a full share of memory is load.
    pub fn is_plugins_fault(&self) -> bool {
        !matches!(
            self,
            PluginError::Instantiate(_) | PluginError::Capacity(_) | PluginError::Memory(_)
        )
    }
}

/// A plugin file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    BadId(#[from] IdError),
    #[error("cannot read it: {0}")]
    Read(String),
    #[error("not a regular file ({0}); only regular files (or symlinks to them) are loaded")]
    NotRegular(&'static str),
    #[error("{size} bytes, over the {max}-byte limit (max_plugin_size)")]
    TooLarge { size: u64, max: u64 },
    #[error("{loaded} plugins are loaded already, the limit (max_plugins)")]
    TooMany { loaded: usize },
    #[error("not a WebAssembly component: {0}")]
    Compile(String),
    #[error("needs more than its part of the instance pool: {0}")]
    TooBig(String),
    #[error(
        "built for {found}, but this host implements {WIT_PACKAGE}@{WIT_VERSION} \
         (plugins for {WIT_PACKAGE}@{compatible} load); rebuild it against this host's contract \
         (`wasmbot wit` writes it out)"
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
    #[error("describe() returned an invalid {field}: {value:?}")]
    BadInfo { field: &'static str, value: String },
    #[error("the loader failed: {0}")]
    Internal(String),
}

impl LoadError {
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::BadId(_) => "bad_id",
            LoadError::Read(_) => "read",
            LoadError::NotRegular(_) => "not_regular",
            LoadError::TooLarge { .. } => "too_large",
            LoadError::TooMany { .. } => "too_many",
            LoadError::Compile(_) => "compile",
            LoadError::TooBig(_) => "too_big",
            LoadError::Incompatible { .. } => "incompatible",
            LoadError::NotAPlugin(_) => "not_a_plugin",
            LoadError::Link(_) => "link",
            LoadError::Describe(_) => "describe",
            LoadError::BadInfo { .. } => "bad_info",
            LoadError::Internal(_) => "internal",
        }
    }

    /// Whether loading the same bytes again may succeed: `describe` ran out
    /// of time (a busy CPU) or the host was at capacity, or the file could
    /// not be read for a passing reason. Such failures are retried, not
    /// remembered until the file changes.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LoadError::Describe(PluginError::Timeout(_) | PluginError::Capacity(_))
                | LoadError::Read(_)
                | LoadError::Internal(_)
        )
    }
}

/// `{"kind": "...", "message": "..."}`.
fn serialize_outcome<S: serde::Serializer>(
    kind: &str,
    message: String,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Outcome<'a> {
        kind: &'a str,
        message: String,
    }
    Outcome { kind, message }.serialize(s)
}

impl Serialize for PluginError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_outcome(self.kind(), self.to_string(), s)
    }
}

impl Serialize for LoadError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_outcome(self.kind(), self.to_string(), s)
    }
}

/// `text` from a plugin, safe for one log line: control characters
/// (newlines, carriage returns, escape sequences) written as `\n`, `\r`,
/// `\u{1b}`, and at most `max_chars` characters kept (then `…`). A plugin
/// can then neither forge log lines nor flood the log.
pub fn untrusted(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 8));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_text_cannot_forge_log_lines() {
        let forged = "ok\n2026-01-01T00:00:00Z  INFO wasmbot: admin logged in\r\x1b[31m";
        let safe = untrusted(forged, 200);
        assert!(!safe.contains('\n') && !safe.contains('\r') && !safe.contains('\x1b'));
        assert_eq!(
            safe,
            "ok\\n2026-01-01T00:00:00Z  INFO wasmbot: admin logged in\\r\\u{1b}[31m"
        );
        assert_eq!(untrusted("ééééé", 3), "ééé…");
        assert_eq!(untrusted("tab\there", 100), "tab\\there");
        assert_eq!(
            PluginError::failed("a\nb").to_string(),
            "returned an error: a\\nb"
        );
    }

    #[test]
    fn outcomes_serialize_with_their_kind() {
        let e = LoadError::Describe(PluginError::Timeout(Duration::from_secs(2)));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind": "describe", "message": "describe() failed: ran past its 2s time limit"})
        );
        assert!(e.is_transient());
        assert!(!LoadError::Compile("x".into()).is_transient());
        assert!(!PluginError::Capacity("pool".into()).is_plugins_fault());
        assert!(PluginError::trap("x").is_plugins_fault());
    }
}
