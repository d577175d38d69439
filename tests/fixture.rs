//! What every end-to-end test and measurement shares: a running bot with a chosen set of
//! plugin files, a stub of the quote API, and a Twilio-shaped client.

use std::net::SocketAddr;
use std::time::Duration;
use wasmbot::config::Config;

pub use crate::{
    ASK, CAT, FETCHER, GREEDY, HOARDER, HOSTILE, IMPOSTOR, JOKE, QUOTE, SPIN, TRAP, V2,
};

/// A throwaway repo-like folder: the contract in `wit/` (the one built
/// into wasmbot, checked equal to the repo's by scaffold's tests) and an
/// empty `plugins/`.
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    wasmbot::scaffold::write_wit(&dir.path().join("wit")).unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    dir
}

/// Builds the example `plugins/<example>` of the repo as `wasmbot build`
/// does, from a copy of its `files` in the workspace `ws` (the build puts
/// `NAME.wasm` beside the source, never in the repo's plugins folder),
/// compiling Rust in the repo's `target/wasm-guests`; the component's
/// path, or why it could not be built (e.g. no python3).
pub fn build_example(
    ws: &std::path::Path,
    example: &str,
    files: &[&str],
) -> Result<std::path::PathBuf, String> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = ws.join("plugins").join(example);
    std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
    for file in files {
        std::fs::copy(
            repo.join("plugins").join(example).join(file),
            source.join(file),
        )
        .map_err(|e| format!("{file}: {e}"))?;
    }
    wasmbot::toolchain::build(&source, &ws.join("wit"), &repo.join("target/wasm-guests"))
        .map_err(|e| format!("building {}: {e}", source.display()))
}

/// What the stub's `/joke` answers (to `Accept: text/plain`).
pub const STUB_JOKE: &str = "I only know 25 letters of the alphabet. I don't know y.";

/// What the stub's `/random` answers, in quotable's shape.
pub const STUB_QUOTE: &str = "Stay hungry. - Stub Author";

/// A local stand-in for quotable: `/random` (object), `/quotes/random`
/// (array), `/fail` (500), `/garbage` (200, not JSON), `/slow` (answers
/// after 5 s), `/same-host` (redirects to `/random`), `/other-host`
/// (redirects to `/random` on `localhost`, another host name), `/counted`
/// (a quote that says how often it was fetched: "Call N. - Counter"),
/// `/entries/en/{word}` (a dictionaryapi.dev-shaped entry for "cat", 404
/// for other words), `/host` (says which `Host` header it received),
/// `/auth` (says which `Authorization` it received), `/redirect-auth-same`
/// and `/redirect-auth-other` (redirect to `/auth` on this host, or on
/// `localhost`), `/echo` (POST: says how many bytes of which content type
/// it got), `/big` (2 MiB of `x`), `/joke` (a plain-text joke, as
/// icanhazdadjoke.com answers `Accept: text/plain`), `/inflight` (answers
/// after 150 ms with the most requests it ever had at once).
pub struct Stub {
    pub addr: SocketAddr,
}

