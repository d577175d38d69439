//! Configuration: command-line flags, environment (and `.env`), a TOML
//! file (`--config FILE`, else `wasmbot.toml` in the working directory when
//! there is one), and defaults, in that order of precedence. Every knob is
//! documented here with its default; `wasmbot.example.toml` shows them all.
//!
//! Per-plugin settings (`[plugins.<id>]`, `WASMBOT_<ID>__<KEY>`) are turned
//! into grants by [`crate::policy`].

use crate::policy::{Policy, PolicyError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file read from the working directory when no
/// `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "wasmbot.toml";

/// The seed's answer when no behaviour matched.
/// The longest `later_timeout_ms`.
pub const MAX_LATER_TIMEOUT: Duration = Duration::from_secs(3600);

/// The most `workers`: a thread and a runtime each.
pub const MAX_WORKERS: usize = 1024;

/// Twilio's REST API.
pub const DEFAULT_TWILIO_API_URL: &str = "https://api.twilio.com";

pub const DEFAULT_APOLOGY: &str = "Apologies, I do not understand what you really asked.";

/// Flags of `wasmbot serve` (also accepted without the subcommand).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "WASMBOT_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Folder of plugin components (*.wasm) [default: plugins]
    #[arg(long, env = "WASMBOT_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// TOML configuration file (see wasmbot.example.toml) [default:
    /// wasmbot.toml in the working directory, if there is one]
    #[arg(long, env = "WASMBOT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The public base URL Twilio calls (e.g. your tunnel's https URL); used
    /// to check request signatures behind a proxy
    #[arg(long, env = "WASMBOT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Time each plugin gets per message, in milliseconds [default: 5000]
    #[arg(long, env = "WASMBOT_PLUGIN_TIMEOUT_MS")]
    pub plugin_timeout_ms: Option<u64>,
    /// Time limit of a plugin's outbound HTTP request, in milliseconds [default: 3000]
    #[arg(long, env = "WASMBOT_HTTP_TIMEOUT_MS")]
    pub http_timeout_ms: Option<u64>,
    /// Do not watch the plugins folder (immutable deployments); SIGHUP or
    /// POST /plugins/reload still rescan it
    #[arg(long, env = "WASMBOT_NO_WATCH")]
    pub no_watch: bool,
    /// Where compiled plugins are cached [default: $XDG_CACHE_HOME/wasmbot or ~/.cache/wasmbot]
    #[arg(long, env = "WASMBOT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache compiled plugins on disk
    #[arg(long, env = "WASMBOT_NO_CACHE")]
    pub no_cache: bool,
    /// Where plugin state is kept: a SQLite file, `redis://host:port/db`
    /// (replicas), or `off` [default: $XDG_DATA_HOME/wasmbot/state.sqlite3
    /// or ~/.local/share/wasmbot/state.sqlite3]
    #[arg(long, env = "WASMBOT_STATE")]
    pub state: Option<String>,
}

