//! The operator owns trust: each test reproduces an attack around a
//! plugin call (identity, capabilities, the memory of all calls together,
//! the HTTP edge, the admin endpoints, the plugins folder, the log) and
//! shows it contained.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wasmbot::config::Secret;
use wasmbot_tests::fixture::*;

/// A plugin's identity is its file: `zz-impostor.wasm`, which calls itself
/// "quote", reads none of quote's settings or secrets and reaches none of
/// its hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_gets_nothing_of_the_plugin_it_claims_to_be() {
    let stub = Stub::start().await;
    let counted = stub.url("/counted");
    let bot = Bot::start(
        &[("quote.wasm", QUOTE), ("zz-impostor.wasm", IMPOSTOR)],
        |c| {
            c.env.insert("WASMBOT_QUOTE__URL".into(), counted.clone());
            c.env
                .insert("WASMBOT_QUOTE__API_KEY".into(), "sk-live-secret".into());
            c.file_plugins.insert(
                "quote".into(),
                [("allowed_private_hosts".to_string(), "localhost".to_string())].into(),
            );
            // The old one-underscore form is not read, and said so.
            c.env
                .insert("WASMBOT_QUOTE_URL".into(), "http://10.0.0.1/".into());
        },
    )
    .await;
    let xml = bot.message("steal").await.twiml().to_owned();
    assert_eq!(
        only_body(&xml),
        "stole url=None api_key=None fetch=no url",
        "the impostor got quote's settings"
    );
    // Knowing quote's upstream does not let it in: not its host.
    let xml = bot
        .message(&format!("steal {counted}"))
        .await
        .twiml()
        .to_owned();
    assert!(
        only_body(&xml).starts_with(
            "stole url=None api_key=None fetch=Error::Denied(&quot;127.0.0.1 is not an allowed host"
        ),
        "{xml}"
    );
    // quote itself still has them: the stub was never called before now.
    let xml = bot.message("quote").await.twiml().to_owned();
    assert_eq!(only_body(&xml), "Call 1. - Counter");

    let impostor = bot.plugin("zz-impostor").await;
    assert_eq!(impostor["name"], "quote");
    assert_eq!(impostor["configured"], serde_json::json!({}));
    assert_eq!(impostor["hosts"], serde_json::json!([]));
    let quote = bot.plugin("quote").await;
    assert_eq!(
        quote["configured"],
        serde_json::json!({
            "allowed_private_hosts": "config [plugins.quote] allowed_private_hosts",
            "api_key": "environment WASMBOT_QUOTE__API_KEY",
            "url": "environment WASMBOT_QUOTE__URL",
        })
    );
    let text = serde_json::to_string(&bot.plugins().await).unwrap();
    assert!(!text.contains("sk-live-secret"), "a secret in /plugins");
    let warnings = bot.plugins().await["warnings"].clone();
    let said = |plugin: &str, part: &str| {
        warnings
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["plugin"] == plugin && w["warning"].as_str().unwrap().contains(part))
    };
    assert!(said("zz-impostor", "calls itself \"quote\""), "{warnings}");
    assert!(
        said("quote", "WASMBOT_QUOTE_URL is not read") && said("quote", "use WASMBOT_QUOTE__URL"),
        "{warnings}"
    );

    // The operator configures the impostor under its own id, and only then
    // does it get anything.
    bot.stop().await;
    let bot = Bot::start(&[("zz-impostor.wasm", IMPOSTOR)], |c| {
        c.env
            .insert("WASMBOT_ZZ_IMPOSTOR__API_KEY".into(), "its-own".into());
    })
    .await;
    let xml = bot.message("steal").await.twiml().to_owned();
    assert_eq!(
        only_body(&xml),
        "stole url=None api_key=Some(&quot;its-own&quot;) fetch=no url"
    );
    bot.stop().await;
}

