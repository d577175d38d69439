//! Policy: who a plugin is and what the operator grants it. The one home of
//! plugin identity, per-plugin settings and capabilities; the runtime only
//! enforces the [`Grant`] it is handed.
//!
//! - **Identity is the file.** `plugins/quote.wasm` is the plugin `quote`
//!   ([`PluginId`]), whatever its `describe()` declares: the operator names
//!   files, a plugin names only itself. Settings, secrets, grants, stats,
//!   logs and `GET /plugins` entries are keyed by the id; the declared name
//!   is metadata, and a mismatch is a warning.
//! - **Settings** come from `[plugins.<id>]` in the config file and from
//!   `WASMBOT_<ID>__<KEY>` environment variables (the id upper-cased with
//!   `-` as `_`, then *two* underscores, then the key), the variable
//!   winning; the plugin's declared defaults fill in the rest. Ids are
//!   lowercase letters and digits with single `-` between them (no `_`),
//!   so the mapping is one-to-one and the split unambiguous:
//!   `WASMBOT_WEATHER_ALERTS__URL` belongs to `weather-alerts` and can never
//!   reach `weather`, nor a `weather_alerts`.
//! - **Capabilities come only from the operator.** A URL default a plugin
//!   declares is a *request*: shown with the line that would grant it, it
//!   grants nothing. Hosts are granted by `allowed_hosts` (public addresses
//!   only), `allowed_private_hosts` (may be loopback, private, link-local)
//!   and by URL values the operator set (the operator chose that
//!   destination, so it may be private too); environment variables by
//!   `grant_env`, a read-only folder by `grant_dir`.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The settings keys that configure the host's policy rather than the
/// plugin; a plugin never reads them through `config.get`.
pub const RESERVED_KEYS: &[&str] = &[
    "allowed_hosts",
    "allowed_private_hosts",
    "grant_env",
    "grant_dir",
];

/// A plugin's identity: the stem of its file in the plugins folder.
/// Lowercase ASCII letters and digits, with single `-` between them, at
/// most [`PluginId::MAX_LEN`] characters. No `_`: `a_b` and `a-b` would
/// share their variables (`WASMBOT_A_B__…`). Shared, not copied: every
/// call counts in metrics labelled with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginId(Arc<str>);

impl Serialize for PluginId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl PluginId {
    pub const MAX_LEN: usize = 64;

    /// `id` if it is a valid plugin id.
    pub fn parse(id: &str) -> Option<PluginId> {
        let valid = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        valid.then(|| PluginId(id.into()))
    }

    /// The id of the plugin file `file` (`quote.wasm` → `quote`).
    pub fn from_file(file: &str) -> Result<PluginId, IdError> {
        file.strip_suffix(".wasm")
            .and_then(PluginId::parse)
            .ok_or_else(|| IdError(file.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as it appears in environment variables: `WEATHER_ALERTS`.
    pub fn env_name(&self) -> String {
        env_name(&self.0)
    }

    /// The prefix of this plugin's variables: `WASMBOT_WEATHER_ALERTS__`.
    pub fn env_prefix(&self) -> String {
        format!("WASMBOT_{}__", self.env_name())
    }

    /// The variable that sets `key` for this plugin.
    pub fn env_var(&self, key: &str) -> String {
        format!("{}{}", self.env_prefix(), key.to_ascii_uppercase())
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn env_name(id: &str) -> String {
    id.to_ascii_uppercase().replace('-', "_")
}

/// A plugin file whose name is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid plugin file name: the name before .wasm is the plugin's id, made of \
     lowercase letters and digits with single '-' between them (e.g. weather-alerts.wasm){hint}",
    hint = underscore_hint(.0)
)]
pub struct IdError(pub String);

/// For a name with `_`: the name it should have, and why not `_`.
fn underscore_hint(file: &str) -> String {
    let fixed = file.replace('_', "-");
    if file.contains('_') && PluginId::from_file(&fixed).is_ok() {
        format!(
            "; '_' would make its variables (WASMBOT_{}__…) those of {fixed} too: rename it \
             {fixed}",
            env_name(fixed.trim_end_matches(".wasm"))
        )
    } else {
        String::new()
    }
}

/// Where an operator's setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `key` of `[plugins.<id>]` in the config file `path`.
    File {
        path: String,
        id: String,
        key: String,
    },
    /// The environment variable `var`.
    Env { var: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { path, id, key } => write!(f, "{path} [plugins.{id}] {key}"),
            Source::Env { var } => write!(f, "environment {var}"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The configuration of plugins is wrong; wasmbot refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "[plugins.{0}] does not name a plugin id (lowercase letters and digits, with single '-' \
         between them: the plugin file's name without .wasm)"
    )]
    BadTable(String),
}

/// The operator's configuration of every plugin, by id: `[plugins.<id>]`
/// tables of the config file and `WASMBOT_<ID>__<KEY>` variables.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The config file, named in provenance.
    file: Option<String>,
    tables: BTreeMap<String, BTreeMap<String, String>>,
    /// `WASMBOT_*` variables (the global ones excluded).
    env: BTreeMap<String, String>,
    /// Where a granted folder and variables are read; the process's own.
    host_env: HostEnv,
}

/// How `grant_env` reads the host's variables.
#[derive(Clone, Default)]
enum HostEnv {
    #[default]
    Process,
    #[cfg(test)]
    Fixed(BTreeMap<String, String>),
}

impl fmt::Debug for HostEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostEnv")
    }
}