/// The optional TOML file. Unknown keys are errors, so typos show.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<SocketAddr>,
    pub plugins_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_api_key: Option<String>,
    pub twilio_api_secret: Option<String>,
    pub twilio_api_url: Option<String>,
    pub later_timeout_ms: Option<u64>,
    pub later_max_calls: Option<usize>,
    pub later_max_calls_per_plugin: Option<usize>,
    pub apology: Option<String>,
    pub plugin_timeout_ms: Option<u64>,
    pub http_timeout_ms: Option<u64>,
    pub http_max_body: Option<usize>,
    pub max_request_body: Option<usize>,
    pub plugin_memory_mb: Option<usize>,
    pub watch: Option<bool>,
    pub cache: Option<bool>,
    pub cache_dir: Option<PathBuf>,
    pub http_max_requests: Option<u32>,
    pub max_in_flight: Option<usize>,
    pub disable_after_failures: Option<u64>,
    pub idempotency_cache: Option<usize>,
    pub trust_forwarded_headers: Option<bool>,
    pub admin_token: Option<String>,
    pub memory_budget_mb: Option<usize>,
    pub max_plugins: Option<usize>,
    pub max_plugin_size_mb: Option<u64>,
    pub max_connections: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub workers: Option<usize>,
    pub outbound_proxy: Option<String>,
    pub state: Option<String>,
    pub state_max_keys: Option<u32>,
    pub state_max_kb: Option<u64>,
    pub state_max_value_kb: Option<usize>,
    pub state_max_ops: Option<u32>,
    pub state_timeout_ms: Option<u64>,
    #[serde(default)]
    pub twilio_shared_keys: BTreeMap<String, String>,
    #[serde(default)]
    pub plugins: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The server's configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:5000`, the seed's address.
    pub addr: SocketAddr,
    /// The plugins folder. Default `plugins` (where `cargo build` puts the
    /// bundled plugins).
    pub plugins_dir: PathBuf,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Public base URL for signature checks (`WASMBOT_PUBLIC_URL`). Unset:
    /// the URL is rebuilt from the request's `Host` header.
    pub public_url: Option<String>,
    /// Twilio Auth Token (`TWILIO_AUTH_TOKEN`). Set: every `POST /bot` must
    /// be signed. Unset: unsigned requests are accepted (with a warning).
    pub auth_token: Option<Secret>,
    /// The credentials replies later are sent with through Twilio's
    /// Messages API (`TWILIO_ACCOUNT_SID` and `TWILIO_API_KEY` +
    /// `TWILIO_API_SECRET`, or the Auth Token). Unset: plugins cannot
    /// defer their replies.
    pub twilio_api: Option<crate::deliver::Credentials>,
    /// The Messages API's base URL (`TWILIO_API_URL`). Default
    /// `https://api.twilio.com`; plain `http` only on loopback.
    pub twilio_api_url: String,
    /// Replies later: their time limit and caps.
    pub later: crate::later::Settings,
    /// Sent when no plugin answered.
    pub apology: String,
    /// Time each plugin gets per message. Default 5 s: with the 3 s HTTP
    /// limit inside it, a reply is out well within Twilio's 15 s.
    pub plugin_timeout: Duration,
    /// Time limit of one outbound HTTP exchange. Default 3 s.
    pub http_timeout: Duration,
    /// Largest response body a plugin may fetch. Default 1 MiB.
    pub http_max_body: usize,
    /// Largest webhook body accepted. Default 64 KiB: Twilio's are ~1 KiB
    /// (a 1600-character body plus metadata).
    pub max_request_body: usize,
    /// Linear memory per plugin instance. Default 64 MiB.
    pub plugin_memory: usize,
    /// Reload plugins when files in the folder change. Default on.
    pub watch: bool,
    /// Where compiled plugins are cached; `None`: no cache. Default
    /// `$XDG_CACHE_HOME/wasmbot`, else `$HOME/.cache/wasmbot`: a restart
    /// then loads large plugins in milliseconds instead of seconds.
    pub cache_dir: Option<PathBuf>,
    /// Outbound HTTP requests one plugin may make per message. Default 10.
    pub http_max_requests: u32,
    /// Messages handled at once; more get 503 with `Retry-After` (Twilio
    /// then tries the fallback URL) instead of queueing without bound.
    /// Default 256.
    pub max_in_flight: usize,
    /// Failures in a row after which a plugin is disabled until its file
    /// changes or the folder is rescanned. Default 0: never.
    pub disable_after_failures: u64,
    /// Replies remembered by `I-Twilio-Idempotency-Token`, so a retry gets
    /// the same reply without running the plugins again. Default 1024.
    pub idempotency_cache: usize,
    /// Rebuild the signed URL from `X-Forwarded-Proto`/`-Host` when no
    /// public URL is set. Only behind a proxy that sets them. Default off.
    pub trust_forwarded: bool,
    /// SharedKey secrets by key id, for webhooks signed with HMAC-SHA256
    /// (`TWILIO_SHARED_KEYS="KSid=secret,…"` or `[twilio_shared_keys]`).
    pub shared_keys: BTreeMap<String, Secret>,
    /// The credential of `GET /plugins` and `POST /plugins/reload`
    /// (`WASMBOT_ADMIN_TOKEN`), sent as `Authorization: Bearer <token>`.
    /// Whenever webhook authentication is configured, they need it (and
    /// are off without it). Never the Auth Token: an admin credential
    /// that leaks must not sign webhooks, and the other way round.
    pub admin_token: Option<Secret>,
    /// Linear memory all plugin instances together may use. Default 1/32
    /// of the machine's RAM, at least 256 MiB (768 MiB on 24 GiB): a flood
    /// of memory-hungry messages gets 503s instead of exhausting the host.
    pub memory_budget: usize,
    /// Plugins loaded at once (more files are refused with an error entry);
    /// the instance pool is sized `max_in_flight × max_plugins`. Default 16.
    pub max_plugins: usize,
    /// Largest plugin file read. Default 64 MiB (a Python plugin is ~20).
    pub max_plugin_size: u64,
    /// HTTP connections open at once; more are answered 503 and closed.
    /// Default: half the process's file-descriptor limit, at most 10,000
    /// (the other half is for plugins' outbound connections and files).
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers, which is also how
    /// long an idle keep-alive connection is kept. Default 10 s.
    pub header_timeout: Duration,
    /// Threads serving connections, each with a runtime of its own
    /// (`WASMBOT_WORKERS`). Default: one per CPU.
    pub workers: Option<usize>,
    /// An egress proxy for plugins' HTTP (`WASMBOT_OUTBOUND_PROXY`). The
    /// environment's `HTTP_PROXY` and friends are never used.
    pub outbound_proxy: Option<url::Url>,
    /// Where plugin state is kept. [`Config::resolve`]'s default is
    /// `state.sqlite3` in the data folder (`$XDG_DATA_HOME/wasmbot`, else
    /// `~/.local/share/wasmbot`); `Config::default()`'s is off, so an
    /// embedder or a test writes nothing it did not ask for.
    pub state: crate::state::Location,
    /// Whether the operator named the state store (then a store that
    /// cannot be opened stops the server; the default file that cannot be
    /// opened, in a container without a home, only turns state off).
    pub state_required: bool,
    /// Limits on each plugin's state.
    pub state_limits: crate::state::Limits,
    /// `[plugins.<id>]` tables of the file.
    pub file_plugins: BTreeMap<String, BTreeMap<String, String>>,
    /// Every `WASMBOT_*` variable of the environment that is not a global
    /// setting, for per-plugin settings.
    pub env: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            plugins_dir: PathBuf::from("plugins"),
            config_file: None,
            public_url: None,
            auth_token: None,
            twilio_api: None,
            twilio_api_url: DEFAULT_TWILIO_API_URL.to_owned(),
            later: crate::later::Settings::default(),
            apology: DEFAULT_APOLOGY.to_owned(),
            plugin_timeout: Duration::from_secs(5),
            http_timeout: Duration::from_secs(3),
            http_max_body: 1 << 20,
            max_request_body: 64 << 10,
            plugin_memory: 64 << 20,
            watch: true,
            cache_dir: None,
            http_max_requests: 10,
            max_in_flight: 256,
            disable_after_failures: 0,
            idempotency_cache: 1024,
            trust_forwarded: false,
            shared_keys: BTreeMap::new(),
            admin_token: None,
            memory_budget: default_memory_budget(),
            max_plugins: 16,
            max_plugin_size: 64 << 20,
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            workers: None,
            outbound_proxy: None,
            state: crate::state::Location::Off,
            state_required: false,
            state_limits: crate::state::Limits::default(),
            file_plugins: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }
}

