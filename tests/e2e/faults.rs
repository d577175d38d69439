//! Misbehaving plugins next to quote and cat: a trap, an endless loop, a
//! plugin built for another contract version, garbage files.

use std::time::{Duration, Instant};
use wasmbot_tests::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_and_a_looping_plugin_leave_the_others_answering() {
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Bot::start(
        &[
            ("quote.wasm", QUOTE),
            ("cat.wasm", CAT),
            ("trap.wasm", TRAP),
            ("spin.wasm", SPIN),
        ],
        |c| {
            c.env.insert("WASMBOT_QUOTE__URL".into(), url);
            c.plugin_timeout = Duration::from_millis(1000);
        },
    )
    .await;
    let names: Vec<String> = bot.plugins().await["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["spin", "trap", "quote", "cat"]);

    for _ in 0..3 {
        let started = Instant::now();
        let reply = bot.message("quote and a cat").await;
        let took = started.elapsed();
        assert_eq!(reply.twiml(), twiml(&[(Some(STUB_QUOTE), Some(CAT_URL))]));
        // The loop is cut at its 1 s deadline, not later.
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_millis(3000), "{took:?}");
    }
    // A plugin's own error is left out the same way.
    let reply = bot.message("a cat, politely").await;
    assert_eq!(reply.twiml(), twiml(&[(None, Some(CAT_URL))]));

    // Dispatch tells each failure precisely.
    use wasmbot::error::PluginError;
    let answer = bot.dispatch("cat").await;
    assert_eq!(answer.answered, ["cat"]);
    let failed: std::collections::BTreeMap<_, _> = answer.failed.into_iter().collect();
    assert!(
        matches!(failed["spin"], PluginError::Timeout(_)),
        "{failed:?}"
    );
    let PluginError::Trap(trap) = &failed["trap"] else {
        panic!("{failed:?}");
    };
    assert!(trap.starts_with("wasm trap: wasm `unreachable`"), "{trap}");
    assert!(trap.contains("trap fixture: boom on \"cat\""), "{trap}");
    let answer = bot.dispatch("cat, politely").await;
    let failed: std::collections::BTreeMap<_, _> = answer.failed.into_iter().collect();
    assert_eq!(
        failed["trap"],
        PluginError::Failed("refused politely".into())
    );

    // Writing far more to stderr than the host keeps is no failure.
    let reply = bot.message("a chatty cat").await;
    assert_eq!(
        reply.twiml(),
        twiml(&[(Some("said a lot on stderr"), Some(CAT_URL))])
    );
    bot.stop().await;
}

/// A plugin computing on a worker thread leaves the worker's other
/// connections served: a request whose head arrives in two parts (the
/// second needs the worker to poll for I/O) is answered at once, every
/// time, while the loop runs on the same (only) worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_leaves_its_worker_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bot = Bot::start(&[("spin.wasm", SPIN)], |c| {
        c.workers = Some(1);
        c.plugin_timeout = Duration::from_secs(3);
    })
    .await;
    let looping = bot.message("hello");
    let probes = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut waited = Duration::ZERO;
        for _ in 0..5 {
            let mut conn = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
            conn.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let sent = Instant::now();
            conn.write_all(b"Host: x\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).await.unwrap();
            waited += sent.elapsed();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        waited
    };
    let (reply, waited) = tokio::join!(looping, probes);
    // The loop was running all along: it is cut at its deadline.
    assert_eq!(reply.twiml(), twiml(&[(Some(APOLOGY), None)]));
    // With one I/O poll every 61 ticks, each answer took up to 0.6 s.
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_plugins_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"\0asm but not really").unwrap();
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let garbage = garbage.to_str().unwrap();
    let empty = empty.to_str().unwrap();
    let bot = Bot::start(
        &[
            ("cat.wasm", CAT),
            ("v2.wasm", V2),
            ("garbage.wasm", garbage),
            ("empty.wasm", empty),
            // Not *.wasm, or hidden: ignored.
            ("notes.txt", garbage),
            (".cat.wasm.tmp", CAT),
            (".hidden.wasm", garbage),
        ],
        |_| {},
    )
    .await;
    let listing = bot.plugins().await;
    let loaded: Vec<_> = listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(loaded, ["cat.wasm"]);
    let errors = listing["errors"].as_array().unwrap();
    let files: Vec<_> = errors.iter().map(|e| e["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["empty.wasm", "garbage.wasm", "v2.wasm"]);
    assert_eq!(errors[2]["error"]["kind"], "incompatible");
    let v2 = errors[2]["error"]["message"].as_str().unwrap();
    assert!(v2.contains("wasmbot:plugin@2.0.0"), "{v2}");
    assert!(v2.contains("wasmbot:plugin@0.2.0"), "{v2}");
    assert!(v2.contains("0.2.x or 0.1.x"), "{v2}");
    assert!(
        errors[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{errors:?}"
    );
    // The good plugin serves regardless.
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_plugins_folder_serves_the_apology() {
    let bot = Bot::start(&[], |c| {
        c.plugins_dir = c.plugins_dir.join("does-not-exist");
    })
    .await;
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(Some(APOLOGY), None)])
    );
    let errors = &bot.plugins().await["errors"];
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read the plugins folder"),
        "{errors}"
    );
    bot.stop().await;
}

