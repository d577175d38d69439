//! Plugin state: the key-value store behind the contract's `state`
//! interface. One [`Store`] per process, shared by every plugin; each call
//! names the plugin, and a plugin's keys live under its id alone, so no
//! plugin can reach another's.
//!
//! Two backends with the same semantics, proven by one test suite run
//! against each (`tests/e2e/state.rs`, a real file and a real
//! `redis-server`):
//! - [`sqlite`] — the default, one file in the data folder, no set-up
//!   (SQLite in WAL mode: several processes on one machine may share it,
//!   and the operator can read it with the `sqlite3` shell);
//! - [`redis`] — `state = "redis://…"`, for replicas on several machines.
//!
//! Every limit is enforced here or in the backend, atomically with the
//! write it guards, and reported as a [`StateError`]: never a trap, and a
//! refused write changes nothing.

use std::time::Duration;

pub mod redis;
pub mod sqlite;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 256;
/// Longest time to live: a year.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The operator's limits on plugin state.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest value, in bytes. Default 64 KiB.
    pub max_value: usize,
    /// Keys one plugin may hold. Default 10,000.
    pub max_keys: u32,
    /// Bytes of keys and values one plugin may hold. Default 8 MiB.
    pub max_bytes: u64,
    /// Operations one call may make. Default 1,000.
    pub max_ops: u32,
    /// Time one operation may take, waiting for the store included.
    /// Default 1 s.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value: 64 << 10,
            max_keys: 10_000,
            max_bytes: 8 << 20,
            max_ops: 1000,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Why a state operation did not happen: the contract's `state.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("value longer than {0} bytes")]
    TooLarge(u32),
    #[error("full: {0}")]
    Full(String),
    #[error("more than {0} state operations in one message")]
    TooManyOperations(u32),
    #[error("not a number")]
    NotANumber,
    #[error("state unavailable: {0}")]
    Unavailable(String),
}

/// Where plugin state is kept, as the operator wrote it (`--state`,
/// `WASMBOT_STATE`, `state = …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (a path, or `sqlite:PATH`).
    File(std::path::PathBuf),
    /// A Redis server: a `redis://` or `redis+unix://` (`unix://`) URL.
    Redis(String),
    /// `off`: plugins get `unavailable`.
    Off,
}

impl Location {
    /// Reads what the operator wrote; a URL of another scheme is an error,
    /// never a file of that name (a misspelt `redis://` must not leave each
    /// replica with a state of its own).
    pub fn parse(text: &str) -> Result<Location, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Location::Off);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            return Ok(Location::File(path.into()));
        }
        // `scheme:` at the start (letters first, then letters, digits, `+`,
        // `-`, `.`) is a URL, however it goes on.
        let scheme = text.split_once(':').map(|(s, _)| s).filter(|s| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
        match scheme {
            None => Ok(Location::File(text.into())),
            Some("redis" | "redis+unix" | "unix") if text.contains("://") => {
                Ok(Location::Redis(text.to_owned()))
            }
            Some("rediss") => Err(
                "TLS to Redis (rediss://) is not built into this wasmbot; reach Redis over a \
                 private network or a TLS tunnel with redis://"
                    .into(),
            ),
            Some(scheme) => Err(format!(
                "{scheme}: is not a state store: give a SQLite file, redis://host:port/db or off"
            )),
        }
    }
}

impl std::fmt::Display for Location {
    /// For logs and `GET /plugins`: a Redis URL without its password
    /// (`user:password@`, or a socket URL's `?pass=`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "sqlite {}", path.display()),
            Location::Redis(url) => match url::Url::parse(url) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.set_query(None);
                    write!(f, "redis {url}")
                }
                Err(_) => f.write_str("redis (unparsable URL)"),
            },
            Location::Off => f.write_str("off"),
        }
    }
}

/// The limits of the server's own namespaces (those that start with `_`,
/// which no plugin id does): the replies later wait there.
const SERVER: Limits = Limits {
    max_value: 1 << 20,
    max_keys: 1_000_000,
    max_bytes: 1 << 30,
    max_ops: u32::MAX,
    timeout: Duration::from_secs(1),
};