/// Names of the global `WASMBOT_*` variables; never read as plugin settings.
const GLOBAL_ENV: &[&str] = &[
    "WASMBOT_ADDR",
    "WASMBOT_PLUGINS",
    "WASMBOT_CONFIG",
    "WASMBOT_PUBLIC_URL",
    "WASMBOT_APOLOGY",
    "WASMBOT_PLUGIN_TIMEOUT_MS",
    "WASMBOT_HTTP_TIMEOUT_MS",
    "WASMBOT_LOG",
    "WASMBOT_NO_WATCH",
    "WASMBOT_CACHE_DIR",
    "WASMBOT_NO_CACHE",
    "WASMBOT_MAX_IN_FLIGHT",
    "WASMBOT_TRUST_FORWARDED",
    "WASMBOT_ADMIN_TOKEN",
    "WASMBOT_MEMORY_BUDGET_MB",
    "WASMBOT_OUTBOUND_PROXY",
    "WASMBOT_STATE",
    "WASMBOT_WORKERS",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl Config {
    /// Resolves flags (which clap already merged with their variables), the
    /// rest of the environment `env`, and the file named by `--config`.
    pub fn resolve(
        args: &ServeArgs,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let config_file = args.config.clone().or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            default.is_file().then_some(default)
        });
        let file = match &config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let ms = Duration::from_millis;
        let public_url = args.public_url.clone().or(file.public_url);
        if let Some(url) = &public_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "public URL {url:?} is not an absolute http(s) URL"
                    )));
                }
            }
        }
        let outbound_proxy = match env
            .get("WASMBOT_OUTBOUND_PROXY")
            .or(file.outbound_proxy.as_ref())
        {
            Some(raw) if !raw.trim().is_empty() => match url::Url::parse(raw.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "outbound_proxy {raw:?} is not an http(s) URL"
                    )));
                }
            },
            _ => None,
        };
        let state_given = [args.state.as_deref(), file.state.as_deref()]
            .into_iter()
            .flatten()
            .find(|text| !text.trim().is_empty());
        let number = |name: &str| -> Result<Option<usize>, ConfigError> {
            env.get(name)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| ConfigError::Invalid(format!("{name}={v:?} is not a number")))
                })
                .transpose()
        };
        let auth_token = env
            .get("TWILIO_AUTH_TOKEN")
            .cloned()
            .or(file.twilio_auth_token)
            .filter(|t| !t.is_empty())
            .map(Secret);
        let given = |var: &str, key: Option<String>| {
            env.get(var)
                .cloned()
                .or(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let twilio_api = twilio_api(
            given("TWILIO_ACCOUNT_SID", file.twilio_account_sid),
            given("TWILIO_API_KEY", file.twilio_api_key),
            given("TWILIO_API_SECRET", file.twilio_api_secret).map(Secret),
            auth_token.clone(),
        )?;
        let twilio_api_url = given("TWILIO_API_URL", file.twilio_api_url)
            .unwrap_or_else(|| DEFAULT_TWILIO_API_URL.to_owned());
        if let Some(credentials) = &twilio_api {
            // Checks the URL and the SIDs now, not at the first reply.
            crate::deliver::Twilio::new(&twilio_api_url, credentials.clone())
                .map_err(|e| ConfigError::Invalid(format!("Twilio Messages API: {e}")))?;
        }
        let later = crate::later::Settings {
            timeout: file.later_timeout_ms.map_or(d.later.timeout, ms),
            max_calls: file.later_max_calls.unwrap_or(d.later.max_calls),
            max_calls_per_plugin: file
                .later_max_calls_per_plugin
                .unwrap_or(d.later.max_calls_per_plugin),
            ..d.later.clone()
        };
        let config = Config {
            addr: args.addr.or(file.addr).unwrap_or(d.addr),
            plugins_dir: args
                .plugins
                .clone()
                .or(file.plugins_dir)
                .unwrap_or(d.plugins_dir),
            config_file,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            auth_token,
            twilio_api,
            twilio_api_url,
            later,
            apology: env
                .get("WASMBOT_APOLOGY")
                .cloned()
                .or(file.apology)
                .unwrap_or(d.apology),
            plugin_timeout: args
                .plugin_timeout_ms
                .or(file.plugin_timeout_ms)
                .map_or(d.plugin_timeout, ms),
            http_timeout: args
                .http_timeout_ms
                .or(file.http_timeout_ms)
                .map_or(d.http_timeout, ms),
            http_max_body: file.http_max_body.unwrap_or(d.http_max_body),
            max_request_body: file.max_request_body.unwrap_or(d.max_request_body),
            plugin_memory: file.plugin_memory_mb.map_or(d.plugin_memory, |mb| mb << 20),
            watch: !args.no_watch && file.watch.unwrap_or(d.watch),
            cache_dir: if args.no_cache || file.cache == Some(false) {
                None
            } else {
                args.cache_dir
                    .clone()
                    .or(file.cache_dir)
                    .or_else(|| default_cache_dir(&env))
                    .map(absolute)
            },
            http_max_requests: file.http_max_requests.unwrap_or(d.http_max_requests),
            max_in_flight: number("WASMBOT_MAX_IN_FLIGHT")?
                .or(file.max_in_flight)
                .unwrap_or(d.max_in_flight),
            disable_after_failures: file
                .disable_after_failures
                .unwrap_or(d.disable_after_failures),
            idempotency_cache: file.idempotency_cache.unwrap_or(d.idempotency_cache),
            trust_forwarded: env
                .get("WASMBOT_TRUST_FORWARDED")
                .map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
                .or(file.trust_forwarded_headers)
                .unwrap_or(d.trust_forwarded),
            shared_keys: shared_keys(file.twilio_shared_keys, env.get("TWILIO_SHARED_KEYS"))?,
            admin_token: match env.get("WASMBOT_ADMIN_TOKEN").cloned().or(file.admin_token) {
                Some(t) if t.trim().is_empty() => {
                    return Err(ConfigError::Invalid(
                        "WASMBOT_ADMIN_TOKEN (admin_token) is set but empty".into(),
                    ));
                }
                Some(t) => Some(Secret(t)),
                None => None,
            },
            memory_budget: number("WASMBOT_MEMORY_BUDGET_MB")?
                .or(file.memory_budget_mb)
                .map_or_else(default_memory_budget, |mb| mb << 20),
            max_plugins: file.max_plugins.unwrap_or(d.max_plugins),
            max_plugin_size: file
                .max_plugin_size_mb
                .map_or(d.max_plugin_size, |mb| mb << 20),
            max_connections: file.max_connections,
            header_timeout: file.header_timeout_ms.map_or(d.header_timeout, ms),
            workers: number("WASMBOT_WORKERS")?.or(file.workers),
            outbound_proxy,
            state: match state_given {
                Some(text) => crate::state::Location::parse(text)
                    .map_err(|e| ConfigError::Invalid(format!("state: {e}")))?,
                None => default_data_dir(&env).map_or(crate::state::Location::Off, |dir| {
                    crate::state::Location::File(dir.join("state.sqlite3"))
                }),
            },
            state_required: state_given.is_some(),
            state_limits: {
                let d = crate::state::Limits::default();
                let kib = |name: &str, kb: Option<u64>, default: u64| match kb {
                    None => Ok(default),
                    Some(kb) => kb
                        .checked_mul(1024)
                        .ok_or_else(|| ConfigError::Invalid(format!("{name} = {kb} is too large"))),
                };
                crate::state::Limits {
                    max_keys: file.state_max_keys.unwrap_or(d.max_keys),
                    max_bytes: kib("state_max_kb", file.state_max_kb, d.max_bytes)?,
                    max_value: kib(
                        "state_max_value_kb",
                        file.state_max_value_kb.map(|kb| kb as u64),
                        d.max_value as u64,
                    )?
                    .try_into()
                    .unwrap_or(usize::MAX),
                    max_ops: file.state_max_ops.unwrap_or(d.max_ops),
                    timeout: file.state_timeout_ms.map_or(d.timeout, ms),
                }
            },
            file_plugins: file
                .plugins
                .into_iter()
                .map(|(name, table)| {
                    let table = table
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                toml::Value::String(s) => s,
                                other => other.to_string(),
                            };
                            (k.to_ascii_lowercase(), v)
                        })
                        .collect();
                    (name, table)
                })
                .collect(),
            env: env
                .into_iter()
                .filter(|(k, _)| k.starts_with("WASMBOT_") && !GLOBAL_ENV.contains(&k.as_str()))
                .collect(),
        };
        if config.plugin_timeout.is_zero()
            || config.http_timeout.is_zero()
            || config.header_timeout.is_zero()
            || config.state_limits.timeout.is_zero()
            || config.later.timeout.is_zero()
        {
            return Err(ConfigError::Invalid(
                "time limits must be above zero".into(),
            ));
        }
        if config.twilio_api.is_some() && !config.webhook_auth() {
            // Unsigned webhooks would let anyone name a `From` and have the
            // bot text that number, at the operator's cost.
            return Err(ConfigError::Invalid(
                "replies later (TWILIO_ACCOUNT_SID) need signed webhooks: set TWILIO_AUTH_TOKEN \
                 (or TWILIO_SHARED_KEYS) too, or anyone could make the bot text any number"
                    .into(),
            ));
        }
        if config.twilio_api.is_some()
            && !(config.plugin_timeout < config.later.timeout
                && config.later.timeout <= MAX_LATER_TIMEOUT)
        {
            return Err(ConfigError::Invalid(format!(
                "later_timeout_ms must be longer than plugin_timeout_ms ({} ms) and at most \
                 an hour",
                config.plugin_timeout.as_millis()
            )));
        }
        if config.max_in_flight == 0
            || config.max_plugins == 0
            || config.max_connections == Some(0)
            || config.workers == Some(0)
        {
            return Err(ConfigError::Invalid(
                "max_in_flight, max_plugins, max_connections and workers must be above zero".into(),
            ));
        }
        if config.workers.is_some_and(|n| n > MAX_WORKERS) {
            return Err(ConfigError::Invalid(format!(
                "workers must be at most {MAX_WORKERS}"
            )));
        }
        if config.memory_budget < config.plugin_memory {
            return Err(ConfigError::Invalid(format!(
                "the memory budget ({} MiB) is smaller than one plugin's memory ({} MiB)",
                config.memory_budget >> 20,
                config.plugin_memory >> 20
            )));
        }
        config.policy()?;
        Ok(config)
    }

    /// The operator's plugin configuration, as the policy reads it.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        Policy::new(
            self.config_file.as_deref(),
            self.file_plugins.clone(),
            self.env.clone(),
        )
    }

    /// Whether webhook requests must be signed.
    pub fn webhook_auth(&self) -> bool {
        self.auth_token.is_some() || !self.shared_keys.is_empty()
    }

    /// Component instances the pool reserves: every plugin in every
    /// message in flight, the calls that reply later (when they can), plus
    /// room to load (describe) the plugins.
    pub fn pool_instances(&self) -> u32 {
        let later = if self.twilio_api.is_some() {
            self.later.max_calls
        } else {
            0
        };
        let n = self
            .max_in_flight
            .saturating_mul(self.max_plugins)
            .saturating_add(later)
            .saturating_add(self.max_plugins);
        u32::try_from(n).unwrap_or(u32::MAX).min(100_000)
    }
}

