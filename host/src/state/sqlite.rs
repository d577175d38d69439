//! Plugin state in a SQLite file: the default, for one machine.
//!
//! SQLite rather than an embedded Rust store (redb) because the file is
//! safe to share between processes (WAL mode: `wasmbot chat` next to the
//! running bot, or two replicas on one machine), the operator can read it
//! with the `sqlite3` shell, and its format has been stable for twenty
//! years. `synchronous=NORMAL`: a commit survives the process crashing
//! (a power cut may lose the last ones), at a write's cost of tens of
//! microseconds instead of an fsync.
//!
//! One table, `plugin_state (plugin, key, value, size, expires_ms)`. Every
//! write is one `IMMEDIATE` transaction that first drops the plugin's
//! expired keys, then checks its quota and writes, so two processes cannot
//! both pass a quota. Reads leave expired rows out by their time.

use super::{Limits, StateError, now_ms, parse_number, within_quota};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plugin_state (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (plugin, key)
);
CREATE INDEX IF NOT EXISTS plugin_state_usage ON plugin_state (plugin, expires_ms, size);
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    reply TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_expiry ON replies (expires_ms);
";

/// A live row: not expired at `?now`.
const LIVE: &str = "(expires_ms IS NULL OR expires_ms > ?3)";

impl Sqlite {
    pub fn open(path: &Path, limits: &Limits) -> Result<Sqlite, StateError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StateError::Unavailable(format!("{what} {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent).map_err(|e| fail("cannot create the folder of", &e))?;
        }
        let conn = Connection::open(path).map_err(|e| fail("cannot open", &e))?;
        conn.busy_timeout(limits.timeout)
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| fail("cannot set up", &e))?;
        // Keys that expired while nobody wrote: gone at start.
        conn.execute(
            "DELETE FROM plugin_state WHERE expires_ms <= ?1",
            [now_ms()],
        )
        .map_err(|e| fail("cannot clean", &e))?;
        Ok(Sqlite {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `op` on the connection off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            op(&mut conn)
        })
        .await
        .map_err(|e| StateError::Unavailable(e.to_string()))?
    }

    pub async fn ping(&self) -> Result<(), StateError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(unavailable))
            .await
    }

    pub async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.with(move |c| {
            c.prepare_cached(&format!(
                "SELECT value FROM plugin_state WHERE plugin = ?1 AND key = ?2 AND {LIVE}"
            ))
            .and_then(|mut q| {
                q.query_row(params![plugin, key, now_ms()], |row| row.get(0))
                    .optional()
            })
            .map_err(unavailable)
        })
        .await
    }

    pub async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        limits: &Limits,
    ) -> Result<(), StateError> {
        let (plugin, key, limits) = (plugin.to_owned(), key.to_owned(), limits.clone());
        self.with(move |c| {
            write(c, &plugin, |tx, now| {
                let size = (key.len() + value.len()) as u64;
                let old = size_of(tx, &plugin, &key, now)?;
                let held = usage(tx, &plugin)?;
                let after = (
                    held.0 + u64::from(old.is_none()),
                    held.1 - old.unwrap_or(0) + size,
                );
                within_quota(&limits, held, after)?;
                let expires = ttl.map(|t| now.saturating_add(t.as_millis() as i64));
                tx.prepare_cached(
                    "INSERT INTO plugin_state (plugin, key, value, size, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (plugin, key) DO UPDATE SET
                       value = excluded.value, size = excluded.size,
                       expires_ms = excluded.expires_ms",
                )
                .and_then(|mut q| q.execute(params![plugin, key, value, size as i64, expires]))
                .map_err(unavailable)?;
                Ok(())
            })
        })
        .await
    }

    pub async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StateError> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.with(move |c| {
            write(c, &plugin, |tx, now| {
                tx.prepare_cached(&format!(
                    "DELETE FROM plugin_state WHERE plugin = ?1 AND key = ?2 AND {LIVE}"
                ))
                .and_then(|mut q| q.execute(params![plugin, key, now]))
                .map(|n| n > 0)
                .map_err(unavailable)
            })
        })
        .await
    }

    pub async fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        limits: &Limits,
    ) -> Result<i64, StateError> {
        let (plugin, key, limits) = (plugin.to_owned(), key.to_owned(), limits.clone());
        self.with(move |c| {
            write(c, &plugin, |tx, now| {
                let old: Option<Vec<u8>> = tx
                    .prepare_cached(&format!(
                        "SELECT value FROM plugin_state WHERE plugin = ?1 AND key = ?2 AND {LIVE}"
                    ))
                    .and_then(|mut q| {
                        q.query_row(params![plugin, key, now], |row| row.get(0))
                            .optional()
                    })
                    .map_err(unavailable)?;
                let held = usage(tx, &plugin)?;
                let (sum, after) = match &old {
                    Some(value) => {
                        let sum = parse_number(value)
                            .and_then(|n| n.checked_add(delta))
                            .ok_or(StateError::NotANumber)?;
                        let grown = sum.to_string().len() as u64;
                        (sum, (held.0, held.1 - value.len() as u64 + grown))
                    }
                    None => (
                        delta,
                        (
                            held.0 + 1,
                            held.1 + (key.len() + delta.to_string().len()) as u64,
                        ),
                    ),
                };
                within_quota(&limits, held, after)?;
                let text = sum.to_string();
                let size = (key.len() + text.len()) as u64;
                // An existing key keeps its expiry; a new one has none.
                tx.prepare_cached(
                    "INSERT INTO plugin_state (plugin, key, value, size, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, NULL)
                     ON CONFLICT (plugin, key) DO UPDATE SET
                       value = excluded.value, size = excluded.size",
                )
                .and_then(|mut q| q.execute(params![plugin, key, text.as_bytes(), size as i64]))
                .map_err(unavailable)?;
                Ok(sum)
            })
        })
        .await
    }

    /// The plugin's live keys from `prefix` on, in byte order (the caller
    /// keeps those that start with it).
    pub async fn keys(&self, plugin: &str, prefix: &str) -> Result<Vec<String>, StateError> {
        let (plugin, prefix) = (plugin.to_owned(), prefix.to_owned());
        self.with(move |c| {
            let mut q = c
                .prepare_cached(&format!(
                    "SELECT key FROM plugin_state WHERE plugin = ?1 AND key >= ?2 AND {LIVE}
                     ORDER BY key"
                ))
                .map_err(unavailable)?;
            let rows = q
                .query_map(params![plugin, prefix, now_ms()], |row| {
                    row.get::<_, String>(0)
                })
                .map_err(unavailable)?;
            let mut keys = Vec::new();
            for key in rows {
                let key = key.map_err(unavailable)?;
                if !key.starts_with(&prefix) {
                    break;
                }
                keys.push(key);
            }
            Ok(keys)
        })
        .await
    }
}

