//! Plugin state in Redis (`state = "redis://…"`), for replicas.
//!
//! Layout, under `wasmbot:state:<plugin>:` (plugin ids have no `:`):
//! `v:<key>` holds a value (with Redis's own expiry for a time to live),
//! the sorted set `i` indexes the plugin's keys by expiry time (`+inf`:
//! none), `k` by name (for prefixes), the hash `s` holds each key's size
//! and `b` their sum: every check is O(1) or O(log n), so a plugin with
//! many keys never stalls the server the replicas share. Every write is one Lua
//! script — atomic on the server, whichever replica sends it — that first
//! drops the plugin's expired keys (by the server's clock), then checks
//! the quota and writes. Reads are plain `GET`s. The connection is
//! multiplexed and re-established in the background when Redis comes
//! back; each operation has the operator's time limit.

use super::{Bound, Limits, PAGE, StateError, parse_number};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

pub struct Redis {
    conn: ConnectionManager,
}

const ROOT: &str = "wasmbot:state:";

/// Run first by every write script: ARGV[1] is the plugin's base key.
/// Drops the expired keys, and defines `usage()`: keys and bytes held.
const PURGE: &str = r#"
local base = ARGV[1]
local idx, lex, sizes, total = base .. 'i', base .. 'k', base .. 's', base .. 'b'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Live up to and including the expiry millisecond, as Redis's own GET.
local gone = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. now)
for _, k in ipairs(gone) do
  redis.call('DEL', base .. 'v:' .. k)
  redis.call('DECRBY', total, tonumber(redis.call('HGET', sizes, k) or '0'))
  redis.call('HDEL', sizes, k)
  redis.call('ZREM', lex, k)
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. now) end
local function usage()
  return redis.call('ZCARD', idx), tonumber(redis.call('GET', total) or '0')
end
local function put(key, size, old)
  redis.call('HSET', sizes, key, size)
  redis.call('ZADD', lex, 0, key)
  redis.call('INCRBY', total, size - (old and tonumber(old) or 0))
end
"#;

/// ARGV: base, key, value, ttl ms or '', max keys, max bytes.
/// Returns {'ok'} or {'full', keys held, bytes held, keys after, bytes after}.
const SET: &str = r#"
local key, value, ttl = ARGV[2], ARGV[3], ARGV[4]
local size = #key + #value
local old = redis.call('HGET', sizes, key)
local n, b = usage()
local n2 = n + (old and 0 or 1)
local b2 = b - (old and tonumber(old) or 0) + size
if (n2 > tonumber(ARGV[5]) and n2 > n) or (b2 > tonumber(ARGV[6]) and b2 > b) then
  return {'full', tostring(n), tostring(b), tostring(n2), tostring(b2)}
end
if ttl == '' then
  redis.call('SET', base .. 'v:' .. key, value)
  redis.call('ZADD', idx, '+inf', key)
else
  redis.call('SET', base .. 'v:' .. key, value, 'PX', ttl)
  redis.call('ZADD', idx, now + tonumber(ttl), key)
end
put(key, size, old)
return {'ok'}
"#;

/// ARGV: base, key, delta, max keys, max bytes.
/// Returns {'ok', sum}, {'nan'} or {'full', …} as `SET`.
const INCREMENT: &str = r#"
local key, delta = ARGV[2], ARGV[3]
local vkey = base .. 'v:' .. key
local old = redis.call('HGET', sizes, key)
local n, b = usage()
local current = old and redis.call('GET', vkey)
if current then
  local r = redis.pcall('INCRBY', vkey, delta)
  if type(r) == 'table' and r.err then return {'nan'} end
  local sum = redis.call('GET', vkey)
  local b2 = b - tonumber(old) + #key + #sum
  if b2 > tonumber(ARGV[5]) and b2 > b then
    redis.call('SET', vkey, current, 'KEEPTTL')
    return {'full', tostring(n), tostring(b), tostring(n), tostring(b2)}
  end
  put(key, #key + #sum, old)
  return {'ok', sum}
end
local size = #key + #delta
-- A value gone from under its index entry (evicted) is counted already.
local n2 = n + (old and 0 or 1)
local b2 = b - (old and tonumber(old) or 0) + size
if (n2 > tonumber(ARGV[4]) and n2 > n) or (b2 > tonumber(ARGV[5]) and b2 > b) then
  return {'full', tostring(n), tostring(b), tostring(n2), tostring(b2)}
end
redis.call('SET', vkey, delta)
redis.call('ZADD', idx, '+inf', key)
put(key, size, old)
return {'ok', delta}
"#;

/// ARGV: base, key. Returns 1 if the key was set.
const DELETE: &str = r#"
local key = ARGV[2]
local existed = redis.call('DEL', base .. 'v:' .. key)
redis.call('DECRBY', total, tonumber(redis.call('HGET', sizes, key) or '0'))
redis.call('ZREM', idx, key)
redis.call('ZREM', lex, key)
redis.call('HDEL', sizes, key)
return existed
"#;

/// ARGV: base, `[prefix` (or `(after`), `(prefix\xff` (no UTF-8 key has
/// the byte 0xff, so every key that starts with the prefix sorts below
/// it), the page size. Returns one page of the live keys that start with
/// the prefix, in byte order.
const KEYS: &str = r#"
return redis.call('ZRANGEBYLEX', lex, ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
"#;

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PURGE}{body}"))
}

