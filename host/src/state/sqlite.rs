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
//! Tables: `plugin_state (plugin, key, value, size, expires_ms)`, and
//! `plugin_usage (plugin, keys, bytes)`, the running totals the quota is
//! checked against (recomputed from the rows when the file is opened).
//! Every write is one `IMMEDIATE` transaction that first drops the
//! plugin's expired keys, then checks its quota and writes, so two
//! processes cannot both pass a quota; every step is O(log n) in the keys
//! the plugin holds. Reads leave expired rows out by their time. A key is
//! live up to and including its expiry millisecond, as in Redis.
//!
//! One connection, taken in turn (a fair async lock, so waiting holds no
//! thread); the operation then runs on a blocking thread, to its end: a
//! caller that gives up waiting (the operation time limit) is told
//! `unavailable`, whose outcome is unknown, as with Redis.

use super::{Bound, Limits, PAGE, StateError, now_ms, parse_number, within_quota};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Sqlite {
    conn: Arc<tokio::sync::Mutex<Connection>>,
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
CREATE INDEX IF NOT EXISTS plugin_state_expiry ON plugin_state (plugin, expires_ms);
CREATE TABLE IF NOT EXISTS plugin_usage (
    plugin TEXT PRIMARY KEY,
    keys INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    reply TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_expiry ON replies (expires_ms);
";

/// A live row: not expired at `?3`.
const LIVE: &str = "(expires_ms IS NULL OR expires_ms >= ?3)";

impl Sqlite {
    pub fn open(path: &Path, limits: &Limits) -> Result<Sqlite, StateError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StateError::Unavailable(format!("{what} {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent).map_err(|e| fail("cannot create the folder of", &e))?;
        }
        // Every plugin's state is in it: readable by this user only (the
        // -wal and -shm files SQLite makes take the same mode).
        private_file(path).map_err(|e| fail("cannot create", &e))?;
        let mut conn = Connection::open(path).map_err(|e| fail("cannot open", &e))?;
        conn.busy_timeout(limits.timeout)
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| fail("cannot set up", &e))?;
        // Keys that expired while nobody wrote go now, and the totals are
        // counted afresh from the rows (whatever an older file held).
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fail("cannot clean", &e))?;
        tx.execute("DELETE FROM plugin_state WHERE expires_ms < ?1", [now_ms()])
            .and_then(|_| tx.execute("DELETE FROM plugin_usage", []))
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO plugin_usage (plugin, keys, bytes)
                     SELECT plugin, count(*), sum(size) FROM plugin_state GROUP BY plugin",
                    [],
                )
            })
            .map_err(|e| fail("cannot count", &e))?;
        tx.commit().map_err(|e| fail("cannot clean", &e))?;
        Ok(Sqlite {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
        })
    }

    /// Runs `op` on the connection, once it is this caller's turn, on a
    /// blocking thread (one at a time: the lock is taken first). Every
    /// operation is a few O(log n) statements; one that has started runs to
    /// its end even if its caller stops waiting.
    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let mut conn = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || op(&mut conn))
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?
    }

    pub async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.with(move |c| value_of(c, &plugin, &key, now_ms()))
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
                    held.1.saturating_sub(old.unwrap_or(0)) + size,
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
                set_usage(tx, &plugin, after)
            })
        })
        .await
    }

    pub async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StateError> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.with(move |c| {
            write(c, &plugin, |tx, now| {
                let Some(size) = size_of(tx, &plugin, &key, now)? else {
                    return Ok(false);
                };
                tx.prepare_cached("DELETE FROM plugin_state WHERE plugin = ?1 AND key = ?2")
                    .and_then(|mut q| q.execute(params![plugin, key]))
                    .map_err(unavailable)?;
                let held = usage(tx, &plugin)?;
                set_usage(
                    tx,
                    &plugin,
                    (held.0.saturating_sub(1), held.1.saturating_sub(size)),
                )?;
                Ok(true)
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
                let old = value_of(tx, &plugin, &key, now)?;
                let held = usage(tx, &plugin)?;
                let (sum, after) = match &old {
                    Some(value) => {
                        let sum = parse_number(value)
                            .and_then(|n| n.checked_add(delta))
                            .ok_or(StateError::NotANumber)?;
                        let grown = sum.to_string().len() as u64;
                        let freed = (key.len() + value.len()) as u64;
                        (
                            sum,
                            (
                                held.0,
                                held.1.saturating_sub(freed) + key.len() as u64 + grown,
                            ),
                        )
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
                let size = (key.len() + text.len()) as i64;
                // An existing key keeps its expiry; a new one has none.
                tx.prepare_cached(
                    "INSERT INTO plugin_state (plugin, key, value, size, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, NULL)
                     ON CONFLICT (plugin, key) DO UPDATE SET
                       value = excluded.value, size = excluded.size",
                )
                .and_then(|mut q| q.execute(params![plugin, key, text.as_bytes(), size]))
                .map_err(unavailable)?;
                set_usage(tx, &plugin, after)?;
                Ok(sum)
            })
        })
        .await
    }

    /// One page of the plugin's live keys that start with `prefix`, from
    /// `from` on, in byte order.
    pub async fn keys(
        &self,
        plugin: &str,
        prefix: &str,
        from: Bound<'_>,
    ) -> Result<Vec<String>, StateError> {
        let (op, start) = match from {
            Bound::From(key) => (">=", key.to_owned()),
            Bound::After(key) => (">", key.to_owned()),
        };
        let (plugin, prefix) = (plugin.to_owned(), prefix.to_owned());
        self.with(move |c| {
            let mut q = c
                .prepare_cached(&format!(
                    "SELECT key FROM plugin_state WHERE plugin = ?1 AND key {op} ?2 AND {LIVE}
                     ORDER BY key LIMIT {PAGE}"
                ))
                .map_err(unavailable)?;
            let rows = q
                .query_map(params![plugin, start, now_ms()], |row| {
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

    pub async fn recall(&self, key: &str) -> Result<Option<String>, StateError> {
        let key = key.to_owned();
        self.with(move |c| {
            c.prepare_cached("SELECT reply FROM replies WHERE key = ?1 AND expires_ms >= ?2")
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
            tx.prepare_cached("DELETE FROM replies WHERE expires_ms < ?1")
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

/// One write transaction for `plugin`: its expired keys dropped (and
/// taken off its totals) first.
fn write<T>(
    conn: &mut Connection,
    plugin: &str,
    op: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T, StateError>,
) -> Result<T, StateError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let now = now_ms();
    let (gone, freed): (i64, i64) = tx
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0) FROM plugin_state
             WHERE plugin = ?1 AND expires_ms < ?2",
        )
        .and_then(|mut q| q.query_row(params![plugin, now], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(unavailable)?;
    if gone > 0 {
        tx.prepare_cached("DELETE FROM plugin_state WHERE plugin = ?1 AND expires_ms < ?2")
            .and_then(|mut q| q.execute(params![plugin, now]))
            .map_err(unavailable)?;
        let held = usage(&tx, plugin)?;
        set_usage(
            &tx,
            plugin,
            (
                held.0.saturating_sub(gone as u64),
                held.1.saturating_sub(freed as u64),
            ),
        )?;
    }
    let result = op(&tx, now)?; // dropping `tx` rolls back
    tx.commit().map_err(unavailable)?;
    Ok(result)
}

/// Keys and bytes `plugin` holds (its expired keys already dropped).
fn usage(tx: &rusqlite::Transaction<'_>, plugin: &str) -> Result<(u64, u64), StateError> {
    tx.prepare_cached("SELECT keys, bytes FROM plugin_usage WHERE plugin = ?1")
        .and_then(|mut q| {
            q.query_row([plugin], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
            })
            .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(unavailable)
}

fn set_usage(
    tx: &rusqlite::Transaction<'_>,
    plugin: &str,
    (keys, bytes): (u64, u64),
) -> Result<(), StateError> {
    tx.prepare_cached(
        "INSERT INTO plugin_usage (plugin, keys, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (plugin) DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes",
    )
    .and_then(|mut q| q.execute(params![plugin, keys as i64, bytes as i64]))
    .map(drop)
    .map_err(unavailable)
}

/// The value of `key`, if it is set.
fn value_of(
    conn: &Connection,
    plugin: &str,
    key: &str,
    now: i64,
) -> Result<Option<Vec<u8>>, StateError> {
    conn.prepare_cached(&format!(
        "SELECT value FROM plugin_state WHERE plugin = ?1 AND key = ?2 AND {LIVE}"
    ))
    .and_then(|mut q| {
        q.query_row(params![plugin, key, now], |row| row.get(0))
            .optional()
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

/// The database file, created readable by this user only if it is new.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}