/// `a-b` and `a_b` would share their variables (`WASMBOT_A_B__…`): ids
/// have no `_`, so `a_b.wasm` is refused with an error that names the file
/// it would collide with, and `a-b` serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_would_share_variables_are_refused() {
    let bot = Bot::start(&[("a-b.wasm", CAT), ("a_b.wasm", CAT)], |c| {
        c.env.insert(
            "WASMBOT_A_B__URL".into(),
            "https://a-b.example/cat.jpg".into(),
        );
    })
    .await;
    let listing = bot.plugins().await;
    assert_eq!(listing["plugins"][0]["id"], "a-b");
    assert_eq!(listing["plugins"].as_array().unwrap().len(), 1);
    let error = &listing["errors"][0];
    assert_eq!(error["file"], "a_b.wasm");
    assert_eq!(error["error"]["kind"], "bad_id");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("WASMBOT_A_B__") && message.contains("rename it a-b.wasm"),
        "{message}"
    );
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some("https://a-b.example/cat.jpg"))])
    );

    // Nor is a name that is no id at all.
    std::fs::copy(CAT, bot.plugin_path("Cat.wasm")).unwrap();
    let listing = bot
        .plugins_when(Duration::from_secs(10), |l| {
            l["errors"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(listing["errors"][0]["file"], "Cat.wasm");
    assert_eq!(listing["errors"][0]["error"]["kind"], "bad_id");
    bot.stop().await;
}

/// What a plugin declares is a request: its default URL reaches nothing
/// until the operator grants the host, and `/plugins` says how.
/// A plugin cannot ask to be called for more than the host allows: a 0.2
/// plugin with 33 triggers (one a pattern that would compile to a huge
/// automaton) is refused at load with the reason, and the earlier version
/// of its file keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_triggers_are_refused_at_load() {
    let bot = Bot::start(&[("greedy.wasm", CAT)], |_| {}).await;
    let cat = twiml(&[(None, Some(CAT_URL))]);
    assert_eq!(bot.message("cat").await.twiml(), cat);
    copy_atomically(GREEDY, &bot.plugin_path("greedy.wasm"));
    let listing = bot
        .plugins_when(Duration::from_secs(10), |l| {
            !l["errors"].as_array().unwrap().is_empty()
        })
        .await;
    let error = &listing["errors"][0];
    assert_eq!(error["file"], "greedy.wasm");
    assert_eq!(error["error"]["kind"], "bad_info", "{error}");
    let why = error["error"]["message"].as_str().unwrap();
    assert!(why.contains("33 triggers; at most 32"), "{why}");
    // The cat component that was there before, under this file's id.
    assert_eq!(error["still_serving"], "greedy 0.1.0");
    assert_eq!(bot.message("word1 cat").await.twiml(), cat);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_urls_grant_nothing() {
    let stub = Stub::start().await;
    let bot = Bot::start(&[("quote.wasm", QUOTE), ("hostile.wasm", HOSTILE)], |_| {}).await;
    // quote's default is quotable: not granted, so a bundled quote (and
    // nothing left the machine).
    let xml = bot.message("quote").await.twiml().to_owned();
    assert!(bundled_quotes().contains(&only_body(&xml)), "{xml}");
    // hostile's declared `http://localhost:9/`: denied as not allowed.
    let xml = bot.message("private").await.twiml().to_owned();
    assert!(
        only_body(&xml)
            .starts_with("private: Error::Denied(&quot;localhost is not an allowed host"),
        "{xml}"
    );
    let quote = bot.plugin("quote").await;
    assert_eq!(quote["hosts"], serde_json::json!([]));
    assert_eq!(
        quote["requested"],
        serde_json::json!([{"host": "api.quotable.io", "setting": "url", "granted": false}])
    );
    assert_eq!(
        quote["to_grant"]["toml"],
        "[plugins.quote]\nallowed_hosts = \"api.quotable.io\""
    );
    assert_eq!(
        quote["to_grant"]["env"],
        "WASMBOT_QUOTE__ALLOWED_HOSTS=api.quotable.io"
    );
    bot.stop().await;

    // Granted by the operator (a URL value of theirs): reached.
    let url = stub.url("/random");
    let bot = Bot::start(&[("quote.wasm", QUOTE)], |c| {
        c.file_plugins
            .insert("quote".into(), [("url".to_string(), url)].into());
    })
    .await;
    let xml = bot.message("quote").await.twiml().to_owned();
    assert_eq!(only_body(&xml), STUB_QUOTE);
    assert_eq!(
        bot.plugin("quote").await["hosts"][0]["by"],
        "config [plugins.quote] url"
    );
    bot.stop().await;
}

/// One plugin that holds memory in every message cannot take the memory
/// the others need: with several plugins loaded it may hold at most half
/// the budget, and past that it alone is left out (its own failure), while
/// quote and cat answer every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_gets_half_the_budget_and_hurts_only_itself() {
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = std::sync::Arc::new(
        Bot::start(
            &[
                ("quote.wasm", QUOTE),
                ("cat.wasm", CAT),
                ("hostile.wasm", HOSTILE),
            ],
            |c| {
                c.env.insert("WASMBOT_QUOTE__URL".into(), url);
                c.memory_budget = 100 << 20;
            },
        )
        .await,
    );
    let held = twiml(&[(Some(&format!("held 40 MiB\n\n{STUB_QUOTE}")), Some(CAT_URL))]);
    let without = twiml(&[(Some(STUB_QUOTE), Some(CAT_URL))]);
    let mut sent = Vec::new();
    for _ in 0..6 {
        let bot = bot.clone();
        sent.push(tokio::spawn(async move {
            bot.message("quote and a cat memhold").await
        }));
    }
    let (mut full, mut left_out) = (0, 0);
    for task in sent {
        let reply = task.await.unwrap();
        let xml = reply.twiml();
        if xml == held {
            full += 1;
        } else {
            assert_eq!(xml, without);
            left_out += 1;
        }
    }
    assert!(
        full >= 1 && left_out >= 1,
        "{full} held, {left_out} left out"
    );
    let hostile = bot.plugin("hostile").await;
    assert_eq!(hostile["last_failure"]["kind"], "memory", "{hostile}");
    let memory = bot.plugins().await["memory"].clone();
    assert_eq!(memory["in_use"], 0, "{memory}");
    assert_eq!(memory["budget"], 100 << 20);
    // What the freed slots keep resident for the next instances is within
    // its reserve, a quarter of the budget at most (the hog's 40 MiB were
    // given back, not kept).
    let (idle, reserved) = (
        memory["idle_resident"].as_u64().unwrap(),
        memory["idle_reserved"].as_u64().unwrap(),
    );
    assert!(idle <= reserved && reserved <= 25 << 20, "{memory}");
}

/// Plugins within their share that together need more than the budget: the
/// message is refused whole with 503 + Retry-After (never answered with a
/// plugin missing), the refusal is not remembered for Twilio's retry, and
/// the memory is all given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_memory_budget_refuses_messages_whole() {
    let bot = Bot::start(
        &[
            ("cat.wasm", CAT),
            ("hog-a.wasm", HOSTILE),
            ("hog-b.wasm", HOSTILE),
            ("hog-c.wasm", HOSTILE),
        ],
        |c| c.memory_budget = 100 << 20,
    )
    .await;
    // Three times 40 MiB, each within its half of 100 MiB: 120 MiB.
    let form = whatsapp_form("cat memhold");
    let token = [("i-twilio-idempotency-token", "full-1")];
    let refused = bot.post_form(&form, &token).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.text.contains("at capacity"), "{}", refused.text);
    assert_eq!(
        bot.plugins().await["memory"]["in_use"],
        0,
        "memory given back"
    );
    // Smaller messages still get through.
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    // One hog goes; Twilio's retry of the refused message runs the plugins
    // (it was not cached) and is answered in full.
    std::fs::remove_file(bot.plugin_path("hog-c.wasm")).unwrap();
    let started = Instant::now();
    while bot.plugins().await["plugins"].as_array().unwrap().len() != 3 {
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let retry = bot.post_form(&form, &token).await;
    assert_eq!(
        retry.twiml(),
        twiml(&[(Some("held 40 MiB\n\nheld 40 MiB"), Some(CAT_URL))])
    );
    bot.stop().await;
}

