//! Hot reload on the real file watcher: plugins added, replaced, renamed,
//! removed and broken while the bot runs, and swapped under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use wasmbot_tests::fixture::*;

/// How long a change may take to show here. These tests prove what is
/// loaded, not how fast: they run next to fifty others, some compiling
/// 18 MB Python and 12 MB JavaScript components on the same two cores,
/// and a debug build's compile of the reloaded plugin waits for a core
/// (5 s was once not enough in CI). The reload latency itself (~80-150 ms)
/// is measured by `examples/reload_latency.rs`.
const SETTLE: Duration = Duration::from_secs(30);

fn files(listing: &serde_json::Value, key: &str) -> Vec<String> {
    listing[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_replace_break_and_remove_while_running() {
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Bot::start(&[("quote.wasm", QUOTE)], |c| {
        c.env.insert("WASMBOT_QUOTE__URL".into(), url);
    })
    .await;
    let cat_answer = twiml(&[(None, Some(CAT_URL))]);
    let apology = twiml(&[(Some(APOLOGY), None)]);
    assert_eq!(bot.message("cat").await.twiml(), apology);

    // Add: `cp` straight into the folder.
    std::fs::copy(CAT, bot.plugin_path("cat.wasm")).unwrap();
    bot.wait_for("cat", SETTLE, |xml| xml == cat_answer).await;

    // Replace in place with another component: the file is the plugin,
    // whatever it declares. cat.wasm now calls itself "quote", but it is
    // still the plugin `cat`: none of quote's settings (its stub URL), so
    // it answers from its bundled quotes. It comes first (priority, then
    // id).
    std::fs::write(bot.plugin_path("cat.wasm"), std::fs::read(QUOTE).unwrap()).unwrap();
    let two_quotes = |xml: &str| {
        let body = only_body(xml);
        match body.split_once("\n\n") {
            Some((first, second)) => {
                bundled_quotes().contains(&first.to_owned()) && second == STUB_QUOTE
            }
            None => false,
        }
    };
    bot.wait_for("quote", SETTLE, |xml| two_quotes(xml)).await;
    assert_eq!(bot.message("cat").await.twiml(), apology);
    let listing = bot.plugins().await;
    let cat = &listing["plugins"][0];
    assert_eq!((&cat["id"], &cat["name"]), (&"cat".into(), &"quote".into()));
    assert_eq!(cat["configured"], serde_json::json!({}));
    let warnings: Vec<&str> = listing["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["plugin"] == "cat")
        .map(|w| w["warning"].as_str().unwrap())
        .collect();
    assert!(
        warnings[0].starts_with("the plugin calls itself \"quote\", but its file makes it \"cat\""),
        "{warnings:?}"
    );

    // Garbage over a loaded plugin: the old version keeps serving, and
    // the failure is reported.
    std::fs::write(bot.plugin_path("quote.wasm"), b"garbage").unwrap();
    let listing = bot
        .plugins_when(SETTLE, |l| files(l, "errors") == ["quote.wasm"])
        .await;
    let error = &listing["errors"][0];
    assert_eq!(error["still_serving"], "quote 0.1.0");
    assert_eq!(error["id"], "quote");
    assert_eq!(error["error"]["kind"], "compile");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component")
    );
    assert!(two_quotes(bot.message("quote").await.twiml()));

    // Remove: gone (the broken file's error goes with it).
    std::fs::remove_file(bot.plugin_path("quote.wasm")).unwrap();
    bot.wait_for("quote", SETTLE, |xml| {
        bundled_quotes().contains(&only_body(xml))
    })
    .await;
    let listing = bot.plugins().await;
    assert_eq!(files(&listing, "plugins"), ["cat.wasm"]);
    assert_eq!(files(&listing, "errors"), Vec::<String>::new());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_moves_renames_and_ignored_files() {
    let bot = Bot::start(&[], |_| {}).await;
    let cat_answer = twiml(&[(None, Some(CAT_URL))]);

    // Temp files, editor swap files and hidden files are not plugins.
    for name in [".cat.wasm.tmp", "cat.wasm~", "cat.wasm.swp", ".cat.wasm"] {
        std::fs::copy(CAT, bot.plugin_path(name)).unwrap();
    }
    // `mv` into place.
    copy_atomically(CAT, &bot.plugin_path("kitty.wasm"));
    bot.wait_for("cat", SETTLE, |xml| xml == cat_answer).await;
    assert_eq!(files(&bot.plugins().await, "plugins"), ["kitty.wasm"]);

    // Rename: the old file's plugin goes, the new file's comes.
    std::fs::rename(bot.plugin_path("kitty.wasm"), bot.plugin_path("tom.wasm")).unwrap();
    let listing = bot
        .plugins_when(SETTLE, |l| files(l, "plugins") == ["tom.wasm"])
        .await;
    assert_eq!(listing["errors"], serde_json::json!([]));
    assert_eq!(bot.message("cat").await.twiml(), cat_answer);

    // Renamed out of the *.wasm namespace: gone.
    std::fs::rename(
        bot.plugin_path("tom.wasm"),
        bot.plugin_path("tom.wasm.disabled"),
    )
    .unwrap();
    let apology = twiml(&[(Some(APOLOGY), None)]);
    bot.wait_for("cat", SETTLE, |xml| xml == apology).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowly_written_file_is_never_loaded_half_written() {
    let bot = Bot::start(&[], |_| {}).await;
    let component = std::fs::read(CAT).unwrap();
    let full_sha = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&component)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let apology = twiml(&[(Some(APOLOGY), None)]);
    let cat_answer = twiml(&[(None, Some(CAT_URL))]);

    let path = bot.plugin_path("cat.wasm");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunks: Vec<&[u8]> = component.chunks(component.len() / 8 + 1).collect();
    let (last, partial) = chunks.split_last().unwrap();
    for chunk in partial {
        use std::io::Write as _;
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        // Pauses longer than the watcher's debounce: each chunk is seen.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let reply = bot.message("cat").await;
        assert_eq!(reply.twiml(), apology, "a half-written plugin answered");
        for loaded in bot.plugins().await["plugins"].as_array().unwrap() {
            assert_eq!(
                loaded["sha256"],
                full_sha.as_str(),
                "half-written file loaded"
            );
        }
    }
    {
        use std::io::Write as _;
        file.write_all(last).unwrap();
    }
    drop(file);
    bot.wait_for("cat", SETTLE, |xml| xml == cat_answer).await;
    let listing = bot.plugins().await;
    assert_eq!(listing["plugins"][0]["sha256"], full_sha.as_str());
    assert_eq!(listing["errors"], serde_json::json!([]), "stale error kept");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_fail_no_request() {
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Arc::new(
        // The file is bot.wasm, so the plugin is `bot`, whichever
        // component is in it.
        Bot::start(&[("bot.wasm", CAT)], |c| {
            c.env.insert("WASMBOT_BOT__URL".into(), url.clone());
        })
        .await,
    );
    // Both read `url`: cat sends it as its picture.
    let as_cat = twiml(&[(None, Some(&url))]);
    let as_quote = twiml(&[(Some(STUB_QUOTE), None)]);

    // Two clients send continuously; every answer must be a 200 from the
    // old or the new version.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (bot, stop, sent) = (bot.clone(), stop.clone(), sent.clone());
        let (as_cat, as_quote) = (as_cat.clone(), as_quote.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = bot.message("a quote about a cat").await;
                let xml = reply.twiml();
                assert!(xml == as_cat || xml == as_quote, "unexpected answer: {xml}");
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    for swap in 0..20 {
        let (next, expected) = if swap % 2 == 0 {
            (QUOTE, &as_quote)
        } else {
            (CAT, &as_cat)
        };
        if swap % 4 < 2 {
            copy_atomically(next, &bot.plugin_path("bot.wasm"));
        } else {
            std::fs::write(bot.plugin_path("bot.wasm"), std::fs::read(next).unwrap()).unwrap();
        }
        bot.wait_for("a quote about a cat", SETTLE, |xml| xml == expected)
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 100, "{sent:?}");
    let listing = bot.plugins().await;
    assert_eq!(files(&listing, "plugins"), ["bot.wasm"]);
    assert_eq!(listing["errors"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watcher_reload_is_explicit() {
    let bot = Bot::start(&[], |c| c.watch = false).await;
    let apology = twiml(&[(Some(APOLOGY), None)]);
    std::fs::copy(CAT, bot.plugin_path("cat.wasm")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bot.message("cat").await.twiml(),
        apology,
        "--no-watch still watched"
    );

    let (status, listing) = bot.reload().await;
    assert_eq!(status, 200);
    assert_eq!(files(&listing, "plugins"), ["cat.wasm"]);
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    bot.stop().await;
}

/// wasmtime's cache cleans its folder on a store, at most once an hour:
/// whatever it does not recognise there it deletes, two levels deep and
/// every folder below. It once had the whole cache folder, and deleted the
/// build tools installed beside it (CI's Go lost its `pyvenv.cfg`); an
/// operator's `--cache-dir` could have been a shared folder. Now it has a
/// subfolder of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_code_cache_deletes_nothing_beside_it() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_owned();
    let neighbours = [
        "tools/go-1.27.3/pyvenv.cfg",
        "tools/go-1.27.3/bin/go",
        "tools/go-1.27.3/.installed",
        "tools/go-1.27.3.lock",
        "notes.txt",
    ];
    // A stray file in the compiled-code folder is the clean-up's to
    // delete: its going shows that the clean-up has run.
    let stray = "compiled/stray";
    for file in neighbours.iter().chain([&stray]) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "mine").unwrap();
    }
    let bot = Bot::start(&[("quote.wasm", QUOTE), ("cat.wasm", CAT)], {
        let dir = dir.clone();
        move |c| c.cache_dir = Some(dir)
    })
    .await;
    let stats = bot.plugins().await["cache"].clone();
    assert_eq!(stats["misses"], 2, "{stats}");
    assert_eq!(
        stats["dir"].as_str(),
        dir.join("compiled").to_str(),
        "{stats}"
    );
    let deadline = tokio::time::Instant::now() + SETTLE;
    while dir.join(stray).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache's clean-up never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It deletes in one loop; give the rest of it time to happen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for file in neighbours {
        assert_eq!(
            std::fs::read_to_string(dir.join(file)).ok().as_deref(),
            Some("mine"),
            "{file} was deleted"
        );
    }
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_owned();
    let start = |dir: std::path::PathBuf| {
        Bot::start(&[("quote.wasm", QUOTE), ("cat.wasm", CAT)], move |c| {
            c.cache_dir = Some(dir);
        })
    };
    let bot = start(dir.clone()).await;
    let stats = bot.plugins().await["cache"].clone();
    assert_eq!(stats["misses"], 2, "{stats}");
    assert_eq!(stats["hits"], 0, "{stats}");
    bot.stop().await;

    let bot = start(dir).await;
    let stats = bot.plugins().await["cache"].clone();
    assert_eq!(stats["hits"], 2, "{stats}");
    assert_eq!(stats["misses"], 0, "{stats}");
    assert_eq!(
        bot.message("cat").await.twiml(),
        twiml(&[(None, Some(CAT_URL))])
    );
    bot.stop().await;
}