/// Each attack of the hostile fixture, sent with "quote and a cat": what
/// the hostile plugin's own outcome must be. quote and cat always answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_hurt_only_themselves() {
    let stub = Stub::start().await;
    let (quote_url, slow_url) = (stub.url("/random"), stub.url("/slow"));
    let bot = Bot::start(
        &[
            ("quote.wasm", QUOTE),
            ("cat.wasm", CAT),
            ("hostile.wasm", HOSTILE),
        ],
        |c| {
            c.env.insert("WASMBOT_QUOTE__URL".into(), quote_url);
            c.env.insert("WASMBOT_HOSTILE__SLOW_URL".into(), slow_url);
            // A public-only grant of a name that resolves to loopback.
            c.env
                .insert("WASMBOT_HOSTILE__ALLOWED_HOSTS".into(), "localhost".into());
            c.plugin_timeout = Duration::from_millis(1500);
        },
    )
    .await;
    enum Outcome {
        Failed(&'static str),
        Says(&'static str),
        /// Starts with the first, contains the second.
        SaysWith(&'static str, &'static str),
    }
    use Outcome::*;
    let attacks = [
        ("membomb", Failed("trapped: ")),
        // Rust's shadow stack lives in linear memory: overflowing it is an
        // out-of-bounds access before wasmtime's own stack limit is hit.
        ("recurse", Failed("trapped: wasm trap: out of bounds")),
        // 10 MB of text is more than the host copies out of one call
        // (its hostcall fuel): the call traps instead of the host
        // allocating it.
        ("bigtext", Failed("trapped: ")),
        // 2 million empty strings: 32 MiB of the plugin's memory, 48 MiB
        // of the host's once lifted; refused the same way.
        ("amplify", Failed("trapped: ")),
        ("manymedia", Says("")),
        (
            "forbidden",
            Says("forbidden: Error::Denied(\"169.254.169.254 is not an allowed host"),
        ),
        (
            "private",
            SaysWith(
                "private: Error::Denied(\"localhost is ",
                "a non-public address",
            ),
        ),
        ("slowhttp", Says("slowhttp: Error::Timeout")),
        // `Host: evil.example` is dropped: the allowed site answers.
        (
            "hostheader",
            SaysWith("hostheader: host header: 127.0.0.1:", ""),
        ),
        (
            "manyhttp",
            Says(
                "manyhttp: 10 ok, last: Error::Denied(\"limit of 10 requests per message reached\")",
            ),
        ),
        (
            "files",
            Says("files: false; data: \"\"; write: false; env: \"\"; socket: false"),
        ),
    ];
    for (attack, outcome) in attacks {
        let started = Instant::now();
        let answer = bot.dispatch(&format!("quote and a cat {attack}")).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(2500),
            "{attack}: took {took:?}"
        );
        let cat = answer
            .messages
            .iter()
            .filter(|m| m.media.iter().any(|u| u == CAT_URL));
        assert_eq!(cat.count(), 1, "{attack}: {:?}", answer.messages);
        let bodies: Vec<&str> = answer
            .messages
            .iter()
            .filter_map(|m| m.body.as_deref())
            .collect();
        let body = bodies.join("\n\n");
        assert!(body.contains(STUB_QUOTE), "{attack}: {body:.200}");
        assert!(answer.messages.len() <= 5, "{attack}");
        for m in &answer.messages {
            let chars = m.body.as_deref().unwrap_or_default().chars().count();
            assert!(chars <= 1600, "{attack}: {chars}");
        }
        match outcome {
            Failed(reason) => {
                assert_eq!(answer.answered, ["quote", "cat"], "{attack}");
                let failed: std::collections::BTreeMap<_, _> = answer.failed.into_iter().collect();
                assert!(
                    failed["hostile"].to_string().starts_with(reason),
                    "{attack}: {failed:?}"
                );
            }
            Says(text) => {
                assert_eq!(answer.answered, ["hostile", "quote", "cat"], "{attack}");
                assert!(body.starts_with(text), "{attack}: {body:.200}");
            }
            SaysWith(start, part) => {
                assert_eq!(answer.answered, ["hostile", "quote", "cat"], "{attack}");
                assert!(body.starts_with(start), "{attack}: {body:.200}");
                assert!(body.contains(part), "{attack}: {body:.200}");
            }
        }
    }
    // Over real HTTP too, and the server is still fine afterwards.
    let reply = bot.message("quote and a cat membomb").await;
    assert_eq!(reply.twiml(), twiml(&[(Some(STUB_QUOTE), Some(CAT_URL))]));
    let listing = bot.plugins().await;
    let hostile = &listing["plugins"][0];
    assert_eq!(hostile["name"], "hostile");
    assert!(hostile["failures"].as_u64().unwrap() >= 3, "{hostile}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_failing_in_a_row_is_disabled_until_a_rescan() {
    let bot = Bot::start(&[("cat.wasm", CAT), ("trap.wasm", TRAP)], |c| {
        c.disable_after_failures = 3;
    })
    .await;
    let cat = twiml(&[(None, Some(CAT_URL))]);
    for _ in 0..5 {
        assert_eq!(bot.message("cat").await.twiml(), cat);
    }
    let trap = |listing: &serde_json::Value| {
        listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "trap")
            .unwrap()
            .clone()
    };
    let stats = trap(&bot.plugins().await);
    assert_eq!(stats["disabled"], true, "{stats}");
    assert_eq!(stats["calls"], 3, "not called once disabled: {stats}");
    assert!(
        stats["last_failure"]["message"]
            .as_str()
            .unwrap()
            .contains("boom"),
        "{stats}"
    );

    assert_eq!(bot.reload().await.0, 200);
    let stats = trap(&bot.plugins().await);
    assert_eq!(stats["disabled"], false, "{stats}");
    assert_eq!(stats["consecutive_failures"], 0, "{stats}");
    bot.stop().await;
}