/// The Messages API credentials from what the operator gave: an API key
/// needs its secret and the account; the account alone uses the Auth
/// Token; nothing at all is no credentials (replies later off).
fn twilio_api(
    account_sid: Option<String>,
    api_key: Option<String>,
    api_secret: Option<Secret>,
    auth_token: Option<Secret>,
) -> Result<Option<crate::deliver::Credentials>, ConfigError> {
    let invalid = |why: &str| Err(ConfigError::Invalid(why.to_owned()));
    let secret = match (&account_sid, &api_key, api_secret) {
        (None, None, None) => return Ok(None),
        (None, _, _) => {
            return invalid(
                "TWILIO_API_KEY/TWILIO_API_SECRET are set without TWILIO_ACCOUNT_SID, the \
                 account replies are sent from",
            );
        }
        (Some(_), Some(_), Some(secret)) => secret,
        (Some(_), Some(_), None) => {
            return invalid("TWILIO_API_KEY is set without TWILIO_API_SECRET");
        }
        (Some(_), None, Some(_)) => {
            return invalid("TWILIO_API_SECRET is set without TWILIO_API_KEY");
        }
        (Some(_), None, None) => match auth_token {
            Some(token) => token,
            None => {
                return invalid(
                    "TWILIO_ACCOUNT_SID is set, but neither an API key (TWILIO_API_KEY and \
                     TWILIO_API_SECRET) nor TWILIO_AUTH_TOKEN to send replies with",
                );
            }
        },
    };
    Ok(account_sid.map(|account_sid| crate::deliver::Credentials {
        account_sid,
        api_key,
        secret,
    }))
}

