//! Plugin state, end to end: the backends' shared suite against a real
//! SQLite file and a real `redis-server` (what a plugin sees must not
//! depend on where its state is kept), then plugins using it through the
//! running bot. The Redis parts need `redis-server` (Debian: `apt-get
//! install redis-server`; `.ci/run` installs it); without it they say
//! loudly that they skipped.

use std::sync::Arc;
use std::time::Duration;
use wasmbot::state::{Limits, Location, MAX_KEY, MAX_TTL, StateError, Store};
use wasmbot_tests::fixture::*;

fn limits() -> Limits {
    Limits {
        max_value: 300,
        max_keys: 4,
        max_bytes: 700,
        max_ops: 1000,
        timeout: Duration::from_secs(2),
    }
}

async fn conformance(store: &Arc<Store>) {
    basics(store).await;
    numbers(store).await;
    listing(store).await;
    expiry(store).await;
    quotas(store).await;
    namespaces(store).await;
    bad_input(store).await;
}

async fn basics(s: &Store) {
    let p = "basics";
    assert_eq!(s.get(p, "k").await, Ok(None));
    s.set(p, "k", b"one".to_vec(), None).await.unwrap();
    assert_eq!(s.get(p, "k").await, Ok(Some(b"one".to_vec())));
    s.set(p, "k", b"two".to_vec(), None).await.unwrap();
    assert_eq!(s.get(p, "k").await, Ok(Some(b"two".to_vec())));
    // Any bytes, and the empty value, come back as they went in.
    let bytes = vec![0, 255, 10, 13, b':', 0];
    s.set(p, "bin:ä ☃", bytes.clone(), None).await.unwrap();
    assert_eq!(s.get(p, "bin:ä ☃").await, Ok(Some(bytes)));
    s.set(p, "empty", Vec::new(), None).await.unwrap();
    assert_eq!(s.get(p, "empty").await, Ok(Some(Vec::new())));
    assert_eq!(s.delete(p, "k").await, Ok(true));
    assert_eq!(s.delete(p, "k").await, Ok(false));
    assert_eq!(s.get(p, "k").await, Ok(None));
}

async fn numbers(s: &Arc<Store>) {
    let p = "numbers";
    assert_eq!(s.increment(p, "n", 5).await, Ok(5));
    assert_eq!(s.increment(p, "n", -7).await, Ok(-2));
    assert_eq!(s.get(p, "n").await, Ok(Some(b"-2".to_vec())));
    s.set(p, "n", b"41".to_vec(), None).await.unwrap();
    assert_eq!(s.increment(p, "n", 1).await, Ok(42));
    for not_a_number in [&b"abc"[..], b"1.5", b" 1", b"+1", b"01", b""] {
        s.set(p, "x", not_a_number.to_vec(), None).await.unwrap();
        assert_eq!(
            s.increment(p, "x", 1).await,
            Err(StateError::NotANumber),
            "{not_a_number:?}"
        );
        assert_eq!(s.get(p, "x").await, Ok(Some(not_a_number.to_vec())));
    }
    s.set(p, "x", i64::MAX.to_string().into_bytes(), None)
        .await
        .unwrap();
    assert_eq!(s.increment(p, "x", 1).await, Err(StateError::NotANumber));
    assert_eq!(s.increment(p, "x", -1).await, Ok(i64::MAX - 1));
    // Counting from many tasks at once loses nothing.
    let mut adds = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = s.clone();
        adds.spawn(async move { s.increment("numbers", "c", 1).await });
    }
    let mut sums: Vec<i64> = adds
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    sums.sort_unstable();
    assert_eq!(sums, (1..=20).collect::<Vec<_>>());
}

async fn listing(s: &Store) {
    let p = "listing";
    for key in ["todo:b", "todo:a", "score", "todo:"] {
        s.set(p, key, b"1".to_vec(), None).await.unwrap();
    }
    assert_eq!(
        s.keys(p, "todo:", None).await.unwrap(),
        ["todo:", "todo:a", "todo:b"]
    );
    assert_eq!(
        s.keys(p, "", None).await.unwrap(),
        ["score", "todo:", "todo:a", "todo:b"]
    );
    assert!(s.keys(p, "zzz", None).await.unwrap().is_empty());
    // From a given key on (exclusive); one before the prefix starts at it.
    assert_eq!(
        s.keys(p, "todo:", Some("todo:a")).await.unwrap(),
        ["todo:b"]
    );
    assert_eq!(
        s.keys(p, "todo:", Some("a")).await.unwrap(),
        ["todo:", "todo:a", "todo:b"]
    );
    assert!(s.keys(p, "todo:", Some("todo:b")).await.unwrap().is_empty());
    assert!(s.keys(p, "todo:c", None).await.unwrap().is_empty());
}

