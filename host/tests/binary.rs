//! The real `wasmbot` binary, as a user runs it: configured by flags and a
//! `.env` file, serving the bundled plugins that `cargo build` installed in
//! `plugins/`, stopped by SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where `cargo build` installed the bundled plugins.
fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

/// A plugins folder in `dir` with only the bundled quote and cat (the
/// repo's folder may hold whatever else a developer built).
fn bundled_plugins(dir: &std::path::Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for name in ["quote.wasm", "cat.wasm"] {
        std::fs::copy(plugins_dir().join(name), plugins.join(name)).unwrap();
    }
    plugins
}

/// A quote API stub on a thread of its own: `GET /random`.
fn stub() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route(
                "/random",
                axum::routing::get(|| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"content":"From the binary's stub.","author":"Stub"}"#,
                    )
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

struct Running {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

/// Starts the binary in `cwd` and waits for its "listening on" line.
fn start(cwd: &std::path::Path, args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TWILIO_AUTH_TOKEN")
        // Compiled plugins are cached under the test's own folder.
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .env("WASMBOT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, log) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Ok(line) = log.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split('/').next().unwrap().parse().unwrap();
            return Running { child, addr, log };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server never said where it listens");
}

impl Drop for Running {
    /// A failed test never leaves a server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn post(addr: SocketAddr, body: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/bot"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "Body={body}&MessageSid=SM1&From=whatsapp%3A%2B14155550100"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    })
}

#[test]
fn serves_quote_and_cat_configured_by_dotenv_and_stops_on_sigterm() {
    let stub = stub();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join(".env"),
        format!("WASMBOT_QUOTE__URL=http://{stub}/random\n"),
    )
    .unwrap();
    let plugins = bundled_plugins(cwd.path());
    let mut bot = start(
        cwd.path(),
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--plugins",
            plugins.to_str().unwrap(),
        ],
    );

    let xml = post(bot.addr, "quote+and+a+cat");
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>\
         <Body>From the binary&apos;s stub. - Stub</Body>\
         <Media>https://cataas.com/cat</Media></Message></Response>"
    );

    let status = Command::new("kill")
        .args(["-TERM", &bot.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = bot.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log: Vec<String> = bot.log.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:#?}");
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("bot.toml"), "adress = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .args(["--config", "bot.toml"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bot.toml") && stderr.contains("adress"),
        "{stderr}"
    );
}

#[test]
fn sighup_rescans_the_plugins_folder_without_the_watcher() {
    let cwd = tempfile::tempdir().unwrap();
    let plugins = cwd.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let bot = start(
        cwd.path(),
        &["--addr", "127.0.0.1:0", "--no-watch", "--no-cache"],
    );
    let apology = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>\
                   <Body>Apologies, I do not understand what you really asked.</Body>\
                   </Message></Response>";
    assert_eq!(post(bot.addr, "cat"), apology);

    std::fs::copy(plugins_dir().join("cat.wasm"), plugins.join("cat.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post(bot.addr, "cat"), apology, "--no-watch still watched");

    let hup = Command::new("kill")
        .args(["-HUP", &bot.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let cat = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>\
               <Media>https://cataas.com/cat</Media></Message></Response>";
    for _ in 0..100 {
        if post(bot.addr, "cat") == cat {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("SIGHUP did not load the new plugin");
}

/// Runs `wasmbot ARGS` in a temp folder with `stdin`, returning (success,
/// stdout, stderr).
fn run(args: &[&str], env: &[(&str, String)], stdin: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .args(args)
        .current_dir(cwd.path())
        .env("XDG_CACHE_HOME", cwd.path().join("cache"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn chat_answers_like_the_bot_without_a_phone() {
    let stub = stub();
    let dir = tempfile::tempdir().unwrap();
    let plugins = bundled_plugins(dir.path());
    let plugins = plugins.to_str().unwrap();
    let env = [("WASMBOT_QUOTE__URL", format!("http://{stub}/random"))];
    let (ok, out, err) = run(
        &["chat", "--plugins", plugins, "--message", "quote and a cat"],
        &env,
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "bot> From the binary's stub. - Stub\n     [media] https://cataas.com/cat\n"
    );

    let (ok, out, err) = run(
        &["chat", "--plugins", plugins, "--twiml", "-m", "cat"],
        &env,
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>\
         <Media>https://cataas.com/cat</Media></Message></Response>\n"
    );

    // The prompt, fed by a pipe: one reply per line, until end of input.
    let (ok, out, err) = run(&["chat", "--plugins", plugins], &env, "hello\nquote\n");
    assert!(ok, "{err}");
    assert!(out.starts_with("wasmbot chat: 2 plugin(s)"), "{out}");
    assert!(out.contains("(quote, cat)"), "{out}");
    assert!(
        out.contains(
            "you> bot> Apologies, I do not understand what you really asked.\n\
             you> bot> From the binary's stub. - Stub\nyou> \n"
        ),
        "{out}"
    );
}

#[test]
fn check_validates_describes_and_tries_a_component() {
    let cat = plugins_dir().join("cat.wasm");
    let (ok, out, err) = run(&["check", cat.to_str().unwrap(), "-m", "a cat"], &[], "");
    assert!(ok, "{err}");
    for expected in [
        "implements wasmbot:plugin@0.1.0",
        "id:          cat",
        "name:        cat",
        "url = \"https://cataas.com/cat\"",
        "WASMBOT_CAT__URL",
        // A declared URL is a request; only the operator grants.
        "asks for:    cataas.com (its url setting)",
        "may reach:   no host",
        "not granted: cataas.com; to grant, put in wasmbot.toml:\n\
         \x20                [plugins.cat]\n\
         \x20                allowed_hosts = \"cataas.com\"\n\
         \x20              or set WASMBOT_CAT__ALLOWED_HOSTS=cataas.com",
        "message \"a cat\"",
        "media: https://cataas.com/cat",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    let (ok, out, _) = run(&["check", cat.to_str().unwrap()], &[], "");
    assert!(ok && out.contains("(stays silent)"), "{out}");

    let (ok, _, err) = run(&["check", "/etc/hostname"], &[], "");
    assert!(!ok);
    assert!(
        err.contains("/etc/hostname: not a WebAssembly component"),
        "{err}"
    );
    let (ok, _, err) = run(&["check", "missing.wasm"], &[], "");
    assert!(!ok);
    assert!(err.contains("cannot read missing.wasm"), "{err}");
}