/// A plugin that cannot be instantiated (its granted folder is gone) is
/// the operator's problem: it fails, visibly, without being disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instantiation_failures_do_not_disable_a_plugin() {
    let bot = Bot::start(&[("hostile.wasm", HOSTILE), ("cat.wasm", CAT)], |c| {
        c.disable_after_failures = 2;
        c.file_plugins.insert(
            "hostile".into(),
            [("grant_dir".to_string(), "/does/not/exist".to_string())].into(),
        );
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            bot.message("cat").await.twiml(),
            twiml(&[(None, Some(CAT_URL))])
        );
    }
    let hostile = bot.plugin("hostile").await;
    assert_eq!(hostile["disabled"], false, "{hostile}");
    assert_eq!(hostile["failures"], 3, "{hostile}");
    assert_eq!(hostile["consecutive_failures"], 0, "{hostile}");
    assert_eq!(hostile["last_failure"]["kind"], "instantiate", "{hostile}");
    bot.stop().await;
}

/// `I-Twilio-Idempotency-Token` is not signed: a different message reusing
/// a token must never get the first message's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_idempotency_token_never_returns_another_message() {
    let stub = Stub::start().await;
    let url = stub.url("/counted");
    let bot = Bot::start(&[("quote.wasm", QUOTE)], |c| {
        c.env.insert("WASMBOT_QUOTE__URL".into(), url);
    })
    .await;
    let token = [("i-twilio-idempotency-token", "shared-token")];
    let ada = whatsapp_form("quote");
    let mut mallory = whatsapp_form("quote please");
    mallory.retain(|(k, _)| k != "From");
    mallory.push(("From".into(), "whatsapp:+15550009999".into()));

    let first = bot.post_form(&ada, &token).await.twiml().to_owned();
    assert_eq!(only_body(&first), "Call 1. - Counter");
    let other = bot.post_form(&mallory, &token).await.twiml().to_owned();
    assert_eq!(only_body(&other), "Call 2. - Counter", "got Ada's reply");
    // Twilio's real retry (same everything) still gets the first reply.
    let retry = bot.post_form(&ada, &token).await.twiml().to_owned();
    assert_eq!(retry, first);
    bot.stop().await;
}