impl Redis {
    /// A client for `url`; it connects on first use and reconnects in the
    /// background, so the bot starts (and answers stateless plugins)
    /// while Redis is down.
    pub fn open(url: &str, limits: &Limits) -> Result<Redis, StateError> {
        // The connection's background task needs one (and would panic).
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StateError::Unavailable(
                "a Redis store is opened inside a Tokio runtime".into(),
            ));
        }
        let client = redis::Client::open(url)
            .map_err(|e| StateError::Unavailable(format!("bad Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(limits.timeout))
            .set_response_timeout(Some(limits.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(limits.timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StateError::Unavailable(format!("redis: {e}")))?;
        Ok(Redis { conn })
    }

    fn base(plugin: &str) -> String {
        format!("{ROOT}{plugin}:")
    }

    pub async fn ping(&self) -> Result<(), StateError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        redis::cmd("GET")
            .arg(format!("{}v:{key}", Self::base(plugin)))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        limits: &Limits,
    ) -> Result<(), StateError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| script(SET));
        let ttl = ttl.map(|t| t.as_millis().to_string()).unwrap_or_default();
        let reply: Vec<String> = SCRIPT
            .arg(Self::base(plugin))
            .arg(key)
            .arg(value)
            .arg(ttl)
            .arg(limits.max_keys)
            .arg(limits.max_bytes)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            _ => Err(full(&reply, limits)),
        }
    }

    pub async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StateError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| script(DELETE));
        let existed: i64 = SCRIPT
            .arg(Self::base(plugin))
            .arg(key)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(existed > 0)
    }

    pub async fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        limits: &Limits,
    ) -> Result<i64, StateError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| script(INCREMENT));
        let reply: Vec<String> = SCRIPT
            .arg(Self::base(plugin))
            .arg(key)
            .arg(delta.to_string())
            .arg(limits.max_keys)
            .arg(limits.max_bytes)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("ok") => reply
                .get(1)
                .and_then(|sum| parse_number(sum.as_bytes()))
                .ok_or_else(|| StateError::Unavailable("redis: unexpected reply".into())),
            Some("nan") => Err(StateError::NotANumber),
            _ => Err(full(&reply, limits)),
        }
    }

    /// One page of the plugin's live keys that start with `prefix`, from
    /// `from` on, in byte order.
    pub async fn keys(
        &self,
        plugin: &str,
        prefix: &str,
        from: Bound<'_>,
    ) -> Result<Vec<String>, StateError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| script(KEYS));
        let from = match from {
            Bound::From(key) => [b"[", key.as_bytes()].concat(),
            Bound::After(key) => [b"(", key.as_bytes()].concat(),
        };
        let to = [b"(", prefix.as_bytes(), b"\xff"].concat();
        SCRIPT
            .arg(Self::base(plugin))
            .arg(from)
            .arg(to)
            .arg(PAGE)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }
}

impl Redis {
    pub async fn recall(&self, key: &str) -> Result<Option<String>, StateError> {
        redis::cmd("GET")
            .arg(format!("{REPLIES}{key}"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub async fn remember(&self, key: &str, reply: &str, ttl: Duration) -> Result<(), StateError> {
        redis::cmd("SET")
            .arg(format!("{REPLIES}{key}"))
            .arg(reply)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }
}

/// Where replies remembered for Twilio's retries are kept.
const REPLIES: &str = "wasmbot:replies:";

/// The `full` reply of a script as the same error SQLite gives.
fn full(reply: &[String], limits: &Limits) -> StateError {
    let field = |i: usize| reply.get(i).and_then(|s| s.parse::<u64>().ok());
    match (field(1), field(2), field(3), field(4)) {
        (Some(n), Some(bytes), Some(n_after), Some(bytes_after)) => {
            super::within_quota(limits, (n, bytes), (n_after, bytes_after))
                .err()
                .unwrap_or_else(|| StateError::Unavailable(format!("redis: refused {reply:?}")))
        }
        _ => StateError::Unavailable(format!("redis: unexpected reply {reply:?}")),
    }
}

fn unavailable(e: redis::RedisError) -> StateError {
    StateError::Unavailable(format!("redis: {e}"))
}
