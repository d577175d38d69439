//! Plugins in other languages, from `wasmbot new` to an answer: the real
//! templates, the real toolchains (cargo for wasm32-wasip2,
//! componentize-py, componentize-js, zig cc, go), loaded by the real
//! server. The first Python, JavaScript, C and Go builds install
//! componentize-py, componentize-js, Zig and Go into wasmbot's cache folder
//! (`toolchain::installed`), as they would on a newcomer's machine.

use std::path::{Path, PathBuf};
use wasmbot::scaffold::{self, Lang};
use wasmbot::toolchain;
use wasmbot_tests::fixture::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build(source: &Path, wit: &Path) -> String {
    let target = repo().join("target/wasm-guests");
    match toolchain::build(source, wit, &target) {
        Ok(out) => out.to_str().unwrap().to_owned(),
        Err(e) => panic!("building {}: {e}", source.display()),
    }
}

/// Runs an example's own native tests (`program args…` in its folder).
pub(crate) fn native_tests(example: &str, program: &str, args: &[&str]) {
    native_tests_in(&repo().join("plugins").join(example), program, args);
}

/// Runs the native tests of the plugin in `folder`; what they printed.
fn native_tests_in(folder: &Path, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(folder)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    printed
}

/// Builds the example `plugins/<example>` from a copy of `files` in `ws`.
pub(crate) fn build_example(ws: &tempfile::TempDir, example: &str, files: &[&str]) -> String {
    match wasmbot_tests::fixture::build_example(ws.path(), example, files) {
        Ok(out) => out.to_str().unwrap().to_owned(),
        Err(e) => panic!("{e}"),
    }
}

/// `wasmbot new` + `wasmbot build` in a fresh workspace (kept alive by the
/// returned guard); the path of the component.
fn new_plugin(name: &str, lang: Lang) -> (tempfile::TempDir, String) {
    let ws = workspace();
    let source = scaffold::new(&ws.path().join("plugins"), lang, name).unwrap();
    let component = build(&source, &ws.path().join("wit"));
    (ws, component)
}

