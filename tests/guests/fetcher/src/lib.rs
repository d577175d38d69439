//! Test-only guest: attacks through `wasi:http` (with wstd, an ordinary
//! client crate), the way the `hostile` fixture attacks through the
//! host's `http` import. The message body names the attack; the reply
//! says what happened, so the test sees the host's answer.
//!
//! | word in the body | what it does |
//! |---|---|
//! | `get` | GET its `base_url` + `/random` (allowed: the operator set the URL) |
//! | `post` | POST 5 bytes of JSON to `/echo` |
//! | `forbidden` | GET the cloud metadata address, not granted |
//! | `private` | GET `http://localhost:9/`: `localhost` is granted, but as a public host |
//! | `slowhttp` | GET `/slow`, which answers after the time limit |
//! | `manyhttp` | 4 requests through `http`, then 100 through wasi:http: one count |
//! | `hostheader` | GET `/host` with `Host: evil.example` |
//! | `redirect` | GET `/other-host`: the redirect comes back, not followed |
//! | `connect` | a CONNECT and a TRACE request |
//! | `bigbody` | POST 2 MiB to `/echo` |
//! | `bigresponse` | GET `/big` (2 MiB) |
//! | `parallel` | starts 6 requests to `/inflight` at once, then waits for all |
//! | `manyfields` | creates `wasi:http` header maps without end (host memory) |
//! | `deferspin` | defers its reply (`later`), then loops for ever: only the later time limit ends it |
//! | `deferquick` | defers its reply, then answers "quick answer" at once |
//! | `deferwait` | defers its reply ("wait for it"), then answers "waited answer" 50 ms later |
#![cfg(target_arch = "wasm32")]

use wasmbot_plugin::{Message, Plugin, PluginInfo, Reply, Trigger, http};
use wstd::http::{Body, Client, Method, Request};

struct Fetcher;

/// The outcome of one wasi:http request: `status N: body` or the error.
fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> String {
    wstd::runtime::block_on(async {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match request.body(Body::from(body)) {
            Ok(r) => r,
            Err(e) => return format!("bad request: {e}"),
        };
        match Client::new().send(request).await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .map(|l| format!(" to {l}"))
                    .unwrap_or_default();
                match response.body_mut().contents().await {
                    Ok(body) => format!(
                        "status {status}{location}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(60)])
                    ),
                    Err(e) => format!("body error: {}", code(&e)),
                }
            }
            Err(e) => format!("error: {}", code(&e)),
        }
    })
}

/// The wasi:http error code in an error, else the error.
fn code(e: &wstd::http::Error) -> String {
    match e.downcast_ref::<wstd::http::ErrorCode>() {
        Some(code) => format!("{code:?}"),
        None => format!("{e:#}"),
    }
}

fn get(url: &str) -> String {
    send(Method::GET, url, &[], Vec::new())
}

/// Six GETs of `/inflight` started before any is awaited (raw wasi:http:
/// `handle` sends at once); what the last answer says.
fn parallel(base: &str) -> String {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let authority = base.trim_start_matches("http://");
    let pending: Vec<_> = (0..6)
        .map(|_| {
            let request = OutgoingRequest::new(Fields::new());
            let _ = request.set_scheme(Some(&Scheme::Http));
            let _ = request.set_authority(Some(authority));
            let _ = request.set_path_with_query(Some("/inflight"));
            outgoing_handler::handle(request, None)
        })
        .collect();
    let mut last = String::new();
    for future in pending {
        let future = match future {
            Ok(f) => f,
            Err(e) => return format!("handle: {e:?}"),
        };
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            other => return format!("answer: {other:?}"),
        };
        let body = response.consume().expect("a body");
        let stream = body.stream().expect("a stream");
        let mut text = Vec::new();
        while let Ok(chunk) = stream.blocking_read(4096) {
            text.extend(chunk);
        }
        last = String::from_utf8_lossy(&text).into_owned();
    }
    last
}

impl Plugin for Fetcher {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info("fetcher", "0.0.1", "attacks through wasi:http")
            .priority(0)
            .setting("base_url", None, "the stub's base URL")
            .trigger(Trigger::Everything)
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        let base = wasmbot_plugin::config("base_url").unwrap_or_default();
        let body = msg.body;
        let said = if body.contains("deferwait") {
            let _ = wasmbot_plugin::later::defer(Some("wait for it"));
            std::thread::sleep(std::time::Duration::from_millis(50));
            "waited answer".to_owned()
        } else if body.contains("deferquick") {
            let _ = wasmbot_plugin::later::defer(Some("wait for it"));
            "quick answer".to_owned()
        } else if body.contains("deferspin") {
            let deferred = wasmbot_plugin::later::defer(Some("spinning"));
            if deferred.is_ok() {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            format!("{deferred:?}")
        } else if body.contains("get") {
            get(&format!("{base}/random"))
        } else if body.contains("post") {
            send(
                Method::POST,
                &format!("{base}/echo"),
                &[("content-type", "application/json")],
                b"[1,2]".to_vec(),
            )
        } else if body.contains("forbidden") {
            get("http://169.254.169.254/latest/meta-data/")
        } else if body.contains("private") {
            get("http://localhost:9/")
        } else if body.contains("slowhttp") {
            get(&format!("{base}/slow"))
        } else if body.contains("manyhttp") {
            let mut ok = 0;
            for _ in 0..4 {
                let sent = http::send(&http::Request {
                    method: http::Method::Get,
                    url: format!("{base}/random"),
                    headers: Vec::new(),
                    body: None,
                });
                ok += usize::from(sent.is_ok());
            }
            let mut last = String::new();
            for _ in 0..100 {
                last = get(&format!("{base}/random"));
                ok += usize::from(last.starts_with("status 200"));
            }
            format!("{ok} ok, last: {last}")
        } else if body.contains("hostheader") {
            send(
                Method::GET,
                &format!("{base}/host"),
                &[("host", "evil.example")],
                Vec::new(),
            )
        } else if body.contains("redirect") {
            get(&format!("{base}/other-host"))
        } else if body.contains("connect") {
            let connect = send(Method::CONNECT, &format!("{base}/"), &[], Vec::new());
            let trace = send(Method::TRACE, &format!("{base}/"), &[], Vec::new());
            format!("{connect}; {trace}")
        } else if body.contains("bigbody") {
            send(
                Method::POST,
                &format!("{base}/echo"),
                &[],
                vec![b'x'; 2 << 20],
            )
        } else if body.contains("bigresponse") {
            get(&format!("{base}/big"))
        } else if body.contains("parallel") {
            parallel(&base)
        } else if body.contains("manyfields") {
            let mut held = Vec::new();
            loop {
                held.push(wasip2::http::types::Fields::new());
                std::hint::black_box(&held);
            }
        } else {
            return Ok(None);
        };
        Ok(Some(Reply::text(said)))
    }
}

wasmbot_plugin::export!(Fetcher);