impl Stub {
    pub async fn start() -> Stub {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let port = addr.port();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most_in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let json = |body: &'static str| ([("content-type", "application/json")], body);
        let app = axum::Router::new()
            .route(
                "/random",
                get(move || async move {
                    json(r#"{"_id":"s1","content":"Stay hungry.","author":"Stub Author","tags":[],"length":12}"#)
                }),
            )
            .route(
                "/quotes/random",
                get(move || async move {
                    json(r#"[{"_id":"s2","content":"Arrays too.","author":"Array Author"}]"#)
                }),
            )
            .route(
                "/fail",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route("/garbage", get(|| async { "<html>certificate expired</html>" }))
            .route(
                "/slow",
                get(move || async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    json(r#"{"content":"Too late.","author":"Slow Author"}"#)
                }),
            )
            .route(
                "/counted",
                get(move || async move {
                    let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    (
                        [("content-type", "application/json")],
                        format!(r#"{{"content":"Call {n}.","author":"Counter"}}"#),
                    )
                }),
            )
            .route(
                "/entries/en/{word}",
                get(|axum::extract::Path(word): axum::extract::Path<String>| async move {
                    if word != "cat" {
                        return (axum::http::StatusCode::NOT_FOUND, String::from("[]"));
                    }
                    let entry = r#"[{"word":"cat","meanings":[{"partOfSpeech":"noun","definitions":[{"definition":"A small domesticated feline."}]}]}]"#;
                    (axum::http::StatusCode::OK, entry.to_owned())
                }),
            )
            .route(
                "/host",
                get(|headers: axum::http::HeaderMap| async move {
                    let host = headers
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("(none)")
                        .to_owned();
                    format!("host header: {host}")
                }),
            )
            .route(
                "/auth",
                get(|headers: axum::http::HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("(none)")
                        .to_owned();
                    format!("authorization: {auth}")
                }),
            )
            .route(
                "/redirect-auth-same",
                get(|| async { axum::response::Redirect::temporary("/auth") }),
            )
            .route(
                "/redirect-auth-other",
                get(move || async move {
                    axum::response::Redirect::temporary(&format!("http://localhost:{port}/auth"))
                }),
            )
            .route(
                "/echo",
                axum::routing::post(
                    |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                        let kind = headers
                            .get("content-type")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("(none)")
                            .to_owned();
                        format!("got {} bytes of {kind}", body.len())
                    },
                ),
            )
            .route("/big", get(|| async { "x".repeat(2 << 20) }))
            .route(
                "/inflight",
                get(move || {
                    let (now, most) = (in_flight.clone(), most_in_flight.clone());
                    async move {
                        use std::sync::atomic::Ordering::SeqCst;
                        most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        now.fetch_sub(1, SeqCst);
                        format!("most at once: {}", most.load(SeqCst))
                    }
                }),
            )
            .route(
                "/joke",
                get(|headers: axum::http::HeaderMap| async move {
                    let plain = headers
                        .get("accept")
                        .is_some_and(|a| a.as_bytes().starts_with(b"text/plain"));
                    if plain {
                        STUB_JOKE.to_owned()
                    } else {
                        "<html>ask for text/plain</html>".to_owned()
                    }
                }),
            )
            .route(
                "/same-host",
                get(|| async { axum::response::Redirect::temporary("/random") }),
            )
            .route(
                "/other-host",
                get(move || async move {
                    axum::response::Redirect::temporary(&format!("http://localhost:{port}/random"))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A running bot.
pub struct Bot {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The server's state, to reach dispatch directly.
    pub state: std::sync::Arc<wasmbot::webhook::AppState>,
    /// The plugins folder; removed on drop.
    plugins_dir: tempfile::TempDir,
    /// The data folder, with the plugin state file unless the test chose
    /// another store; removed on drop.
    _data_dir: tempfile::TempDir,
    /// `WASMBOT_ADMIN_TOKEN`, sent by [`Bot::plugins`] and [`Bot::reload`].
    admin_token: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A plugin file for the bot's folder: its name there and the component.
pub type PluginFile<'a> = (&'a str, &'a str);

impl Bot {
    /// Starts a bot whose plugins folder holds `files`, with test-sized
    /// time limits, after `configure` had its say; waits until it is ready.
    pub async fn start(files: &[PluginFile<'_>], configure: impl FnOnce(&mut Config)) -> Bot {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("wasmbot=debug")
            .with_writer(|| CapturedLog)
            .with_ansi(false)
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        for (name, component) in files {
            std::fs::copy(component, dir.path().join(name)).unwrap();
        }
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            plugins_dir: dir.path().to_owned(),
            plugin_timeout: Duration::from_secs(2),
            http_timeout: Duration::from_millis(500),
            state: wasmbot::state::Location::File(data.path().join("state.sqlite3")),
            ..Config::default()
        };
        configure(&mut config);
        let server = wasmbot::Server::new(&config).unwrap();
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = server.state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        let bot = Bot {
            addr,
            client: reqwest::Client::new(),
            state,
            plugins_dir: dir,
            _data_dir: data,
            admin_token: config.admin_token.as_ref().map(|t| t.0.clone()),
            shutdown: Some(tx),
            task: Some(task),
        };
        bot.wait_ready().await;
        bot
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The path of `name` in the bot's plugins folder.
    pub fn plugin_path(&self, name: &str) -> std::path::PathBuf {
        self.plugins_dir.path().join(name)
    }

    /// Sends `body` until the TwiML answer satisfies `done`, and returns
    /// how long that took; panics after `limit`. Every answer on the way
    /// must be a well-formed 200.
    pub async fn wait_for(
        &self,
        body: &str,
        limit: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Duration {
        let started = std::time::Instant::now();
        eventually(
            &format!("a matching answer to {body:?}"),
            limit,
            async || {
                let reply = self.message(body).await;
                if done(reply.twiml()) {
                    Ok(())
                } else {
                    Err(reply.text)
                }
            },
        )
        .await;
        started.elapsed()
    }

    /// `GET /plugins` (see [`Bot::plugins`]) until `done` holds for it;
    /// panics after `limit`.
    pub async fn plugins_when(
        &self,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually("the /plugins listing", limit, async || {
            let listing = self.plugins().await;
            if done(&listing) {
                Ok(listing)
            } else {
                Err(listing.to_string())
            }
        })
        .await
    }

    /// Waits until `/readyz` says 200: the folder loaded. Loading compiles
    /// every plugin (an 18 MB Python one takes seconds in a debug build,
    /// more next to the rest of the suite), so this waits up to 2 minutes.
    async fn wait_ready(&self) {
        eventually(
            "the bot ready",
            Duration::from_secs(120),
            async || match self.client.get(self.url("/readyz")).send().await {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            },
        )
        .await
    }

    /// POSTs a Twilio-shaped WhatsApp webhook with `body` as the message.
    pub async fn message(&self, body: &str) -> Reply {
        self.post_form(&whatsapp_form(body), &[]).await
    }

    /// POSTs a WhatsApp message saying `body` from `from`.
    pub async fn message_from(&self, from: &str, body: &str) -> Reply {
        let mut form = whatsapp_form(body);
        for (name, value) in &mut form {
            if name == "From" {
                *value = from.to_owned();
            }
        }
        self.post_form(&form, &[]).await
    }

    /// Sends `body` as a WhatsApp message from a task of its own, for
    /// tests that need a message in flight.
    pub fn message_in_background(&self, body: &str) -> tokio::task::JoinHandle<Reply> {
        let (client, url) = (self.client.clone(), self.url("/bot"));
        let form = form_body(&whatsapp_form(body));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            Reply::from(response).await
        })
    }

    /// POSTs `params` as a form, with extra `headers`.
    pub async fn post_form(&self, params: &[(String, String)], headers: &[(&str, &str)]) -> Reply {
        let body = form_body(params);
        let mut req = self
            .client
            .post(self.url("/bot"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    /// `POST /plugins/reload` (with the admin token, if the bot has one):
    /// its status and listing.
    pub async fn reload(&self) -> (u16, serde_json::Value) {
        let mut req = self.client.post(self.url("/plugins/reload"));
        if let Some(token) = &self.admin_token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `GET /plugins` (with the admin token, if the bot has one).
    pub async fn plugins(&self) -> serde_json::Value {
        let mut req = self.client.get(self.url("/plugins"));
        if let Some(token) = &self.admin_token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }

    /// `GET /metrics` (with the admin token, if the bot has one).
    pub async fn metrics(&self) -> String {
        let mut req = self.client.get(self.url("/metrics"));
        if let Some(token) = &self.admin_token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// Dispatches `body` (a WhatsApp message) straight to the plugins,
    /// without HTTP, and returns what each did.
    pub async fn dispatch(&self, body: &str) -> wasmbot::dispatch::Answer {
        let msg = wasmbot::message::Inbound::from_params(whatsapp_form(body));
        self.state
            .dispatcher
            .dispatch(msg)
            .await
            .expect("not at capacity")
    }

    /// The entry of `GET /plugins` for the plugin `id`.
    pub async fn plugin(&self, id: &str) -> serde_json::Value {
        let listing = self.plugins().await;
        listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no plugin {id} in {listing}"))
            .clone()
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub content_length: Option<String>,
    pub text: String,
}

impl Reply {
    async fn from(r: reqwest::Response) -> Reply {
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Reply {
            status: r.status().as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            content_length: header("content-length"),
            text: r.text().await.unwrap(),
        }
    }

    /// The TwiML document, checked to be a 200 `application/xml` answer.
    pub fn twiml(&self) -> &str {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(self.content_type, "application/xml");
        assert_eq!(
            self.content_length.as_deref(),
            Some(self.text.len().to_string().as_str()),
            "TwiML must carry Content-Length (Twilio takes no chunked replies)"
        );
        &self.text
    }
}

/// Replaces `to` with a copy of `from` the way deployment tools do: write
/// a hidden temp file next to it, then rename it into place.
pub fn copy_atomically(from: &str, to: &std::path::Path) {
    let name = to.file_name().unwrap().to_string_lossy();
    let tmp = to.with_file_name(format!(".{name}.tmp"));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The TwiML document for `messages`, each a (body, media) pair.
pub fn twiml(messages: &[(Option<&str>, Option<&str>)]) -> String {
    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
    for (body, media) in messages {
        xml.push_str("<Message>");
        if let Some(body) = body {
            xml.push_str(&format!("<Body>{body}</Body>"));
        }
        if let Some(media) = media {
            xml.push_str(&format!("<Media>{media}</Media>"));
        }
        xml.push_str("</Message>");
    }
    xml + "</Response>"
}

pub const APOLOGY: &str = "Apologies, I do not understand what you really asked.";
pub const CAT_URL: &str = "https://cataas.com/cat";

/// The parameters Twilio posts for a WhatsApp message saying `body`.
pub fn whatsapp_form(body: &str) -> Vec<(String, String)> {
    [
        ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("NumMedia", "0"),
        ("ProfileName", "Ada"),
        ("MessageType", "text"),
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("WaId", "14155550100"),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", "whatsapp:+14155238886"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "whatsapp:+14155550100"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn form_body(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The bundled quotes of the quote plugin, as `content - author`.
pub fn bundled_quotes() -> Vec<String> {
    wasmbot_plugin_quote::logic::BUNDLED
        .iter()
        .map(|(c, a)| format!("{c} - {a}"))
        .collect()
}

/// The body of the single message of `xml`, if it has exactly one.
pub fn only_body(xml: &str) -> String {
    let start = xml.find("<Body>").expect("a Body") + "<Body>".len();
    let end = xml.find("</Body>").expect("a Body end");
    assert_eq!(xml.matches("<Message>").count(), 1, "{xml}");
    xml[start..end].to_owned()
}

/// Everything the bots of this test process logged, for tests that check
/// what reaches the log. Each line is also printed, as the test writer
/// would.
pub fn captured_log() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Runs `probe` until it gives `Ok`, and returns what it gave; panics with
/// `what` and the last `Err` (what `probe` saw) once `limit` has passed.
/// Tests wait for a condition through this, so that none can hang.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(done) => return done,
            Err(last) => last,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}; last seen: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct CapturedLog;

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `redis-server` on a free loopback port, without persistence, stopped
/// when dropped. `None`, with a loud line, where it is not installed
/// (`.ci/run` installs it; Debian: `apt-get install redis-server`).
pub struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer { child: None, port };
        if let Err(e) = server.run() {
            // CI installs it and says so: there, a missing server fails.
            assert!(
                std::env::var_os("WASMBOT_TEST_REQUIRE_REDIS").is_none(),
                "WASMBOT_TEST_REQUIRE_REDIS is set but redis-server does not run: {e}"
            );
            eprintln!(
                "SKIPPED: redis-server is not installed (apt-get install redis-server); \
                 the Redis backend was NOT tested"
            );
            return None;
        }
        Some(server)
    }

    fn run(&mut self) -> std::io::Result<()> {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run().expect("redis-server ran before");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A round-robin HTTP proxy in front of replicas, as a load balancer
/// stands in front of them: request `n` goes to replica `n % len`, with
/// its method, path, headers and body; the replica's answer comes back.
pub struct RoundRobin {
    pub addr: SocketAddr,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobin {
    pub async fn start(replicas: Vec<SocketAddr>) -> RoundRobin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let upstream = client.clone();
        let proxy = move |request: axum::extract::Request| {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let replica = replicas[n % replicas.len()];
            let client = upstream.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut forward = client
                    .request(parts.method, format!("http://{replica}{path}"))
                    .body(body);
                for (name, value) in &parts.headers {
                    if name != "host" && name != "content-length" {
                        forward = forward.header(name, value);
                    }
                }
                let answer = forward.send().await.unwrap();
                let mut response = axum::http::Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    response = response.header(name, value);
                }
                response
                    .body(axum::body::Body::from(answer.bytes().await.unwrap()))
                    .unwrap()
            }
        };
        let app = axum::Router::new().fallback(proxy);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RoundRobin { addr, client, task }
    }

    /// POSTs a WhatsApp message saying `body` from `from` to `/bot`, with
    /// extra `headers`.
    pub async fn message_from(&self, from: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut form = whatsapp_form(body);
        for (name, value) in &mut form {
            if name == "From" {
                *value = from.to_owned();
            }
        }
        let mut req = self
            .client
            .post(format!("http://{}/bot", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&form));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::from(req.send().await.unwrap()).await
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