async fn status(bot: &Bot, method: reqwest::Method, path: &str, bearer: Option<&str>) -> u16 {
    let mut req = bot.client.request(method, bot.url(path));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().status().as_u16()
}

/// The admin endpoints answer to the admin token alone, never to a peer
/// address or the Auth Token; with webhook auth and no admin token they
/// are off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_admin_token() {
    use reqwest::Method;
    let both = [(Method::GET, "/plugins"), (Method::POST, "/plugins/reload")];

    // SharedKeys only, no admin token: off, even from loopback.
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.shared_keys
            .insert("KSabc".into(), Secret("shared-secret".into()));
    })
    .await;
    for (method, path) in &both {
        assert_eq!(
            status(&bot, method.clone(), path, None).await,
            403,
            "{path}"
        );
        assert_eq!(
            status(&bot, method.clone(), path, Some("shared-secret")).await,
            403
        );
    }
    bot.stop().await;

    // An Auth Token and an admin token: only the admin token opens them.
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.auth_token = Some(Secret("auth-token".into()));
        c.admin_token = Some(Secret("admin-token".into()));
    })
    .await;
    for (method, path) in &both {
        assert_eq!(
            status(&bot, method.clone(), path, None).await,
            401,
            "{path}"
        );
        assert_eq!(
            status(&bot, method.clone(), path, Some("auth-token")).await,
            401,
            "{path}: the Auth Token is not an admin credential"
        );
        assert_eq!(
            status(&bot, method.clone(), path, Some("admin-token")).await,
            200,
            "{path}"
        );
    }
    bot.stop().await;

    // No authentication at all (local development): open, unless an
    // admin token is set.
    let bot = Bot::start(&[("cat.wasm", CAT)], |_| {}).await;
    assert_eq!(status(&bot, Method::GET, "/plugins", None).await, 200);
    bot.stop().await;
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.admin_token = Some(Secret("admin-token".into()));
    })
    .await;
    assert_eq!(status(&bot, Method::GET, "/plugins", None).await, 401);
    bot.stop().await;
}