/// SharedKeys from the file's table and `TWILIO_SHARED_KEYS="KSid=secret,…"`
/// (which wins). An empty id or secret is refused: an unset variable
/// (`KS1=$UNSET`) must not make an empty HMAC key valid.
fn shared_keys(
    file: BTreeMap<String, String>,
    env: Option<&String>,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    let mut keys = BTreeMap::new();
    let from_env = env
        .map_or("", String::as_str)
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(id, secret)| (id.trim().to_owned(), secret.trim().to_owned()))
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "TWILIO_SHARED_KEYS: {:?} is not KSid=secret",
                        pair.chars().take(6).collect::<String>() + "…"
                    ))
                })
        });
    let file = file.into_iter().map(Ok);
    for pair in file.chain(from_env) {
        let (id, secret) = pair?;
        if id.is_empty() || secret.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "SharedKey {:?} has an empty {}: refusing to accept signatures made with an \
                 empty key",
                id,
                if id.is_empty() { "id" } else { "secret" }
            )));
        }
        keys.insert(id, Secret(secret));
    }
    Ok(keys)
}

/// 1/32 of the machine's RAM, at least 256 MiB; 512 MiB when RAM is unknown.
pub fn default_memory_budget() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb.saturating_mul(1024))
        });
    match total {
        Some(bytes) => (bytes / 32).max(256 << 20),
        None => 512 << 20,
    }
}