/// The plugin state of this process.
pub struct Store {
    backend: Backend,
    limits: Limits,
    /// [`SERVER`], within the operator's time limit.
    server: Limits,
    location: Location,
    /// Operations that found the store unreachable or too slow.
    unavailable: std::sync::atomic::AtomicU64,
    /// The last answer to a ping, and when.
    last_ping: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), StateError>)>>,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Redis(redis::Redis),
    Off,
}

impl Store {
    /// Opens (creating if need be) the store at `location`. A Redis server
    /// is connected to lazily, so the bot starts while it is down (and
    /// says so at `/readyz`).
    pub fn open(location: &Location, limits: Limits) -> Result<Store, StateError> {
        let backend = match location {
            Location::File(path) => Backend::Sqlite(sqlite::Sqlite::open(path, &limits)?),
            Location::Redis(url) => Backend::Redis(redis::Redis::open(url, &limits)?),
            Location::Off => Backend::Off,
        };
        Ok(Store {
            backend,
            server: Limits {
                timeout: limits.timeout,
                ..SERVER
            },
            limits,
            location: location.clone(),
            unavailable: Default::default(),
            last_ping: Default::default(),
        })
    }

    /// How many operations so far found the store unreachable or too slow
    /// (`/metrics`).
    pub fn unavailable_count(&self) -> u64 {
        self.unavailable.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The limits of `namespace`: the operator's for a plugin, the
    /// server's for its own (a name that starts with `_`).
    fn limits_of(&self, namespace: &str) -> &Limits {
        if namespace.starts_with('_') {
            &self.server
        } else {
            &self.limits
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether the store answers (for `/readyz`, which anyone may ask):
    /// Redis is asked at most once a second; a SQLite file opened at start
    /// is there (asking it would queue behind plugins' operations).
    pub async fn ping(&self) -> Result<(), StateError> {
        let Backend::Redis(db) = &self.backend else {
            return Ok(());
        };
        let mut last = self.last_ping.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < Duration::from_secs(1)
        {
            return result.clone();
        }
        // Not counted as an operation's failure: `/readyz` polls.
        let result = self.within(db.ping()).await;
        *last = Some((std::time::Instant::now(), result.clone()));
        result
    }

    pub async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        valid_key(key)?;
        match &self.backend {
            Backend::Sqlite(db) => self.timed(db.get(plugin, key)).await,
            Backend::Redis(db) => self.timed(db.get(plugin, key)).await,
            Backend::Off => Err(off()),
        }
    }

    pub async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        valid_key(key)?;
        let limits = self.limits_of(plugin);
        if value.len() > limits.max_value {
            return Err(StateError::TooLarge(
                u32::try_from(limits.max_value).unwrap_or(u32::MAX),
            ));
        }
        if let Some(ttl) = ttl
            && (ttl.is_zero() || ttl > MAX_TTL)
        {
            return Err(StateError::Invalid(
                "a time to live is 1 ms to a year".into(),
            ));
        }
        match &self.backend {
            Backend::Sqlite(db) => self.timed(db.set(plugin, key, value, ttl, limits)).await,
            Backend::Redis(db) => self.timed(db.set(plugin, key, &value, ttl, limits)).await,
            Backend::Off => Err(off()),
        }
    }

    pub async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StateError> {
        valid_key(key)?;
        match &self.backend {
            Backend::Sqlite(db) => self.timed(db.delete(plugin, key)).await,
            Backend::Redis(db) => self.timed(db.delete(plugin, key)).await,
            Backend::Off => Err(off()),
        }
    }

    pub async fn increment(&self, plugin: &str, key: &str, delta: i64) -> Result<i64, StateError> {
        valid_key(key)?;
        match &self.backend {
            Backend::Sqlite(db) => {
                self.timed(db.increment(plugin, key, delta, self.limits_of(plugin)))
                    .await
            }
            Backend::Redis(db) => {
                self.timed(db.increment(plugin, key, delta, self.limits_of(plugin)))
                    .await
            }
            Backend::Off => Err(off()),
        }
    }

    /// One page of the plugin's keys that start with `prefix`, after
    /// `after` if given: at most [`PAGE`], in byte order.
    pub async fn keys(
        &self,
        plugin: &str,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Vec<String>, StateError> {
        if prefix.len() > MAX_KEY || after.is_some_and(|a| a.len() > MAX_KEY) {
            return Ok(Vec::new());
        }
        // Start at the prefix, or just after `after` if that is later.
        let from = match after {
            Some(after) if after >= prefix => Bound::After(after),
            _ => Bound::From(prefix),
        };
        match &self.backend {
            Backend::Sqlite(db) => self.timed(db.keys(plugin, prefix, from)).await,
            Backend::Redis(db) => self.timed(db.keys(plugin, prefix, from)).await,
            Backend::Off => Err(off()),
        }
    }

    /// Whether replicas on other machines see what this store holds (so
    /// the server's own records are worth keeping in it too).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// The reply remembered under `key` for Twilio's retries, if any: the
    /// server's record, not a plugin's (no quota; it expires).
    pub async fn recall(&self, key: &str) -> Result<Option<String>, StateError> {
        match &self.backend {
            Backend::Sqlite(db) => self.timed(db.recall(key)).await,
            Backend::Redis(db) => self.timed(db.recall(key)).await,
            Backend::Off => Ok(None),
        }
    }

    /// Remembers `reply` under `key` for `ttl`, for every replica.
    pub async fn remember(&self, key: &str, reply: &str, ttl: Duration) -> Result<(), StateError> {
        match &self.backend {
            Backend::Sqlite(db) => self.timed(db.remember(key, reply, ttl)).await,
            Backend::Redis(db) => self.timed(db.remember(key, reply, ttl)).await,
            Backend::Off => Ok(()),
        }
    }

    /// One operation within the operation time limit (waiting for the
    /// SQLite connection or the Redis answer included), its failure to
    /// reach the store counted for `/metrics`.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        let result = self.within(op).await;
        if let Err(StateError::Unavailable(_)) = &result {
            self.unavailable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    async fn within<T>(
        &self,
        op: impl Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        tokio::time::timeout(self.limits.timeout, op)
            .await
            .unwrap_or_else(|_| {
                Err(StateError::Unavailable(format!(
                    "no answer within {} ms",
                    self.limits.timeout.as_millis()
                )))
            })
    }
}

/// Most keys one `keys` call returns.
pub const PAGE: usize = 1000;

/// Where a page of keys starts.
#[derive(Debug, Clone, Copy)]
pub enum Bound<'a> {
    /// At this key (the prefix).
    From(&'a str),
    /// Just after this key (the last of the previous page).
    After(&'a str),
}

fn off() -> StateError {
    StateError::Unavailable("the operator turned plugin state off".into())
}

fn valid_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(StateError::Invalid(format!(
            "a key is 1 to {MAX_KEY} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (SQLite's expiry times).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The quota check both backends make, inside the write it guards: `n`
/// keys and `bytes` held now, `grow` keys and `size` bytes after.
/// A write that makes the plugin hold no more than it did always passes
/// (an operator who lowers a quota does not lock plugins out of their
/// own keys).
fn within_quota(
    limits: &Limits,
    (n, bytes): (u64, u64),
    (n_after, bytes_after): (u64, u64),
) -> Result<(), StateError> {
    if n_after > u64::from(limits.max_keys) && n_after > n {
        return Err(StateError::Full(format!(
            "the plugin holds {n} keys, the most it may ({})",
            limits.max_keys
        )));
    }
    if bytes_after > limits.max_bytes && bytes_after > bytes {
        return Err(StateError::Full(format!(
            "the plugin holds {bytes} bytes of keys and values; {bytes_after} would pass its quota of {}",
            limits.max_bytes
        )));
    }
    Ok(())
}

/// What `increment` reads: the canonical decimal text it writes (as
/// Redis's `INCRBY` reads it: no sign but `-`, no leading zeros, no
/// spaces).
fn parse_number(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

#[cfg(test)]
mod tests;