async fn expiry(s: &Store) {
    let p = "expiry";
    // Long enough to stay live through the next few operations on a busy
    // machine; the test then waits it out.
    let brief = Duration::from_millis(1500);
    s.set(p, "brief", b"x".to_vec(), Some(brief)).await.unwrap();
    s.set(p, "stays", b"y".to_vec(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    s.set(p, "counter", b"1".to_vec(), Some(brief))
        .await
        .unwrap();
    // An increment keeps the key's expiry.
    assert_eq!(s.increment(p, "counter", 1).await, Ok(2));
    // Setting without a time to live takes the expiry away.
    s.set(p, "kept", b"k".to_vec(), Some(brief)).await.unwrap();
    s.set(p, "kept", b"k".to_vec(), None).await.unwrap();
    assert_eq!(s.get(p, "brief").await, Ok(Some(b"x".to_vec())));
    tokio::time::sleep(brief + Duration::from_millis(500)).await;
    assert_eq!(s.get(p, "brief").await, Ok(None));
    assert_eq!(s.get(p, "counter").await, Ok(None));
    assert_eq!(s.get(p, "kept").await, Ok(Some(b"k".to_vec())));
    assert_eq!(s.keys(p, "", None).await.unwrap(), ["kept", "stays"]);
    assert_eq!(s.delete(p, "brief").await, Ok(false));
    // An expired counter starts again from nothing.
    assert_eq!(s.increment(p, "counter", 1).await, Ok(1));
}

async fn quotas(s: &Store) {
    let p = "quotas";
    let l = s.limits().clone();
    assert_eq!(
        s.set(p, "big", vec![b'x'; l.max_value + 1], None).await,
        Err(StateError::TooLarge(l.max_value as u32))
    );
    for i in 0..l.max_keys {
        s.set(p, &format!("k{i}"), b"v".to_vec(), None)
            .await
            .unwrap();
    }
    let full = s.set(p, "one-more", b"v".to_vec(), None).await;
    assert!(
        matches!(&full, Err(StateError::Full(m)) if m.contains("4 keys")),
        "{full:?}"
    );
    assert!(matches!(
        s.increment(p, "one-more", 1).await,
        Err(StateError::Full(_))
    ));
    assert_eq!(
        s.get(p, "one-more").await,
        Ok(None),
        "a refused write changes nothing"
    );
    // Overwriting a key is not a new key; deleting one makes room.
    s.set(p, "k0", b"w".to_vec(), None).await.unwrap();
    assert_eq!(s.delete(p, "k0").await, Ok(true));
    s.set(p, "one-more", b"v".to_vec(), None).await.unwrap();
    // Bytes: keys and values count, up to the quota of 700.
    let full = s.set(p, "k1", vec![b'x'; 300], None).await;
    assert!(full.is_ok(), "{full:?}");
    s.set(p, "k2", vec![b'x'; 300], None).await.unwrap();
    let full = s.set(p, "k3", vec![b'x'; 300], None).await;
    assert!(
        matches!(&full, Err(StateError::Full(m)) if m.contains("bytes")),
        "{full:?}"
    );
    assert_eq!(s.get(p, "k3").await, Ok(Some(b"v".to_vec())));
    // Shrinking always works, even at the quota.
    s.set(p, "k2", vec![b'x'; 10], None).await.unwrap();
    // An increment that would grow past the byte quota is refused, and
    // the number stays as it was.
    s.set(p, "k2", b"1".to_vec(), None).await.unwrap();
    s.set(p, "k3", vec![b'x'; 300], None).await.unwrap();
    // k1 and k3 hold 302 bytes each, k2 3: "one-more" fills the quota.
    let fill = l.max_bytes as usize - 607 - "one-more".len();
    s.set(p, "one-more", vec![b'x'; fill], None).await.unwrap();
    assert!(
        matches!(
            s.increment(p, "k2", i64::MAX / 2).await,
            Err(StateError::Full(_))
        ),
        "a 19-digit number does not fit"
    );
    assert_eq!(s.get(p, "k2").await, Ok(Some(b"1".to_vec())));
    assert_eq!(s.increment(p, "k2", 8).await, Ok(9), "the same length fits");
    s.delete(p, "k1").await.unwrap();
    // An expired key makes room too.
    s.delete(p, "k3").await.unwrap();
    s.set(p, "k3", b"v".to_vec(), Some(Duration::from_millis(100)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.set(p, "k4", b"v".to_vec(), None).await.unwrap();
}

async fn namespaces(s: &Store) {
    s.set("alice-bot", "secret", b"a".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(s.get("bob-bot", "secret").await, Ok(None));
    assert!(s.keys("bob-bot", "", None).await.unwrap().is_empty());
    assert_eq!(s.delete("bob-bot", "secret").await, Ok(false));
    assert_eq!(s.increment("bob-bot", "secret", 1).await, Ok(1));
    assert_eq!(s.get("alice-bot", "secret").await, Ok(Some(b"a".to_vec())));
    // A key that looks like another plugin's path is still a key.
    s.set("bob", "bot:secret", b"b".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(s.get("alice-bot", "secret").await, Ok(Some(b"a".to_vec())));
    assert_eq!(s.keys("bob", "", None).await.unwrap(), ["bot:secret"]);
}

async fn bad_input(s: &Store) {
    let p = "bad-input";
    let long = "k".repeat(MAX_KEY + 1);
    for key in ["", long.as_str()] {
        assert!(matches!(s.get(p, key).await, Err(StateError::Invalid(_))));
        assert!(matches!(
            s.set(p, key, b"v".to_vec(), None).await,
            Err(StateError::Invalid(_))
        ));
        assert!(matches!(
            s.delete(p, key).await,
            Err(StateError::Invalid(_))
        ));
        assert!(matches!(
            s.increment(p, key, 1).await,
            Err(StateError::Invalid(_))
        ));
    }
    s.set(p, &"k".repeat(MAX_KEY), b"v".to_vec(), None)
        .await
        .unwrap();
    for ttl in [Duration::ZERO, MAX_TTL + Duration::from_millis(1)] {
        assert!(matches!(
            s.set(p, "k", b"v".to_vec(), Some(ttl)).await,
            Err(StateError::Invalid(_))
        ));
    }
    assert!(s.keys(p, &long, None).await.unwrap().is_empty());
}

/// `keys` answers a page at a time: every key once, in order.
async fn paging(location: &Location) {
    let s = Store::open(location, Limits::default()).unwrap();
    let p = "pages";
    let n = wasmbot::state::PAGE * 2 + 5;
    for i in 0..n {
        s.set(p, &format!("k{i:05}"), Vec::new(), None)
            .await
            .unwrap();
    }
    s.set(p, "other", Vec::new(), None).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.keys(p, "k", after.as_deref()).await.unwrap();
        assert!(page.len() <= wasmbot::state::PAGE);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
    }
    let expected: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/state.sqlite3");
    let store = Arc::new(Store::open(&Location::File(file.clone()), limits()).unwrap());
    conformance(&store).await;
    paging(&Location::File(dir.path().join("pages.sqlite3"))).await;
    // Only this user may read it.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // What was written is there for the next process.
    drop(store);
    let again = Store::open(&Location::File(file), limits()).unwrap();
    assert_eq!(
        again.get("alice-bot", "secret").await,
        Ok(Some(b"a".to_vec()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_meets_the_contract() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = Arc::new(Store::open(&Location::Redis(server.url()), limits()).unwrap());
    store.ping().await.unwrap();
    conformance(&store).await;
    paging(&Location::Redis(format!("{}/1", server.url()))).await;
}

/// The todo example (`plugins/todo`, Python), its native tests run and
/// built once for the tests here.
fn todo_example() -> &'static str {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        crate::authoring::native_tests("todo", "python3", &["-m", "unittest", "-q"]);
        let ws = workspace();
        let built = crate::authoring::build_example(&ws, "todo", &["app.py", "todo.py"]);
        let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm-guests/todo-example.wasm");
        std::fs::copy(built, &kept).unwrap();
        kept.to_str().unwrap().to_owned()
    })
}

/// A compiled-code cache the todo bots share, so the 18 MB component is
/// compiled once for all of them, not once per bot and file.
fn compile_cache() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const ADA: &str = "whatsapp:+15550001111";
const BOB: &str = "whatsapp:+15550002222";

/// The text of the one message `bot` answers `body` from `from`.
async fn says(bot: &Bot, from: &str, body: &str) -> String {
    text(bot.message_from(from, body).await)
}

/// The text of the one message of `reply`, unescaped.
fn text(reply: Reply) -> String {
    only_body(reply.twiml())
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_todo_example_keeps_a_list_per_sender_across_restarts() {
    let todo = todo_example();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("state.sqlite3");
    let start = |files: Vec<(&'static str, &'static str)>| {
        let file = file.clone();
        async move {
            Bot::start(&files, move |c| {
                c.state = Location::File(file);
                c.cache_dir = Some(compile_cache());
                c.plugin_timeout = Duration::from_secs(5);
            })
            .await
        }
    };
    let bot = start(vec![("todo.wasm", todo), ("cat.wasm", CAT)]).await;
    assert!(says(&bot, ADA, "todo").await.contains("empty"));
    assert_eq!(says(&bot, ADA, "todo add milk").await, "Added #1: milk");
    assert_eq!(says(&bot, ADA, "todo add eggs").await, "Added #2: eggs");
    assert_eq!(
        says(&bot, BOB, "todo add call mom").await,
        "Added #1: call mom"
    );
    assert_eq!(
        says(&bot, ADA, "todo").await,
        "Your to-do list:\n1. milk\n2. eggs"
    );
    assert_eq!(
        says(&bot, ADA, "todo done 1").await,
        "Done: milk \u{2705} (1 finished so far)"
    );
    assert_eq!(
        says(&bot, BOB, "todo").await,
        "Your to-do list:\n1. call mom"
    );
    // A stateless plugin next to it is untouched.
    let xml = bot.message("cat").await.twiml().to_owned();
    assert!(xml.contains(&format!("<Media>{CAT_URL}</Media>")), "{xml}");
    bot.stop().await;

    // A restart keeps the lists. The same component under another name is
    // another plugin, with keys of its own: it sees none of todo's.
    let bot = start(vec![("todo.wasm", todo), ("chores.wasm", todo)]).await;
    assert_eq!(
        says(&bot, ADA, "todo").await,
        "Your to-do list is empty. Add something: todo add <thing>\n\n\
         Your to-do list:\n1. eggs"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hoarding_plugin_is_held_to_its_quotas_and_others_answer() {
    let bot = Bot::start(
        &[
            ("hoarder.wasm", HOARDER),
            ("hog.wasm", HOARDER),
            ("cat.wasm", CAT),
        ],
        |c| {
            c.state_limits.max_keys = 50;
            c.state_limits.max_ops = 200;
        },
    )
    .await;
    // Each plugin has its own quota: both fill theirs.
    let full = "50 then full: the plugin holds 50 keys, the most it may (50)";
    assert_eq!(
        only_body(bot.message("flood").await.twiml()),
        format!("{full}\n\n{full}")
    );
    let spun = "200 then more than 200 state operations in one message";
    assert_eq!(
        only_body(bot.message("spin").await.twiml()),
        format!("{spun}\n\n{spun}")
    );
    let big = "value longer than 65536 bytes";
    assert_eq!(
        only_body(bot.message("big").await.twiml()),
        format!("{big}\n\n{big}")
    );
    let xml = bot.message("cat").await.twiml().to_owned();
    assert!(xml.contains(&format!("<Media>{CAT_URL}</Media>")), "{xml}");
    // Deleting makes room again.
    assert_eq!(only_body(bot.message("wipe").await.twiml()), "50\n\n50");
    assert_eq!(only_body(bot.message("count").await.twiml()), "0\n\n0");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_state_through_redis_and_survive_its_outage() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let todo = todo_example();
    let replica = || {
        let url = redis.url();
        async move {
            Bot::start(&[("todo.wasm", todo), ("cat.wasm", CAT)], move |c| {
                c.state = Location::Redis(url);
                c.cache_dir = Some(compile_cache());
                c.state_limits.timeout = Duration::from_millis(300);
                c.plugin_timeout = Duration::from_secs(5);
            })
            .await
        }
    };
    let (a, b) = (replica().await, replica().await);
    // A conversation through a round-robin in front of both: every
    // message lands on the other replica, and the state follows.
    let front = RoundRobin::start(vec![a.addr, b.addr]).await;
    let say = |body: &'static str| {
        let front = &front;
        async move { text(front.message_from(ADA, body, &[]).await) }
    };
    assert_eq!(say("todo add milk").await, "Added #1: milk");
    assert_eq!(say("todo add eggs").await, "Added #2: eggs");
    assert_eq!(say("todo").await, "Your to-do list:\n1. milk\n2. eggs");
    assert!(say("todo done 1").await.starts_with("Done: milk"));
    assert_eq!(say("todo").await, "Your to-do list:\n1. eggs");
    assert_eq!(say("todo add bread").await, "Added #2: bread");
    for replica in [&a, &b] {
        let metrics = replica.metrics().await;
        assert!(
            metrics.contains("wasmbot_messages_total{outcome=\"answered\"} 3\n"),
            "each replica answered three: {metrics:.400}"
        );
    }
    assert_eq!(
        says(&a, ADA, "todo").await,
        says(&b, ADA, "todo").await,
        "both replicas see one list"
    );

    // Redis gone: the plugin says so, in time; the others answer.
    redis.stop();
    let started = std::time::Instant::now();
    assert_eq!(
        says(&a, ADA, "todo").await,
        "Sorry, I can't reach your list right now. Please try again in a minute."
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let xml = b.message("cat").await.twiml().to_owned();
    assert!(xml.contains(&format!("<Media>{CAT_URL}</Media>")), "{xml}");
    assert!(captured_log().contains("state unavailable: redis"));
    // Alive, but not ready (once its last look at Redis, at most a second
    // old, is): a load balancer sends messages elsewhere.
    let ready = eventually("/readyz 503", Duration::from_secs(10), async || {
        let ready = a.client.get(a.url("/readyz")).send().await.unwrap();
        if ready.status() == 503 {
            Ok(ready)
        } else {
            Err(ready.status().to_string())
        }
    })
    .await;
    assert_eq!(ready.text().await.unwrap(), "state store unreachable\n");
    let alive = a.client.get(a.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);

    // Back (empty: it kept nothing on disk): both replicas recover.
    redis.restart();
    for bot in [&a, &b] {
        eventually("an empty list", Duration::from_secs(30), async || {
            let said = says(bot, BOB, "todo").await;
            if said.contains("empty") {
                Ok(())
            } else {
                Err(said)
            }
        })
        .await;
    }
    assert_eq!(says(&b, BOB, "todo add again").await, "Added #1: again");
    // Ready again once its next look at Redis (at most a second old) is.
    eventually("/readyz 200 again", Duration::from_secs(10), async || {
        let status = a
            .client
            .get(a.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_replica_gets_the_first_reply_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let stub = Stub::start().await;
    let replica = || {
        let (url, quotes) = (redis.url(), stub.url("/counted"));
        async move {
            Bot::start(&[("quote.wasm", QUOTE)], move |c| {
                c.state = Location::Redis(url);
                c.env.insert("WASMBOT_QUOTE__URL".into(), quotes);
            })
            .await
        }
    };
    let (a, b) = (replica().await, replica().await);
    let form = whatsapp_form("quote");
    let token = [("i-twilio-idempotency-token", "t-replicas")];
    let first = a.post_form(&form, &token).await.twiml().to_owned();
    assert_eq!(only_body(&first), "Call 1. - Counter");
    // The reply is shared in the background (Twilio's retry comes seconds
    // later): wait until Redis holds it, asking it as the replicas do.
    let key = wasmbot::webhook::replay_key("t-replicas", "/bot", "", form_body(&form).as_bytes());
    let shared = Store::open(&Location::Redis(redis.url()), Limits::default()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shared.recall(&key).await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reply was never shared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The retry lands on the other replica: the first reply, no plugin run.
    let retry = b.post_form(&form, &token).await.twiml().to_owned();
    assert_eq!(retry, first);
    assert_eq!(
        only_body(b.message("quote").await.twiml()),
        "Call 2. - Counter"
    );
    // And on a replica started after: nothing local, only Redis.
    let c = replica().await;
    let retry = c.post_form(&form, &token).await.twiml().to_owned();
    assert_eq!(retry, first);
    assert_eq!(
        only_body(c.message("quote").await.twiml()),
        "Call 3. - Counter",
        "no plugin ran for the retry"
    );
    for bot in [a, b, c] {
        bot.stop().await;
    }
}