/// `$XDG_CACHE_HOME/wasmbot`, else `$HOME/.cache/wasmbot`.
pub(crate) fn default_cache_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let base = match env.get("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.get("HOME").filter(|d| !d.is_empty())?).join(".cache"),
    };
    Some(base.join("wasmbot"))
}

/// `$XDG_DATA_HOME/wasmbot`, else `$HOME/.local/share/wasmbot`.
pub(crate) fn default_data_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let base = match env.get("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.get("HOME").filter(|d| !d.is_empty())?).join(".local/share"),
    };
    Some(base.join("wasmbot"))
}

/// The cache needs an absolute path.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(&ServeArgs::default(), env(&[])).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:5000");
        assert_eq!(c.plugins_dir, PathBuf::from("plugins"));
        assert_eq!(c.apology, DEFAULT_APOLOGY);
        assert_eq!(c.auth_token, None);
        assert_eq!(c.config_file, None, "no wasmbot.toml where unit tests run");
        assert!(c.watch);
        assert!(c.memory_budget >= 256 << 20);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.pool_instances(), 256 * 16 + 16);
        assert_eq!(c.cache_dir, None, "no HOME, no default cache");
        let home = Config::resolve(&ServeArgs::default(), env(&[("HOME", "/home/ada")])).unwrap();
        assert_eq!(
            home.cache_dir,
            Some(PathBuf::from("/home/ada/.cache/wasmbot"))
        );
        let xdg = Config::resolve(
            &ServeArgs::default(),
            env(&[("HOME", "/home/ada"), ("XDG_CACHE_HOME", "/var/cache")]),
        )
        .unwrap();
        assert_eq!(xdg.cache_dir, Some(PathBuf::from("/var/cache/wasmbot")));
        let off = ServeArgs {
            no_cache: true,
            no_watch: true,
            ..ServeArgs::default()
        };
        let off = Config::resolve(&off, env(&[("HOME", "/home/ada")])).unwrap();
        assert_eq!(off.cache_dir, None);
        assert!(!off.watch);
    }

    #[test]
    fn workers_from_env_then_file_and_bounded() {
        let resolve = |pairs: &[(&str, &str)]| Config::resolve(&ServeArgs::default(), env(pairs));
        assert_eq!(resolve(&[]).unwrap().workers, None, "one per CPU");
        assert_eq!(
            resolve(&[("WASMBOT_WORKERS", "3")]).unwrap().workers,
            Some(3)
        );
        for bad in ["0", "1025", "many"] {
            let err = resolve(&[("WASMBOT_WORKERS", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("WASMBOT_WORKERS") || err.contains("workers"),
                "{err}"
            );
        }
        let file: FileConfig = toml::from_str("workers = 4").unwrap();
        assert_eq!(file.workers, Some(4));
    }

    #[test]
    fn replies_later_need_a_whole_credential() {
        let sid = "AC0123456789abcdef0123456789abcdef";
        let key = "SK0123456789abcdef0123456789abcdef";
        let resolve = |pairs: &[(&str, &str)]| Config::resolve(&ServeArgs::default(), env(pairs));
        let none = resolve(&[("TWILIO_AUTH_TOKEN", "t")]).unwrap();
        assert!(
            none.twilio_api.is_none(),
            "the Auth Token alone signs webhooks only"
        );
        assert_eq!(none.pool_instances(), 256 * 16 + 16);
        let token = resolve(&[("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", "t")]).unwrap();
        let credentials = token.twilio_api.as_ref().unwrap();
        assert_eq!(
            (
                credentials.api_key.as_deref(),
                credentials.secret.0.as_str()
            ),
            (None, "t")
        );
        assert_eq!(token.twilio_api_url, DEFAULT_TWILIO_API_URL);
        assert_eq!(
            token.pool_instances(),
            256 * 16 + 64 + 16,
            "room for deferred calls"
        );
        let api_key = resolve(&[
            ("TWILIO_ACCOUNT_SID", sid),
            ("TWILIO_API_KEY", key),
            ("TWILIO_API_SECRET", "s"),
            ("TWILIO_SHARED_KEYS", "KS1=shared"),
        ])
        .unwrap();
        let credentials = api_key.twilio_api.unwrap();
        assert_eq!(
            (
                credentials.api_key.as_deref(),
                credentials.secret.0.as_str()
            ),
            (Some(key), "s")
        );
        for bad in [
            &[("TWILIO_ACCOUNT_SID", sid)][..],
            &[("TWILIO_API_KEY", key), ("TWILIO_API_SECRET", "s")],
            &[("TWILIO_ACCOUNT_SID", sid), ("TWILIO_API_KEY", key)],
            &[("TWILIO_ACCOUNT_SID", sid), ("TWILIO_API_SECRET", "s")],
            &[
                ("TWILIO_ACCOUNT_SID", "AC-not-a-sid"),
                ("TWILIO_AUTH_TOKEN", "t"),
            ],
            &[
                ("TWILIO_ACCOUNT_SID", sid),
                ("TWILIO_AUTH_TOKEN", "t"),
                ("TWILIO_API_URL", "http://api.example.com"),
            ],
            // The attack: unsigned webhooks naming any `From`, and the bot
            // texting it.
            &[
                ("TWILIO_ACCOUNT_SID", sid),
                ("TWILIO_API_KEY", key),
                ("TWILIO_API_SECRET", "s"),
            ],
        ] {
            assert!(
                matches!(resolve(bad), Err(ConfigError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    /// The container files set only variables wasmbot reads.
    #[test]
    fn the_deploy_files_name_real_settings() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        for file in ["Dockerfile", "docker-compose.yml"] {
            let text = std::fs::read_to_string(deploy.join(file)).unwrap();
            let names: Vec<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("WASMBOT_") || w.starts_with("TWILIO_"))
                .collect();
            assert!(!names.is_empty(), "{file}");
            for name in names {
                assert!(
                    GLOBAL_ENV.contains(&name) || name == "TWILIO_AUTH_TOKEN",
                    "{file} sets {name}, which wasmbot does not read"
                );
            }
        }
    }

    #[test]
    fn plugin_state_lives_in_the_data_folder_unless_told() {
        use crate::state::Location;
        let home = Config::resolve(&ServeArgs::default(), env(&[("HOME", "/home/ada")])).unwrap();
        assert_eq!(
            home.state,
            Location::File("/home/ada/.local/share/wasmbot/state.sqlite3".into())
        );
        let xdg = Config::resolve(
            &ServeArgs::default(),
            env(&[("HOME", "/home/ada"), ("XDG_DATA_HOME", "/data")]),
        )
        .unwrap();
        assert_eq!(
            xdg.state,
            Location::File("/data/wasmbot/state.sqlite3".into())
        );
        let redis = ServeArgs {
            state: Some("redis://127.0.0.1:6379/1".into()),
            ..ServeArgs::default()
        };
        let redis = Config::resolve(
            &redis,
            env(&[
                ("HOME", "/home/ada"),
                ("WASMBOT_STATE", "redis://127.0.0.1:6379/1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            redis.state,
            Location::Redis("redis://127.0.0.1:6379/1".into())
        );
        assert!(
            !redis.env.contains_key("WASMBOT_STATE"),
            "a global, not a plugin setting"
        );
        let nowhere = Config::resolve(&ServeArgs::default(), env(&[])).unwrap();
        assert_eq!(nowhere.state, Location::Off, "no HOME, no default file");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasmbot.toml");
        std::fs::write(
            &file,
            "state = \"off\"\nstate_max_keys = 10\nstate_max_kb = 4\nstate_max_value_kb = 1\n\
             state_max_ops = 5\nstate_timeout_ms = 250\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args, env(&[("HOME", "/home/ada")])).unwrap();
        assert_eq!(c.state, Location::Off);
        assert_eq!(c.state_limits.max_keys, 10);
        assert_eq!(c.state_limits.max_bytes, 4096);
        assert_eq!(c.state_limits.max_value, 1024);
        assert_eq!(c.state_limits.max_ops, 5);
        assert_eq!(c.state_limits.timeout, Duration::from_millis(250));
    }

    #[test]
    fn plugin_settings_from_env() {
        let c = Config::resolve(
            &ServeArgs::default(),
            env(&[
                ("WASMBOT_QUOTE__URL", "http://127.0.0.1:9/random"),
                ("WASMBOT_QUOTE__ALLOWED_HOSTS", "a.example"),
                ("WASMBOT_MY_BOT__API_KEY", "k"),
                ("WASMBOT_ADDR", "0.0.0.0:1"),
                ("WASMBOT_ADMIN_TOKEN", "admin"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        let policy = c.policy().unwrap();
        let id = |s: &str| crate::policy::PluginId::parse(s).unwrap();
        let quote = policy.operator_settings(&id("quote"));
        assert_eq!(quote["url"].0, "http://127.0.0.1:9/random");
        assert_eq!(quote["allowed_hosts"].0, "a.example");
        assert_eq!(policy.operator_settings(&id("my-bot"))["api_key"].0, "k");
        assert!(policy.operator_settings(&id("cat")).is_empty());
        assert!(
            !c.env.contains_key("WASMBOT_ADMIN_TOKEN"),
            "global, not a plugin's"
        );
        assert_eq!(c.admin_token, Some(Secret("admin".into())));
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("wasmbot-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wasmbot.toml");
        std::fs::write(
            &path,
            r#"
                addr = "127.0.0.1:7000"
                plugins_dir = "/srv/plugins"
                apology = "Sorry!"
                plugin_timeout_ms = 1500
                [twilio_shared_keys]
                KSfile = "from-file"
                [plugins.quote]
                url = "https://file.example/random"
                retries = 3
            "#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            addr: Some("127.0.0.1:7001".parse().unwrap()),
            ..ServeArgs::default()
        };
        let c = Config::resolve(
            &args,
            env(&[("WASMBOT_QUOTE__URL", "https://env.example/r")]),
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:7001");
        assert_eq!(c.plugins_dir, PathBuf::from("/srv/plugins"));
        assert_eq!(c.apology, "Sorry!");
        assert_eq!(c.plugin_timeout, Duration::from_millis(1500));
        assert_eq!(c.config_file, Some(path.clone()));
        let quote = c
            .policy()
            .unwrap()
            .operator_settings(&crate::policy::PluginId::parse("quote").unwrap());
        assert_eq!(quote["url"].0, "https://env.example/r");
        assert_eq!(quote["retries"].0, "3");
        assert_eq!(c.shared_keys["KSfile"], Secret("from-file".into()));

        std::fs::write(&path, "adress = \"typo\"").unwrap();
        let err = Config::resolve(&args, env(&[])).unwrap_err().to_string();
        assert!(err.contains("adress"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shared_keys_from_env() {
        let c = Config::resolve(
            &ServeArgs::default(),
            env(&[("TWILIO_SHARED_KEYS", "KSa=s3cret-a, KSb = s3cret-b,")]),
        )
        .unwrap();
        assert_eq!(c.shared_keys.len(), 2);
        assert_eq!(c.shared_keys["KSb"], Secret("s3cret-b".into()));
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "secrets in Debug: {debug}");
    }

    /// `TWILIO_SHARED_KEYS="KS1=$UNSET"` must not make an empty HMAC key
    /// valid: wasmbot refuses to start.
    #[test]
    fn empty_shared_keys_are_refused() {
        for bad in ["KS1=", "=secret", "KS1=s,KS2= ", "junk", "KS1"] {
            let err = Config::resolve(&ServeArgs::default(), env(&[("TWILIO_SHARED_KEYS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("empty") || err.contains("is not KSid=secret"),
                "{bad}: {err}"
            );
            assert!(
                !err.contains("secret\""),
                "{bad}: the secret is not echoed: {err}"
            );
        }
        assert!(
            Config::resolve(&ServeArgs::default(), env(&[("WASMBOT_ADMIN_TOKEN", " ")])).is_err()
        );
    }

    /// The documented example and the repo's own file are valid.
    #[test]
    fn the_shipped_config_files_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["wasmbot.example.toml", "wasmbot.toml"] {
            let args = ServeArgs {
                config: Some(root.join(file)),
                ..ServeArgs::default()
            };
            let c = Config::resolve(&args, env(&[])).unwrap_or_else(|e| panic!("{file}: {e}"));
            let quote = c
                .policy()
                .unwrap()
                .grant(&crate::policy::PluginId::parse("quote").unwrap(), &[]);
            assert_eq!(quote.hosts[0].host, "api.quotable.io", "{file}");
        }
    }

    #[test]
    fn rejects_a_bad_public_url() {
        let args = ServeArgs {
            public_url: Some("tunnel.example".into()),
            ..ServeArgs::default()
        };
        assert!(Config::resolve(&args, env(&[])).is_err());
    }
}