impl HostEnv {
    fn get(&self, name: &str) -> Option<String> {
        match self {
            HostEnv::Process => std::env::var(name).ok(),
            #[cfg(test)]
            HostEnv::Fixed(vars) => vars.get(name).cloned(),
        }
    }
}

impl Policy {
    /// `tables`: the `[plugins.*]` tables of `file`; `env`: the `WASMBOT_*`
    /// variables that are not global settings.
    pub fn new(
        file: Option<&Path>,
        tables: BTreeMap<String, BTreeMap<String, String>>,
        env: BTreeMap<String, String>,
    ) -> Result<Policy, PolicyError> {
        if let Some(bad) = tables.keys().find(|id| PluginId::parse(id).is_none()) {
            return Err(PolicyError::BadTable(bad.clone()));
        }
        Ok(Policy {
            file: file.map(|p| p.display().to_string()),
            tables,
            env,
            host_env: HostEnv::Process,
        })
    }

    /// The operator's settings of `id`, each with where it came from.
    pub fn operator_settings(&self, id: &PluginId) -> BTreeMap<String, (String, Source)> {
        let mut settings = BTreeMap::new();
        if let Some(table) = self.tables.get(id.as_str()) {
            for (key, value) in table {
                let source = Source::File {
                    path: self.file.clone().unwrap_or_else(|| "config".into()),
                    id: id.to_string(),
                    key: key.clone(),
                };
                settings.insert(key.to_ascii_lowercase(), (value.clone(), source));
            }
        }
        let prefix = id.env_prefix();
        for (var, value) in &self.env {
            if let Some(key) = var.strip_prefix(&prefix).filter(|k| !k.is_empty()) {
                let source = Source::Env { var: var.clone() };
                settings.insert(key.to_ascii_lowercase(), (value.clone(), source));
            }
        }
        settings
    }

    /// Variables in the old `WASMBOT_<ID>_<KEY>` form (one underscore) that
    /// look meant for `id`: they are not read, and the operator should hear
    /// why.
    pub fn legacy_vars(&self, id: &PluginId) -> Vec<String> {
        let prefix = format!("WASMBOT_{}_", id.env_name());
        self.env
            .keys()
            .filter(|var| {
                var.strip_prefix(&prefix).is_some_and(|rest| {
                    !rest.is_empty() && !rest.starts_with('_') && !rest.contains("__")
                })
            })
            .cloned()
            .collect()
    }

