//! Configuration: command-line flags, environment (and `.env`), an optional
//! TOML file, and defaults, in that order of precedence. Every knob is
//! documented here with its default; `wasmbot.example.toml` shows them all.
//!
//! Per-plugin settings come from `[plugins.<name>]` in the file and from
//! `WASMBOT_<NAME>_<KEY>` variables (the plugin name upper-cased with `-`
//! as `_`; the key lower-cased), the variable winning.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seed's answer when no behaviour matched.
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
    /// TOML configuration file (see wasmbot.example.toml)
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
}

/// The optional TOML file. Unknown keys are errors, so typos show.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<SocketAddr>,
    pub plugins_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub twilio_auth_token: Option<String>,
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
    /// Public base URL for signature checks (`WASMBOT_PUBLIC_URL`). Unset:
    /// the URL is rebuilt from the request's `Host` header.
    pub public_url: Option<String>,
    /// Twilio Auth Token (`TWILIO_AUTH_TOKEN`). Set: every `POST /bot` must
    /// be signed. Unset: unsigned requests are accepted (with a warning).
    pub auth_token: Option<Secret>,
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
    /// `[plugins.<name>]` tables of the file.
    pub file_plugins: BTreeMap<String, BTreeMap<String, String>>,
    /// Every `WASMBOT_*` variable of the environment, for per-plugin lookup.
    pub env: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            plugins_dir: PathBuf::from("plugins"),
            public_url: None,
            auth_token: None,
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
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags (which clap already merged with their variables), the
    /// rest of the environment `env`, and the file named by `--config`.
    pub fn resolve(
        args: &ServeArgs,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let file = match &args.config {
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
        let config = Config {
            addr: args.addr.or(file.addr).unwrap_or(d.addr),
            plugins_dir: args
                .plugins
                .clone()
                .or(file.plugins_dir)
                .unwrap_or(d.plugins_dir),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            auth_token: env
                .get("TWILIO_AUTH_TOKEN")
                .cloned()
                .or(file.twilio_auth_token)
                .filter(|t| !t.is_empty())
                .map(Secret),
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
            max_in_flight: env
                .get("WASMBOT_MAX_IN_FLIGHT")
                .and_then(|v| v.parse().ok())
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
            shared_keys: {
                let mut keys: BTreeMap<String, Secret> = file
                    .twilio_shared_keys
                    .into_iter()
                    .map(|(id, secret)| (id, Secret(secret)))
                    .collect();
                for pair in env
                    .get("TWILIO_SHARED_KEYS")
                    .map_or("", String::as_str)
                    .split(',')
                {
                    if let Some((id, secret)) = pair.split_once('=') {
                        keys.insert(id.trim().to_owned(), Secret(secret.trim().to_owned()));
                    }
                }
                keys
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
        if config.plugin_timeout.is_zero() || config.http_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "time limits must be above zero".into(),
            ));
        }
        Ok(config)
    }

    /// The operator's settings for plugin `name`: the file's table, then
    /// `WASMBOT_<NAME>_<KEY>` variables.
    pub fn plugin_settings(&self, name: &str) -> BTreeMap<String, String> {
        let mut settings = self.file_plugins.get(name).cloned().unwrap_or_default();
        let prefix = format!("WASMBOT_{}_", name.to_ascii_uppercase().replace('-', "_"));
        for (var, value) in &self.env {
            if let Some(key) = var.strip_prefix(&prefix).filter(|k| !k.is_empty()) {
                settings.insert(key.to_ascii_lowercase(), value.clone());
            }
        }
        settings
    }
}

/// `$XDG_CACHE_HOME/wasmbot`, else `$HOME/.cache/wasmbot`.
fn default_cache_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let base = match env.get("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.get("HOME").filter(|d| !d.is_empty())?).join(".cache"),
    };
    Some(base.join("wasmbot"))
}

/// The cache needs an absolute path.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

impl Config {
    /// Every host named in any operator setting of any plugin: the hosts
    /// that may resolve to non-public addresses (see `outbound`).
    pub fn operator_hosts(&self) -> BTreeSet<String> {
        let mut hosts: BTreeSet<String> = self
            .file_plugins
            .values()
            .flat_map(crate::outbound::hosts_in)
            .collect();
        for (var, value) in &self.env {
            let key = if var.ends_with("_ALLOWED_HOSTS") {
                "allowed_hosts"
            } else {
                "value"
            };
            hosts.extend(crate::outbound::hosts_in(&BTreeMap::from([(
                key.to_owned(),
                value.clone(),
            )])));
        }
        hosts
    }
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
        assert!(c.plugin_settings("quote").is_empty());
        assert!(c.watch);
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
    fn plugin_settings_from_env() {
        let c = Config::resolve(
            &ServeArgs::default(),
            env(&[
                ("WASMBOT_QUOTE_URL", "http://127.0.0.1:9/random"),
                ("WASMBOT_QUOTE_ALLOWED_HOSTS", "a.example"),
                ("WASMBOT_MY_BOT_API_KEY", "k"),
                ("WASMBOT_ADDR", "0.0.0.0:1"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        let quote = c.plugin_settings("quote");
        assert_eq!(quote.get("url").unwrap(), "http://127.0.0.1:9/random");
        assert_eq!(quote.get("allowed_hosts").unwrap(), "a.example");
        assert_eq!(c.plugin_settings("my-bot").get("api_key").unwrap(), "k");
        assert!(c.plugin_settings("cat").is_empty());
        let hosts: Vec<String> = c.operator_hosts().into_iter().collect();
        assert_eq!(hosts, ["127.0.0.1", "a.example"]);
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
            env(&[("WASMBOT_QUOTE_URL", "https://env.example/r")]),
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:7001");
        assert_eq!(c.plugins_dir, PathBuf::from("/srv/plugins"));
        assert_eq!(c.apology, "Sorry!");
        assert_eq!(c.plugin_timeout, Duration::from_millis(1500));
        let quote = c.plugin_settings("quote");
        assert_eq!(quote.get("url").unwrap(), "https://env.example/r");
        assert_eq!(quote.get("retries").unwrap(), "3");
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
            env(&[("TWILIO_SHARED_KEYS", "KSa=s3cret-a, KSb = s3cret-b,junk")]),
        )
        .unwrap();
        assert_eq!(c.shared_keys.len(), 2);
        assert_eq!(c.shared_keys["KSb"], Secret("s3cret-b".into()));
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "secrets in Debug: {debug}");
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
