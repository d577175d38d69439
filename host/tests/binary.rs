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
    stub_saying("From the binary's stub.").0
}

/// A stub whose `GET /random` answers `quote` (by Stub), counting calls.
/// It also serves as an HTTP proxy: a proxied `GET http://any/random`
/// reaches the same route.
fn stub_saying(
    quote: &'static str,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
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
                axum::routing::get(move || async move {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (
                        [("content-type", "application/json")],
                        format!(r#"{{"content":"{quote}","author":"Stub"}}"#),
                    )
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    (addr, calls)
}

struct Running {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

/// Starts the binary in `cwd` and waits for its "listening on" line.
fn start(cwd: &std::path::Path, args: &[&str]) -> Running {
    start_with(cwd, args, &[], None)
}

/// [`start`] with extra environment variables, and optionally with the
/// process's open-files limit (soft and hard) set to `fd_limit`.
fn start_with(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, String)],
    fd_limit: Option<u32>,
) -> Running {
    let bin = env!("CARGO_BIN_EXE_wasmbot");
    let mut command = match fd_limit {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = command
        .args(args)
        .current_dir(cwd)
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("TWILIO_SHARED_KEYS")
        .env_remove("WASMBOT_ADMIN_TOKEN")
        // Compiled plugins are cached under the test's own folder.
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .env("WASMBOT_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
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
    let (status, text) = try_post(addr, body).unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// POSTs a WhatsApp-shaped message saying `body`: the status and text, or
/// why there was no answer.
fn try_post(addr: SocketAddr, body: &str) -> Result<(u16, String), String> {
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
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.map_err(|e| e.to_string())?))
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
        "implements wasmbot:plugin@0.2.x",
        "id:          cat",
        "triggers:    contains \"cat\"",
        "name:        cat",
        "url = \"https://cataas.com/cat\"",
        "WASMBOT_CAT__URL",
        // cat imports no HTTP interface: its URL (the picture Twilio
        // fetches) asks for nothing, and nobody is told to grant it.
        "asks for:    no host",
        "may reach:   no host",
        "message \"a cat\"",
        "media: https://cataas.com/cat",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    assert!(!out.contains("not granted"), "{out}");
    // quote sends requests: a declared URL is a request; only the
    // operator grants.
    let quote = plugins_dir().join("quote.wasm");
    let (ok, out, err) = run(&["check", quote.to_str().unwrap(), "-m", "hello"], &[], "");
    assert!(ok, "{err}");
    for expected in [
        "asks for:    api.quotable.io (its url setting)",
        "may reach:   no host",
        "not granted: api.quotable.io; to grant, put in wasmbot.toml:\n\
         \x20                [plugins.quote]\n\
         \x20                allowed_hosts = \"api.quotable.io\"\n\
         \x20              or set WASMBOT_QUOTE__ALLOWED_HOSTS=api.quotable.io",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    let (ok, out, _) = run(&["check", cat.to_str().unwrap()], &[], "");
    assert!(
        ok && out.contains("not called (it matches none of its triggers)"),
        "{out}"
    );

    let (ok, _, err) = run(&["check", "/etc/hostname"], &[], "");
    assert!(!ok);
    assert!(
        err.contains("/etc/hostname: not a WebAssembly component"),
        "{err}"
    );
    let (ok, _, err) = run(&["check", "missing.wasm"], &[], "");
    assert!(!ok);
    assert!(err.contains("cannot read missing.wasm"), "{err}");
    // The report is the whole message: no second "error:" line after it.
    assert_eq!(err.matches("error:").count(), 1, "{err}");
}

/// Runs `wasmbot ARGS` in `cwd` and returns (success, stdout, stderr).
fn run_in(cwd: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> (bool, String, String) {
    // Never a cache inside `cwd`: that may be the repo.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("TWILIO_SHARED_KEYS")
        .env("XDG_CACHE_HOME", cache.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cargo run --release` serves quote from quotable out of the box: the
/// repo's `wasmbot.toml` grants it, and is read from the working folder
/// without `--config`.
#[test]
fn the_repos_wasmbot_toml_grants_the_bundled_plugins() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (ok, out, err) = run_in(&repo, &["check", "plugins/quote.wasm", "-m", "hello"], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "may reach:   api.quotable.io (by wasmbot.toml [plugins.quote] allowed_hosts)"
        ),
        "{out}"
    );
    assert!(!out.contains("not granted"), "{out}");

    // Any folder: its own wasmbot.toml is read (no --config).
    let stub = stub();
    let cwd = tempfile::tempdir().unwrap();
    let plugins = bundled_plugins(cwd.path());
    std::fs::write(
        cwd.path().join("wasmbot.toml"),
        format!("[plugins.quote]\nurl = \"http://{stub}/random\"\n"),
    )
    .unwrap();
    let bot = start(
        cwd.path(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--plugins",
            plugins.to_str().unwrap(),
        ],
    );
    assert!(post(bot.addr, "quote").contains("From the binary&apos;s stub. - Stub"));
}

/// `HTTP_PROXY` and friends would send plugins' requests to a proxy that
/// resolves names itself, around the SSRF guard: they are ignored. An
/// egress proxy is the operator's explicit `WASMBOT_OUTBOUND_PROXY`.
#[test]
fn the_environments_proxy_is_ignored_and_an_explicit_one_used() {
    let (proxy, proxied) = stub_saying("From the proxy.");
    let cwd = tempfile::tempdir().unwrap();
    let plugins = bundled_plugins(cwd.path());
    let plugins = plugins.to_str().unwrap();
    let proxy_url = format!("http://{proxy}");
    let mut env = vec![("WASMBOT_QUOTE__URL", "http://quotes.test/random".to_owned())];
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((var, proxy_url.clone()));
    }
    let (ok, out, err) = run_in(
        cwd.path(),
        &["chat", "--plugins", plugins, "-m", "quote"],
        &env,
    );
    assert!(ok, "{err}");
    assert!(!out.contains("From the proxy"), "{out}");
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 0);

    env.push(("WASMBOT_OUTBOUND_PROXY", proxy_url));
    let (ok, out, err) = run_in(
        cwd.path(),
        &["chat", "--plugins", plugins, "-m", "quote"],
        &env,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "bot> From the proxy. - Stub\n");
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// `.env` is read from the working folder only: one in a parent folder
/// (a home directory, a checkout above) configures nothing.
#[test]
fn dotenv_is_read_from_the_working_folder_only() {
    let stub = stub();
    let parent = tempfile::tempdir().unwrap();
    std::fs::write(
        parent.path().join(".env"),
        format!("WASMBOT_QUOTE__URL=http://{stub}/random\n"),
    )
    .unwrap();
    let cwd = parent.path().join("child");
    std::fs::create_dir(&cwd).unwrap();
    let plugins = bundled_plugins(&cwd);
    let plugins = plugins.to_str().unwrap();
    let (ok, out, err) = run_in(&cwd, &["chat", "--plugins", plugins, "-m", "quote"], &[]);
    assert!(ok, "{err}");
    assert!(
        !out.contains("From the binary's stub"),
        "read the parent's .env: {out}"
    );
    std::fs::copy(parent.path().join(".env"), cwd.join(".env")).unwrap();
    let (ok, out, err) = run_in(&cwd, &["chat", "--plugins", plugins, "-m", "quote"], &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "bot> From the binary's stub. - Stub\n");
}

/// `TWILIO_SHARED_KEYS="KS1=$UNSET"` would make an empty HMAC key valid:
/// wasmbot refuses to start, and says why.
#[test]
fn an_empty_shared_key_stops_the_start() {
    let cwd = tempfile::tempdir().unwrap();
    for keys in ["KS1=", "=secret"] {
        let (ok, _, err) = run_in(
            cwd.path(),
            &["--addr", "127.0.0.1:0"],
            &[("TWILIO_SHARED_KEYS", keys.into())],
        );
        assert!(!ok);
        assert!(
            err.contains("error: SharedKey") && err.contains("empty"),
            "{err}"
        );
    }
}

/// The issue's reproduction at full scale: at 1,024 descriptors, 1,100
/// clients that send half a request line and stop. The server closes them
/// (header timeout, 10 s by default), answers a real webhook within 20 s,
/// and still stops promptly on SIGTERM.
#[test]
fn a_slowloris_flood_does_not_starve_webhooks() {
    use std::io::{Read as _, Write as _};
    // This test's own descriptors: 1,100 clients and more.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let plugins = bundled_plugins(cwd.path());
    let mut bot = start_with(
        cwd.path(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--plugins",
            plugins.to_str().unwrap(),
        ],
        &[],
        Some(1024),
    );
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..1100 {
        match std::net::TcpStream::connect(bot.addr) {
            Ok(mut conn) => {
                let _ = conn.write_all(b"POST /bo");
                slow.push(conn);
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    // A real webhook, tried every 250 ms as a client with retries would.
    let mut refused = 0;
    let answered = loop {
        match try_post(bot.addr, "cat") {
            Ok((200, xml)) => {
                assert!(xml.contains("https://cataas.com/cat"), "{xml}");
                break started.elapsed();
            }
            Ok((503, _)) => refused += 1,
            Ok((status, text)) => panic!("{status}: {text}"),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no webhook answered within 20 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "a webhook was answered {answered:?} after the flood began ({refused} tries got 503 before)"
    );
    // Every slow client was closed by the server.
    for conn in &mut slow {
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 256];
        match conn.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a slow client was never closed: {e}"),
        }
    }
    let closed = started.elapsed();
    eprintln!("all 1,100 slow clients were closed {closed:?} after the flood began");
    assert!(closed < Duration::from_secs(25), "{closed:?}");
    drop(slow);

    // New slow clients, then SIGTERM: the server stops in bounded time.
    let mut again = Vec::new();
    for _ in 0..200 {
        let mut conn = std::net::TcpStream::connect(bot.addr).unwrap();
        let _ = conn.write_all(b"POST /bo");
        again.push(conn);
    }
    let term = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &bot.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let exit = bot.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let took = term.elapsed();
    eprintln!("SIGTERM with 200 slow clients open: stopped in {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A plugin author with only the binary, in an empty folder (no repo, no
/// `wit/` anywhere above): `wasmbot new`, `wasmbot build` and
/// `wasmbot chat -m ping` answer pong for Rust, Python and JavaScript, and
/// the Rust plugin's native tests pass (the SDK comes with it).
/// Each new plugin carries the contract in its own `wit/`; one without it
/// is built against the contract built into the binary, which
/// `wasmbot wit` writes out.
#[test]
fn a_plugin_is_written_outside_the_repo_with_only_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // The user's own cache (the Python, JavaScript, C and Go toolchains are
    // installed there once, as for any build) and the repo's target
    // folder (the Rust dependencies are compiled there already).
    let cache = std::env::var("XDG_CACHE_HOME")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("{}/.cache", std::env::var("HOME").unwrap()));
    let env = [
        ("XDG_CACHE_HOME", cache),
        (
            "CARGO_TARGET_DIR",
            repo.join("target").to_string_lossy().into_owned(),
        ),
    ];
    let wasmbot = |args: &[&str]| {
        let (ok, out, err) = run_in(dir.path(), args, &env);
        assert!(ok, "wasmbot {args:?}\n{out}{err}");
        out
    };
    for (lang, name) in [
        ("rust", "hi-rust"),
        ("python", "hi-py"),
        ("js", "hi-js"),
        ("c", "hi-c"),
        ("go", "hi-go"),
    ] {
        wasmbot(&["new", "--lang", lang, name]);
        let own = dir
            .path()
            .join("plugins")
            .join(name)
            .join("wit/wasmbot.wit");
        assert!(own.is_file(), "{lang}: no wit/ in the new plugin");
    }
    // One plugin without a contract of its own: the built-in one is used.
    std::fs::remove_dir_all(dir.path().join("plugins/hi-py/wit")).unwrap();
    let built = wasmbot(&["build"]);
    let installed = built.lines().filter(|l| l.starts_with("built plugins/"));
    assert_eq!(installed.count(), 5, "{built}");
    // What chat logged says why a plugin did not answer.
    let (ok, chat, logged) = run_in(dir.path(), &["chat", "-m", "ping"], &env);
    assert!(ok, "wasmbot chat\n{chat}{logged}");
    assert_eq!(chat.matches("pong").count(), 5, "{chat}{logged}");
    // The Rust plugin's own tests run natively, on the SDK's test helpers.
    let native = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "test",
            "--quiet",
            "--manifest-path",
            "plugins/hi-rust/Cargo.toml",
        ])
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        native.status.success(),
        "{}{}",
        String::from_utf8_lossy(&native.stdout),
        String::from_utf8_lossy(&native.stderr)
    );

    let wrote = wasmbot(&["wit"]);
    assert!(wrote.contains("wasmbot:plugin@0.2.0"), "{wrote}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("wit/wasmbot.wit")).unwrap(),
        std::fs::read_to_string(repo.join("wit/wasmbot.wit")).unwrap()
    );
}

/// On a machine without python3 or node, `wasmbot build` says which
/// package provides them and builds nothing; the other plugins still build.
#[test]
fn a_missing_python_or_node_is_named_with_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env = [(
        "XDG_CACHE_HOME",
        cache.path().to_string_lossy().into_owned(),
    )];
    for (lang, name) in [("python", "py"), ("js", "js")] {
        let (ok, out, err) = run_in(dir.path(), &["new", "--lang", lang, name], &env);
        assert!(ok, "{out}{err}");
    }
    // No PATH: neither python3 nor node (nor npm) can be found.
    let out = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .arg("build")
        .current_dir(dir.path())
        .env("PATH", "")
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("python3 is not installed; install Python 3 (Debian/Ubuntu: apt-get install python3 python3-venv)"),
        "{err}"
    );
    assert!(
        err.contains("node is not installed; install Node.js 18 or later with npm (Debian/Ubuntu: apt-get install nodejs npm)"),
        "{err}"
    );
    assert!(err.contains("2 plugin(s) failed to build"), "{err}");
    assert!(!dir.path().join("plugins/py.wasm").exists());
    // Nothing was installed.
    assert!(!cache.path().join("wasmbot/tools").exists());
}