    /// What the operator grants the plugin `id`, which declared `declared`.
    pub fn grant(&self, id: &PluginId, declared: &[Declared]) -> Grant {
        let operator = self.operator_settings(id);
        let mut settings: BTreeMap<String, String> = declared
            .iter()
            .filter(|d| !RESERVED_KEYS.contains(&d.key.to_ascii_lowercase().as_str()))
            .filter_map(|d| Some((d.key.to_ascii_lowercase(), d.default.clone()?)))
            .collect();
        let mut hosts: BTreeMap<String, HostGrant> = BTreeMap::new();
        let mut grant_host = |host: String, private: bool, by: &Source| {
            let entry = hosts.entry(host.clone()).or_insert_with(|| HostGrant {
                host,
                private,
                by: by.clone(),
            });
            if private && !entry.private {
                entry.private = true;
                entry.by = by.clone();
            }
        };
        let mut env = Vec::new();
        let mut dir = None;
        for (key, (value, source)) in &operator {
            match key.as_str() {
                "allowed_hosts" => {
                    for host in host_list(value) {
                        grant_host(host, false, source);
                    }
                }
                "allowed_private_hosts" => {
                    for host in host_list(value) {
                        grant_host(host, true, source);
                    }
                }
                "grant_env" => {
                    env = value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .filter_map(|name| Some((name.to_owned(), self.host_env.get(name)?)))
                        .collect();
                }
                "grant_dir" => {
                    dir = Some(value.trim())
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from);
                }
                _ => {
                    if let Some(host) = url_host(value) {
                        grant_host(host, true, source);
                    }
                    settings.insert(key.clone(), value.clone());
                }
            }
        }
        let requests = declared
            .iter()
            .filter_map(|d| {
                // Only plain names and IP literals: a host like
                // `a.example,evil.example` (which URLs allow) must never
                // reach the line an operator pastes.
                let host = url_host(d.default.as_deref()?).filter(|h| is_plain_host(h))?;
                Some(HostRequest {
                    granted: hosts.contains_key(&host),
                    host,
                    setting: d.key.to_ascii_lowercase(),
                })
            })
            .collect();
        Grant {
            id: id.clone(),
            settings,
            operator: operator
                .into_iter()
                .map(|(key, (_, source))| (key, source))
                .collect(),
            hosts: hosts.into_values().collect(),
            requests,
            env,
            dir,
            config_file: self.file.clone(),
        }
    }

    #[cfg(test)]
    fn with_host_env(mut self, vars: &[(&str, &str)]) -> Self {
        self.host_env = HostEnv::Fixed(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }
}

/// A setting as a plugin declares it: its key and default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub key: String,
    pub default: Option<String>,
}

/// A host the operator granted, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostGrant {
    pub host: String,
    /// May be (or resolve to) a loopback, private or link-local address.
    pub private: bool,
    pub by: Source,
}

/// A host a plugin asked for through a URL default it declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRequest {
    pub host: String,
    /// The declared setting whose default names it.
    pub setting: String,
    pub granted: bool,
}

/// Everything one plugin may do beyond computing: its settings, the hosts
/// it may reach, the variables and folder it is given. Built by
/// [`Policy::grant`] from the operator's configuration alone.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: PluginId,
    /// What `config.get` answers: declared defaults, overridden by the
    /// operator's settings (policy keys excluded).
    pub settings: BTreeMap<String, String>,
    /// Every key the operator set, and where (values may be secrets).
    pub operator: BTreeMap<String, Source>,
    /// Hosts the plugin may reach over HTTP (any port).
    pub hosts: Vec<HostGrant>,
    /// Hosts its declared URL defaults name, granted or not.
    pub requests: Vec<HostRequest>,
    /// Variables of the host's environment passed to it (`grant_env`).
    pub env: Vec<(String, String)>,
    /// A folder mounted read-only at `/data` (`grant_dir`).
    pub dir: Option<PathBuf>,
    config_file: Option<String>,
}

impl Grant {
    /// Nothing at all: what a plugin has while it describes itself.
    pub fn none(id: PluginId) -> Grant {
        Grant {
            id,
            settings: BTreeMap::new(),
            operator: BTreeMap::new(),
            hosts: Vec::new(),
            requests: Vec::new(),
            env: Vec::new(),
            dir: None,
            config_file: None,
        }
    }

    /// The hosts checked before every request and redirect hop.
    pub fn allow_list(&self) -> AllowList {
        AllowList {
            hosts: self
                .hosts
                .iter()
                .map(|g| (g.host.clone(), g.private))
                .collect(),
        }
    }

    /// Requested hosts the operator has not granted, each once, in the
    /// order the plugin declared them.
    pub fn missing_hosts(&self) -> Vec<&str> {
        let mut missing: Vec<&str> = Vec::new();
        for request in self.requests.iter().filter(|r| !r.granted) {
            if !missing.contains(&request.host.as_str()) {
                missing.push(&request.host);
            }
        }
        missing
    }