/// Twenty reload requests at once share scans instead of queueing twenty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_requests_are_coalesced() {
    let bot =
        std::sync::Arc::new(Bot::start(&[("cat.wasm", CAT), ("quote.wasm", QUOTE)], |_| {}).await);
    let registry = bot.state.dispatcher.registry().clone();
    // A new file makes the first scan compile it (the test bot has no
    // compiled-code cache), so the other requests arrive while it runs.
    // With nothing to compile a scan takes about a millisecond, less than
    // the time between two requests on a busy machine, and there would be
    // nothing to share.
    std::fs::copy(QUOTE, bot.plugin_path("another.wasm")).unwrap();
    let before = registry.scans();
    let mut requests = Vec::new();
    for _ in 0..20 {
        let bot = bot.clone();
        requests.push(tokio::spawn(async move { bot.reload().await.0 }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let scans = registry.scans() - before;
    assert!((1..=3).contains(&scans), "{scans} scans for 20 requests");
}

/// FIFOs, devices and huge files named `*.wasm` are error entries; they
/// never wedge the loader or fill memory, and plugins keep loading.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_folder_holds_only_what_can_be_loaded() {
    let bot = Bot::start(&[], |c| c.max_plugin_size = 8 << 20).await;
    let path = |n: &str| bot.plugin_path(n);
    assert!(
        std::process::Command::new("mkfifo")
            .arg(path("fifo.wasm"))
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink("/dev/zero", path("zero.wasm")).unwrap();
    let huge = std::fs::File::create(path("huge.wasm")).unwrap();
    huge.set_len(2 << 30).unwrap(); // sparse: 2 GiB that take no disk
    drop(huge);
    std::os::unix::fs::symlink(CAT, path("linked.wasm")).unwrap();

    // A symlink to a plugin loads, on change as at start.
    let cat = twiml(&[(None, Some(CAT_URL))]);
    bot.wait_for("cat", Duration::from_secs(3), |xml| xml == cat)
        .await;
    let errors = bot
        .plugins_when(Duration::from_secs(10), |l| {
            l["errors"].as_array().unwrap().len() == 3
        })
        .await["errors"]
        .clone();
    let kinds: Vec<(&str, &str)> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap(),
                e["error"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("fifo.wasm", "not_regular"),
            ("huge.wasm", "too_large"),
            ("zero.wasm", "not_regular")
        ]
    );
    // The same at start, and the loader is not stuck: a rescan finishes.
    let started = Instant::now();
    let (status, listing) = bot.reload().await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(listing["errors"].as_array().unwrap().len(), 3);
    assert_eq!(listing["plugins"][0]["file"], "linked.wasm");
    bot.stop().await;
}

/// A failure that may pass (here `describe` finds no room in the memory
/// budget) is retried with backoff, not remembered until the bytes change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_load_failures_are_retried() {
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| c.memory_budget = 64 << 10).await;
    let error = bot.plugins().await["errors"][0].clone();
    assert_eq!(error["error"]["kind"], "describe", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at capacity"),
        "{error}"
    );
    assert_eq!(error["retry_in"], 1, "{error}");
    second_attempt(&bot).await;
    bot.stop().await;
}

/// Text a plugin logs or fails with cannot forge a line of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_cannot_forge_log_lines() {
    let bot = Bot::start(&[("hostile.wasm", HOSTILE)], |_| {}).await;
    let answer = bot.dispatch("forgelog").await;
    assert_eq!(answer.failed[0].0, "hostile");
    let log = captured_log();
    assert!(
        log.contains("innocent\\n2026-11-25T00:00:00.000000Z  INFO wasmbot: FORGED-BY-PLUGIN"),
        "the log call is not in the log escaped"
    );
    assert!(log.contains("failed\\n2026-11-25T00:00:00.000000Z"));
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-11-25T00:00:00.000000Z"),
            "a forged line: {line}"
        );
    }
    bot.stop().await;
}