impl Sqlite {
    pub async fn recall(&self, key: &str) -> Result<Option<String>, StateError> {
        let key = key.to_owned();
        self.with(move |c| {
            c.prepare_cached("SELECT reply FROM replies WHERE key = ?1 AND expires_ms > ?2")
                .and_then(|mut q| {
                    q.query_row(params![key, now_ms()], |row| row.get(0))
                        .optional()
                })
                .map_err(unavailable)
        })
        .await
    }

    pub async fn remember(&self, key: &str, reply: &str, ttl: Duration) -> Result<(), StateError> {
        let (key, reply) = (key.to_owned(), reply.to_owned());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let now = now_ms();
            tx.prepare_cached("DELETE FROM replies WHERE expires_ms <= ?1")
                .and_then(|mut q| q.execute([now]))
                .and_then(|_| {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO replies (key, reply, expires_ms) VALUES (?1, ?2, ?3)",
                    )
                })
                .and_then(|mut q| {
                    q.execute(params![key, reply, now.saturating_add(ttl.as_millis() as i64)])
                })
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

/// One write transaction for `plugin`: its expired keys dropped first.
fn write<T>(
    conn: &mut Connection,
    plugin: &str,
    op: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T, StateError>,
) -> Result<T, StateError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let now = now_ms();
    tx.prepare_cached("DELETE FROM plugin_state WHERE plugin = ?1 AND expires_ms <= ?2")
        .and_then(|mut q| q.execute(params![plugin, now]))
        .map_err(unavailable)?;
    let result = op(&tx, now)?; // dropping `tx` rolls back
    tx.commit().map_err(unavailable)?;
    Ok(result)
}

/// Keys and bytes `plugin` holds (its expired keys already dropped).
fn usage(tx: &rusqlite::Transaction<'_>, plugin: &str) -> Result<(u64, u64), StateError> {
    tx.prepare_cached("SELECT count(*), coalesce(sum(size), 0) FROM plugin_state WHERE plugin = ?1")
        .and_then(|mut q| {
            q.query_row([plugin], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
            })
        })
        .map_err(unavailable)
}

/// The size of `key`, if it is set.
fn size_of(
    tx: &rusqlite::Transaction<'_>,
    plugin: &str,
    key: &str,
    now: i64,
) -> Result<Option<u64>, StateError> {
    tx.prepare_cached(&format!(
        "SELECT size FROM plugin_state WHERE plugin = ?1 AND key = ?2 AND {LIVE}"
    ))
    .and_then(|mut q| {
        q.query_row(params![plugin, key, now], |row| row.get::<_, i64>(0))
            .optional()
    })
    .map(|size| size.map(|s| s as u64))
    .map_err(unavailable)
}

fn unavailable(e: rusqlite::Error) -> StateError {
    StateError::Unavailable(format!("sqlite: {e}"))
}

/// The data folder, created private to this user: the state of every
/// plugin is in it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}