    /// The exact configuration that would grant the missing hosts: the
    /// line under `[plugins.<id>]` (keeping hosts already allowed there),
    /// and the equivalent variable.
    pub fn grant_line(&self) -> Option<GrantLine> {
        let missing = self.missing_hosts();
        if missing.is_empty() {
            return None;
        }
        let mut hosts: Vec<&str> = self
            .hosts
            .iter()
            .filter(|g| !g.private)
            .map(|g| g.host.as_str())
            .collect();
        hosts.extend(&missing);
        let list = hosts.join(",");
        Some(GrantLine {
            file: self
                .config_file
                .clone()
                .unwrap_or_else(|| "wasmbot.toml".into()),
            toml: format!("[plugins.{}]\nallowed_hosts = \"{list}\"", self.id),
            env: format!("{}={list}", self.id.env_var("allowed_hosts")),
        })
    }

    /// The names (never the values) of the variables granted.
    pub fn env_names(&self) -> Vec<&str> {
        self.env.iter().map(|(name, _)| name.as_str()).collect()
    }
}

/// How to grant what a plugin asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantLine {
    /// The config file to put `toml` in.
    pub file: String,
    /// `[plugins.<id>]` and its `allowed_hosts` line.
    pub toml: String,
    /// The same as an environment variable.
    pub env: String,
}

/// The hosts one plugin may reach (lowercase names or IP literals, any
/// port), and whether each may be a non-public address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: BTreeMap<String, bool>,
}

impl AllowList {
    /// Hosts, each with whether it may be non-public.
    pub fn new(hosts: impl IntoIterator<Item = (String, bool)>) -> Self {
        AllowList {
            hosts: hosts.into_iter().map(|(h, p)| (normal(&h), p)).collect(),
        }
    }

    pub fn allows(&self, url: &url::Url) -> bool {
        url.host_str()
            .is_some_and(|h| self.hosts.contains_key(&normal(h)))
    }

    /// Whether `host` may be a loopback, private or link-local address.
    pub fn allows_private(&self, host: &str) -> bool {
        self.hosts.get(&normal(host)).copied().unwrap_or(false)
    }

    /// The hosts that may be non-public.
    pub fn private_hosts(&self) -> BTreeSet<String> {
        self.hosts
            .iter()
            .filter(|(_, private)| **private)
            .map(|(host, _)| host.clone())
            .collect()
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }
}

/// A DNS name or an IP literal: lowercase letters, digits, `.`, `-`, `_`
/// and the `:` of IPv6.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | ':')
        })
}

/// The host of `value` if it is an absolute `http(s)` URL.
fn url_host(value: &str) -> Option<String> {
    let url = url::Url::parse(value.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.host_str().map(normal)
}

/// The hosts of a comma-separated list: names, IP literals, `host:port`,
/// `[v6]:port` or URLs (the port never matters).
fn host_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(',').map(str::trim).filter_map(|entry| {
        if entry.is_empty() {
            return None;
        }
        if entry.contains("://") {
            return url_host(entry);
        }
        let host = match entry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or_default(),
            None => entry,
        };
        Some(normal(host)).filter(|h| !h.is_empty())
    })
}