async fn answers(component: &str, body: &str, expected: &str) {
    let bot = Bot::start(&[("plugin.wasm", component)], |c| {
        c.plugin_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let xml = bot.message(body).await.twiml().to_owned();
    assert_eq!(only_body(&xml), expected, "{xml}");
    bot.stop().await;
}

/// A scaffolded plugin's "status": fetched with the language's own client
/// (over wasi:http) from the stub the operator named, and refused for its
/// default host, which nobody granted: `denied` is what it says then.
async fn status_over_wasi_http(component: &str, denied: &str) {
    let stub = Stub::start().await;
    let bot = Bot::start(&[("plugin.wasm", component)], |c| {
        c.env
            .insert("WASMBOT_PLUGIN__STATUS_URL".into(), stub.url("/random"));
        c.plugin_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let xml = bot.message("status").await.twiml().to_owned();
    assert_eq!(only_body(&xml), "status: HTTP 200", "{xml}");
    bot.stop().await;
    let bot = Bot::start(&[("plugin.wasm", component)], |c| {
        c.plugin_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let xml = bot.message("status").await.twiml().to_owned();
    assert_eq!(only_body(&xml), denied, "{xml}");
    // Refused by the policy, not failed on the way.
    let log = captured_log();
    assert!(
        log.contains("http failed: refused: status.example.com is not an allowed host"),
        "{log:.3000}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_plugin_builds_and_answers_ping() {
    let (_ws, component) = new_plugin("rusty-ping", Lang::Rust);
    assert!(component.ends_with("plugins/rusty-ping.wasm"));
    answers(&component, "ping", "pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_python_plugin_builds_and_answers_ping() {
    let (ws, component) = new_plugin("py-ping", Lang::Python);
    let folder = ws.path().join("plugins/py-ping");
    let ran = native_tests_in(&folder, "python3", &["-m", "unittest", "-v"]);
    assert!(ran.contains("Ran 1 test"), "{ran}");
    answers(&component, "PING", "pong").await;
    status_over_wasi_http(&component, "status unknown: http-request-denied").await;
}

/// The scaffold's `wasmbot_http.py` beyond GET: a POST with a body, a body
/// over the cap, a header the host keeps for itself, a refused host: each
/// an answer or an `HttpError` code, never an unhandled error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_http_helper_posts_and_names_each_failure() {
    let ws = workspace();
    let source = scaffold::new(&ws.path().join("plugins"), Lang::Python, "poster").unwrap();
    let app = r#"
import wasmbot_http
from wit_world import exports
from wit_world.imports import config, types


class Handler(exports.Handler):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="poster", version="0.1.0", description="posts", priority=100,
            settings=[types.Setting(key="base", default=None, description="stub")],
            triggers=[types.Trigger_Everything()],
        )

    def handle(self, msg: types.Message):
        base = config.get("base") or ""
        try:
            if msg.body == "post":
                r = wasmbot_http.post(base + "/echo", "héllo", {"content-type": "text/plain"})
                said = f"{r.status} {r.text()}"
            elif msg.body == "big":
                said = str(wasmbot_http.post(base + "/echo", b"x" * (2 << 20)).status)
            elif msg.body == "host":
                said = str(wasmbot_http.get(base + "/host", {"host": "evil.example"}).status)
            else:
                said = str(wasmbot_http.get("https://not-granted.example/").status)
        except wasmbot_http.HttpError as e:
            said = "error " + e.code
        return types.Reply(text=said, media=[])
"#;
    std::fs::write(source.join("app.py"), app).unwrap();
    let component = build(&source, &ws.path().join("wit"));
    let stub = Stub::start().await;
    let bot = Bot::start(&[("poster.wasm", &component)], |c| {
        c.env.insert("WASMBOT_POSTER__BASE".into(), stub.url(""));
        c.plugin_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    for (body, expected) in [
        ("post", "200 got 6 bytes of text/plain"),
        ("big", "error http-request-body-size"),
        ("host", "error header-forbidden"),
        ("other", "error http-request-denied"),
    ] {
        let xml = bot.message(body).await.twiml().to_owned();
        assert_eq!(only_body(&xml), expected, "{body}: {xml}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_dice_example_answers_next_to_quote_and_cat() {
    native_tests("dice", "python3", &["-m", "unittest", "-q"]);
    let ws = workspace();
    let dice = build_example(&ws, "dice", &["app.py", "dice.py"]);
    let stub = Stub::start().await;
    let url = stub.url("/random");
    let bot = Bot::start(
        &[
            ("quote.wasm", QUOTE),
            ("cat.wasm", CAT),
            ("dice.wasm", &dice),
        ],
        |c| {
            c.env.insert("WASMBOT_QUOTE__URL".into(), url);
            c.env.insert("WASMBOT_DICE__MAX_DICE".into(), "3".into());
            c.plugin_timeout = std::time::Duration::from_secs(5);
        },
    )
    .await;
    let xml = bot
        .message("quote, a cat and roll 2d6+1")
        .await
        .twiml()
        .to_owned();
    let body = only_body(&xml);
    let (quote, roll) = body.split_once("\n\n").unwrap();
    assert_eq!(quote, STUB_QUOTE);
    let (dice_part, total) = roll.rsplit_once(" = ").unwrap();
    let rolls: Vec<u32> = dice_part
        .trim_start_matches("\u{1f3b2} 2d6+1: ")
        .split(" + ")
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(rolls.len(), 3, "two dice and the modifier: {roll}");
    assert!(rolls[..2].iter().all(|r| (1..=6).contains(r)), "{roll}");
    assert_eq!(total.parse::<u32>().unwrap(), rolls.iter().sum::<u32>());
    assert!(xml.contains(&format!("<Media>{CAT_URL}</Media>")));
    // The operator's max_dice applies.
    let xml = bot.message("roll 4d6").await.twiml().to_owned();
    assert_eq!(only_body(&xml), APOLOGY);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_c_plugin_builds_and_answers_ping() {
    let (ws, component) = new_plugin("c-ping", Lang::C);
    let folder = ws.path().join("plugins/c-ping");
    // The bindings are generated into the plugin folder, for its author.
    assert!(folder.join("gen/behaviour.h").is_file());
    answers(&component, " Ping ", "pong").await;
    // The logic's native tests need make and a C compiler, which wasmbot
    // does not install (the component needs neither).
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("make") && have("cc") {
        let ran = native_tests_in(&folder, "make", &["test"]);
        assert!(ran.contains("ok: logic"), "{ran}");
    } else {
        eprintln!("SKIPPED the C scaffold's native tests (`make test`): no make or cc here");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_go_plugin_builds_and_answers_ping() {
    let (ws, component) = new_plugin("go-ping", Lang::Go);
    answers(&component, "PING", "pong").await;
    // The logic's own tests, natively, with the Go wasmbot installed.
    let tools = toolchain::tools_dir().unwrap();
    let go = tools
        .join(format!("{}-{}", toolchain::GO.name, toolchain::GO.version))
        .join(toolchain::GO.executable);
    // The caches `wasmbot build` uses, not the user's ~/go.
    let caches = tools.join(format!("go-{}-cache", toolchain::GO.version));
    let folder = ws.path().join("plugins/go-ping");
    let out = std::process::Command::new(go)
        .args(["test", "./logic"])
        .current_dir(&folder)
        .env("GOCACHE", caches.join("build"))
        .env("GOPATH", caches.join("path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && printed.contains("ok"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_js_plugin_builds_and_answers_ping() {
    let (ws, component) = new_plugin("js-ping", Lang::Js);
    let ran = native_tests_in(&ws.path().join("plugins/js-ping"), "node", &["--test"]);
    assert!(ran.contains("# pass 1"), "{ran}");
    answers(&component, "ping", "pong").await;
    status_over_wasi_http(
        &component,
        "status unknown: NetworkError when attempting to fetch resource",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_define_example_answers_from_its_upstream() {
    native_tests("define", "node", &["--test"]);
    let ws = workspace();
    let define = build_example(&ws, "define", &["plugin.js", "logic.js"]);
    let stub = Stub::start().await;
    let (quote_url, dictionary) = (stub.url("/random"), stub.url("/entries/en/"));
    let bot = Bot::start(
        &[
            ("quote.wasm", QUOTE),
            ("cat.wasm", CAT),
            ("define.wasm", &define),
        ],
        |c| {
            c.env.insert("WASMBOT_QUOTE__URL".into(), quote_url);
            c.env.insert("WASMBOT_DEFINE__URL".into(), dictionary);
            c.plugin_timeout = std::time::Duration::from_secs(5);
        },
    )
    .await;
    // "define cat" also says "cat": the cat plugin answers too.
    let xml = bot.message("define cat").await.twiml().to_owned();
    assert_eq!(
        xml,
        twiml(&[(
            Some("cat (noun): A small domesticated feline."),
            Some(CAT_URL)
        )])
    );
    let xml = bot.message("define zyzzyva").await.twiml().to_owned();
    assert_eq!(
        only_body(&xml),
        "I found no definition of &quot;zyzzyva&quot;."
    );
    bot.stop().await;
    // Its default dictionary is not granted: fetch() is refused, nothing
    // leaves the machine, and the plugin apologises.
    let bot = Bot::start(&[("define.wasm", &define)], |c| {
        c.plugin_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let xml = bot.message("define cat").await.twiml().to_owned();
    assert_eq!(
        only_body(&xml),
        "Sorry, I cannot look up &quot;cat&quot; right now."
    );
    let log = captured_log();
    assert!(
        log.contains("http failed: refused: api.dictionaryapi.dev is not an allowed host"),
        "{log:.3000}"
    );
    bot.stop().await;
}