/// Without a folder the WASI context is built at the plugin's first WASI
/// call, not with the store: what the operator granted is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_granted_without_a_folder_reach_the_plugin() {
    let home = std::env::var("HOME").unwrap_or_default();
    // An empty value would pass with no variable granted at all.
    assert!(
        !home.is_empty() && !home.contains(['&', '<', '>', '"']),
        "this test needs HOME set, without XML's special characters: {home:?}"
    );
    let bot = Bot::start(&[("hostile.wasm", HOSTILE)], |c| {
        c.file_plugins.insert(
            "hostile".into(),
            [("grant_env".to_string(), "HOME".to_string())].into(),
        );
    })
    .await;
    let xml = bot.message("files").await.twiml().to_owned();
    let expected = format!(
        "files: false; data: &quot;&quot;; write: false; env: &quot;{home}&quot;; socket: false"
    );
    assert_eq!(only_body(&xml), expected);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_can_grant_a_folder_and_variables_read_only() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello.txt"), "hi from the host").unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let home = std::env::var("HOME").unwrap_or_default();
    let bot = Bot::start(&[("hostile.wasm", HOSTILE)], |c| {
        c.file_plugins.insert(
            "hostile".into(),
            [
                ("grant_dir".to_string(), dir),
                (
                    "grant_env".to_string(),
                    "HOME, NOT_SET_ANYWHERE".to_string(),
                ),
            ]
            .into(),
        );
    })
    .await;
    let xml = bot.message("files").await.twiml().to_owned();
    let expected = format!(
        "files: false; data: &quot;hi from the host&quot;; write: false; env: &quot;{home}&quot;; socket: false"
    );
    assert_eq!(only_body(&xml), expected);
    assert!(!data.path().join("written.txt").exists());
    let hostile = bot.plugin("hostile").await;
    assert_eq!(
        hostile["env"],
        serde_json::json!(["HOME"]),
        "names only, never values"
    );
    bot.stop().await;
}