/// Reads until the server closes the connection; what it sent.
async fn read_to_close(conn: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&all).into_owned()),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Clients that send half a request line and stop, and idle keep-alive
/// connections, are closed by the server; past the connection cap a
/// request gets 503; a real webhook gets through once the header timeout
/// has cleared the sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_bounded() {
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.header_timeout = Duration::from_secs(1);
        c.max_connections = Some(8);
    })
    .await;
    let started = Instant::now();
    let mut half_open = Vec::new();
    for i in 0..8 {
        let mut conn = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
        // Half a request line, or nothing at all.
        if i % 2 == 0 {
            conn.write_all(b"POST /b").await.unwrap();
        }
        half_open.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Over the cap: a complete request is refused at once, gracefully.
    let mut over = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let refused = read_to_close(&mut over, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );

    // The half-open ones are closed by the server after the header timeout.
    for conn in &mut half_open {
        assert!(
            read_to_close(conn, Duration::from_secs(3)).await.is_some(),
            "a half-open connection was never closed"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // And a real webhook is answered.
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );

    // An idle keep-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    assert!(
        read_to_close(&mut idle, Duration::from_secs(3))
            .await
            .is_some(),
        "an idle keep-alive connection was kept"
    );
    assert!(idle_since.elapsed() >= Duration::from_millis(900));
    bot.stop().await;
}

/// Slow bodies are read under a budget of their own and within a short
/// time, so clients trickling bodies in cannot hold the permits real
/// (signed) webhooks need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_do_not_hold_the_message_budget() {
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| c.max_in_flight = 8).await;
    let mut trickling = Vec::new();
    for _ in 0..16 {
        let mut conn = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
        conn.write_all(
            b"POST /bot HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nB",
        )
        .await
        .unwrap();
        trickling.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Twice max_in_flight bodies trickle in: a real message still gets in.
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    // A body announced too large is refused before it is read.
    let mut big = tokio::net::TcpStream::connect(bot.addr).await.unwrap();
    big.write_all(
        b"POST /bot HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 999999999\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut big, Duration::from_secs(2)).await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 413")),
        "{answer:?}"
    );
    bot.stop().await;
}

/// A transient failure found by `POST /plugins/reload` is retried too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_found_by_a_reload_request_are_retried() {
    let bot = Bot::start(&[], |c| {
        c.memory_budget = 64 << 10;
        c.watch = false;
    })
    .await;
    std::fs::copy(CAT, bot.plugin_path("cat.wasm")).unwrap();
    let (status, listing) = bot.reload().await;
    assert_eq!(status, 200);
    assert_eq!(listing["errors"][0]["retry_in"], 1, "{listing}");
    second_attempt(&bot).await;
    bot.stop().await;
}

/// Without any authentication the admin endpoints serve local development
/// only: a request for another name (a tunnel, a page that rebinds its
/// name to this machine) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_admin_endpoints_answer_only_local_names() {
    let bot = Bot::start(&[("cat.wasm", CAT)], |_| {}).await;
    let status = |host: &'static str| {
        let req = bot.client.get(bot.url("/plugins")).header("host", host);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("localhost:5000").await, 200);
    assert_eq!(status("attacker.example").await, 403);
    assert_eq!(status("bot.ngrok.app").await, 403);
    // A page of another site posting a form to localhost (CSRF).
    let csrf = bot
        .client
        .post(bot.url("/plugins/reload"))
        .header("origin", "https://attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(csrf.status(), 403);
    let fetch = bot
        .client
        .post(bot.url("/plugins/reload"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(fetch.status(), 403);
    bot.stop().await;
}

/// A plugin's credentials follow a redirect only within the same origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_do_not_follow_a_redirect_elsewhere() {
    let stub = Stub::start().await;
    let slow = stub.url("/slow");
    let bot = Bot::start(&[("hostile.wasm", HOSTILE)], |c| {
        c.env.insert("WASMBOT_HOSTILE__SLOW_URL".into(), slow);
        c.env.insert(
            "WASMBOT_HOSTILE__ALLOWED_PRIVATE_HOSTS".into(),
            "localhost".into(),
        );
    })
    .await;
    let xml = bot.message("authredirect").await.twiml().to_owned();
    assert_eq!(
        only_body(&xml),
        "same: authorization: Bearer plugin-secret; other: authorization: (none)"
    );
    bot.stop().await;
}

/// Waits until the first file in error has been tried a second time (its
/// next retry is then 2 s away).
async fn second_attempt(bot: &Bot) {
    bot.plugins_when(Duration::from_secs(3), |l| l["errors"][0]["retry_in"] == 2)
        .await;
}
