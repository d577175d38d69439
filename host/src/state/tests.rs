//! Unit tests of what does not need a server. The backends' shared suite
//! runs against a real SQLite file and a real `redis-server` in
//! `tests/e2e/state.rs`.

use super::*;
use std::time::Duration;

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

#[test]
fn increment_reads_only_the_text_it_writes() {
    assert_eq!(parse_number(b"42"), Some(42));
    assert_eq!(parse_number(b"-7"), Some(-7));
    assert_eq!(parse_number(b"0"), Some(0));
    assert_eq!(
        parse_number(i64::MIN.to_string().as_bytes()),
        Some(i64::MIN)
    );
    for not in [
        &b"+1"[..],
        b"01",
        b" 1",
        b"1 ",
        b"-0",
        b"1.0",
        b"",
        b"\xff",
        b"99999999999999999999",
    ] {
        assert_eq!(parse_number(not), None, "{not:?}");
    }
}

#[test]
fn a_write_that_does_not_grow_passes_a_lowered_quota() {
    let l = Limits {
        max_keys: 2,
        max_bytes: 100,
        ..Limits::default()
    };
    assert!(within_quota(&l, (1, 10), (2, 20)).is_ok());
    assert!(
        matches!(within_quota(&l, (2, 20), (3, 30)), Err(StateError::Full(m)) if m.contains("2 keys"))
    );
    assert!(
        matches!(within_quota(&l, (1, 90), (1, 101)), Err(StateError::Full(m)) if m.contains("bytes"))
    );
    // Already over (the operator lowered the quota): shrinking works.
    assert!(within_quota(&l, (5, 500), (5, 400)).is_ok());
    assert!(within_quota(&l, (5, 500), (5, 500)).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_unavailable_in_time() {
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let store = Store::open(
        &Location::Redis(format!("redis://127.0.0.1:{port}")),
        limits,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let got = store.get("p", "k").await;
    assert!(matches!(got, Err(StateError::Unavailable(_))), "{got:?}");
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn state_can_be_turned_off() {
    let store = Store::open(&Location::Off, limits()).unwrap();
    assert!(matches!(
        store.get("p", "k").await,
        Err(StateError::Unavailable(m)) if m.contains("off")
    ));
    assert!(store.ping().await.is_ok());
}

#[test]
fn locations_read_as_operators_write_them() {
    assert_eq!(Location::parse("off"), Ok(Location::Off));
    assert_eq!(
        Location::parse("redis://:pw@db:6379/2"),
        Ok(Location::Redis("redis://:pw@db:6379/2".into()))
    );
    assert_eq!(
        Location::parse("sqlite:/var/lib/wasmbot/state.db"),
        Ok(Location::File("/var/lib/wasmbot/state.db".into()))
    );
    assert_eq!(
        Location::parse("state.db"),
        Ok(Location::File("state.db".into()))
    );
    // A password never shows.
    // A misspelt URL is an error, not a file called that; TLS is not built in.
    for wrong in [
        "valkey://db:6379",
        "http://db",
        "redis:db:6379",
        "redis:/db",
        "Redis://db",
    ] {
        assert!(Location::parse(wrong).is_err(), "{wrong}");
    }
    let tls = Location::parse("rediss://:hunter2@db:6380").unwrap_err();
    assert!(tls.contains("TLS") && !tls.contains("hunter2"), "{tls}");
    assert_eq!(
        Location::parse("./data/state.db"),
        Ok(Location::File("./data/state.db".into()))
    );
    let shown = Location::parse("unix:///run/redis.sock?db=1&pass=hunter2")
        .unwrap()
        .to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    let shown = Location::parse("redis://user:hunter2@db:6379/2")
        .unwrap()
        .to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("db:6379"), "{shown}");
}

#[test]
fn a_redis_store_outside_a_runtime_is_an_error_not_a_panic() {
    let opened = Store::open(&Location::Redis("redis://127.0.0.1:1".into()), limits());
    assert!(
        matches!(&opened, Err(StateError::Unavailable(m)) if m.contains("Tokio runtime")),
        "{:?}",
        opened.err()
    );
}