/// Lowercase, without the brackets of an IPv6 literal or a trailing dot.
pub fn normal(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn id(s: &str) -> PluginId {
        PluginId::parse(s).unwrap()
    }

    fn declared(pairs: &[(&str, Option<&str>)]) -> Vec<Declared> {
        pairs
            .iter()
            .map(|(k, d)| Declared {
                key: k.to_string(),
                default: d.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn ids_come_from_file_names() {
        for (file, expected) in [
            ("quote.wasm", Some("quote")),
            ("weather-alerts.wasm", Some("weather-alerts")),
            ("a_b.wasm", None),
            ("v2.wasm", Some("v2")),
            ("Quote.wasm", None),
            ("a--b.wasm", None),
            ("a-_b.wasm", None),
            ("-a.wasm", None),
            ("a_.wasm", None),
            ("a.b.wasm", None),
            ("é.wasm", None),
            (".wasm", None),
            ("quote", None),
        ] {
            assert_eq!(
                PluginId::from_file(file).ok().map(|i| i.to_string()),
                expected.map(str::to_owned),
                "{file}"
            );
        }
        assert!(PluginId::from_file(&format!("{}.wasm", "a".repeat(65))).is_err());
        let err = PluginId::from_file("Quote.wasm").unwrap_err().to_string();
        assert!(
            err.contains("\"Quote.wasm\"") && err.contains("lowercase"),
            "{err}"
        );
        assert_eq!(
            id("weather-alerts").env_prefix(),
            "WASMBOT_WEATHER_ALERTS__"
        );
        let err = PluginId::from_file("weather_alerts.wasm")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "'_' would make its variables (WASMBOT_WEATHER_ALERTS__…) those of \
                 weather-alerts.wasm too: rename it weather-alerts.wasm"
            ),
            "{err}"
        );
        // One-to-one: only `weather-alerts` has WASMBOT_WEATHER_ALERTS__.
        assert!(PluginId::parse("weather_alerts").is_none());
    }

    #[test]
    fn variables_never_reach_another_plugin() {
        let policy = Policy::new(
            None,
            BTreeMap::new(),
            map(&[
                ("WASMBOT_WEATHER_ALERTS__URL", "https://alerts.example/"),
                ("WASMBOT_WEATHER__API_KEY", "k1"),
                ("WASMBOT_WEATHER_URL", "old-style"),
                ("WASMBOT_QUOTE__URL", "https://q.example/"),
            ]),
        )
        .unwrap();
        let weather = policy.operator_settings(&id("weather"));
        assert_eq!(weather.keys().collect::<Vec<_>>(), ["api_key"]);
        let alerts = policy.operator_settings(&id("weather-alerts"));
        assert_eq!(alerts.keys().collect::<Vec<_>>(), ["url"]);
        assert_eq!(
            alerts["url"].1,
            Source::Env {
                var: "WASMBOT_WEATHER_ALERTS__URL".into()
            }
        );
        assert_eq!(policy.legacy_vars(&id("weather")), ["WASMBOT_WEATHER_URL"]);
        assert!(policy.legacy_vars(&id("weather-alerts")).is_empty());
    }

    #[test]
    fn tables_must_name_ids() {
        let table = |names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), BTreeMap::new()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(Policy::new(None, table(&["quote", "a-b"]), BTreeMap::new()).is_ok());
        let err = Policy::new(None, table(&["Quote"]), BTreeMap::new()).unwrap_err();
        assert_eq!(err, PolicyError::BadTable("Quote".into()));
        let err = Policy::new(None, table(&["a_b"]), BTreeMap::new()).unwrap_err();
        assert_eq!(err, PolicyError::BadTable("a_b".into()));
    }

    #[test]
    fn declared_urls_are_requests_not_grants() {
        let policy = Policy::new(
            Some(Path::new("wasmbot.toml")),
            BTreeMap::from([(
                "quote".to_string(),
                map(&[("allowed_hosts", "extra.example")]),
            )]),
            BTreeMap::new(),
        )
        .unwrap();
        let grant = policy.grant(
            &id("quote"),
            &declared(&[
                ("url", Some("https://api.quotable.io/random")),
                ("note", Some("not a url")),
            ]),
        );
        assert_eq!(grant.settings["url"], "https://api.quotable.io/random");
        assert!(
            !grant.settings.contains_key("allowed_hosts"),
            "policy keys stay with the host"
        );
        let allow = grant.allow_list();
        assert_eq!(allow.hosts().collect::<Vec<_>>(), ["extra.example"]);
        assert!(!allow.allows(&"https://api.quotable.io/random".parse().unwrap()));
        assert_eq!(grant.missing_hosts(), ["api.quotable.io"]);
        let line = grant.grant_line().unwrap();
        assert_eq!(
            line.toml,
            "[plugins.quote]\nallowed_hosts = \"extra.example,api.quotable.io\""
        );
        assert_eq!(
            line.env,
            "WASMBOT_QUOTE__ALLOWED_HOSTS=extra.example,api.quotable.io"
        );
        assert_eq!(line.file, "wasmbot.toml");
        assert_eq!(
            grant.hosts[0].by.to_string(),
            "wasmbot.toml [plugins.quote] allowed_hosts"
        );
    }

    #[test]
    fn each_missing_host_is_named_once() {
        let policy = Policy::new(None, BTreeMap::new(), BTreeMap::new()).unwrap();
        let grant = policy.grant(
            &id("quote"),
            &declared(&[
                ("url", Some("https://api.quotable.io/random")),
                ("backup", Some("https://b.example/")),
                ("mirror", Some("https://api.quotable.io/other")),
            ]),
        );
        assert_eq!(grant.missing_hosts(), ["api.quotable.io", "b.example"]);
    }

    #[test]
    fn operator_values_grant_hosts_with_provenance() {
        let policy = Policy::new(
            Some(Path::new("/etc/wasmbot.toml")),
            BTreeMap::from([(
                "quote".to_string(),
                map(&[
                    (
                        "allowed_hosts",
                        " A.example , ,b.example:8443,[::1]:9, https://c.example/x, d.example.",
                    ),
                    ("allowed_private_hosts", "db.internal"),
                    ("grant_env", "TZ, NOT_SET"),
                    ("grant_dir", " /srv/data "),
                ]),
            )]),
            map(&[("WASMBOT_QUOTE__URL", "http://127.0.0.1:8080/random")]),
        )
        .unwrap()
        .with_host_env(&[("TZ", "UTC"), ("HOME", "/root")]);
        let grant = policy.grant(
            &id("quote"),
            &declared(&[("url", Some("https://api.quotable.io/random"))]),
        );
        let hosts: Vec<(&str, bool, String)> = grant
            .hosts
            .iter()
            .map(|g| (g.host.as_str(), g.private, g.by.to_string()))
            .collect();
        let file = "/etc/wasmbot.toml [plugins.quote]";
        assert_eq!(
            hosts,
            [
                (
                    "127.0.0.1",
                    true,
                    "environment WASMBOT_QUOTE__URL".to_string()
                ),
                ("::1", false, format!("{file} allowed_hosts")),
                ("a.example", false, format!("{file} allowed_hosts")),
                ("b.example", false, format!("{file} allowed_hosts")),
                ("c.example", false, format!("{file} allowed_hosts")),
                ("d.example", false, format!("{file} allowed_hosts")),
                ("db.internal", true, format!("{file} allowed_private_hosts")),
            ]
        );
        assert_eq!(grant.settings["url"], "http://127.0.0.1:8080/random");
        assert_eq!(grant.requests[0].host, "api.quotable.io");
        assert!(!grant.requests[0].granted);
        assert_eq!(grant.env, [("TZ".to_string(), "UTC".to_string())]);
        assert_eq!(grant.dir, Some(PathBuf::from("/srv/data")));
        let allow = grant.allow_list();
        let ok = |u: &str| allow.allows(&url::Url::parse(u).unwrap());
        assert!(ok("http://127.0.0.1:9/any"));
        assert!(ok("http://[::1]:9/any"));
        assert!(ok("https://A.EXAMPLE/x"));
        assert!(ok("https://d.example./x"));
        assert!(!ok("https://api.quotable.io/random"));
        assert!(!ok("https://a.example.evil.example/"));
        assert!(allow.allows_private("127.0.0.1"));
        assert!(allow.allows_private("db.internal"));
        assert!(!allow.allows_private("a.example"));
        assert!(
            !allow.allows_private("[::1]"),
            "allowed_hosts is public only"
        );
    }

    #[test]
    fn nothing_declared_grants_anything() {
        let policy = Policy::new(None, BTreeMap::new(), BTreeMap::new()).unwrap();
        let grant = policy.grant(
            &id("impostor"),
            &declared(&[
                ("allowed_hosts", Some("evil.example")),
                ("grant_dir", Some("/")),
                ("url", Some("http://169.254.169.254/")),
                ("smuggled", Some("http://api.example,evil.example/")),
                ("quoted", Some("http://a.example\"b/")),
            ]),
        );
        assert!(grant.hosts.is_empty());
        assert!(grant.dir.is_none() && grant.env.is_empty());
        assert_eq!(
            grant.settings.keys().collect::<Vec<_>>(),
            ["quoted", "smuggled", "url"]
        );
        // Hosts that are no plain name never reach the line to paste.
        assert_eq!(grant.missing_hosts(), ["169.254.169.254"]);
    }
}
