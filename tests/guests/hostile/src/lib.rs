//! Test-only guest: a hostile plugin. The message body names the attack;
//! the host must contain each one to this plugin's own call, while the
//! plugins next to it answer normally.
//!
//! | word in the body | what it does |
//! |---|---|
//! | `membomb` | grows its memory until the host's cap stops it |
//! | `recurse` | recurses without end (stack overflow) |
//! | `bigtext` | answers 10 MB of text |
//! | `manymedia` | answers 10,000 media URLs |
//! | `forbidden` | HTTP to a host it was not allowed (the reply says what happened) |
//! | `private` | HTTP to the allowed host `localhost`, which resolves to loopback |
//! | `slowhttp` | HTTP to its `slow_url` setting, which never answers in time |
//! | `manyhttp` | 100 HTTP requests in one call |
//! | `files` | tries to read `/etc/passwd`, `/data/hello.txt`, `$HOME` and a socket |
//! | `amplify` | answers 2 million empty media URLs: 32 MiB of its memory that would be 48 MiB of the host's |
//! | `memhold` | holds 40 MiB for 600 ms, then answers: several at once exceed a small budget |
//! | `hostheader` | HTTP to its allowed host with `Host: evil.example`, to reach another site behind it |
//! | `authredirect` | HTTP with an `Authorization` header through a redirect to the same origin, then to another |
//! | `forgelog` | logs, and fails with, text that would forge a log line of its own |
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit/0.1", world: "behaviour" });

use exports::wasmbot::plugin::handler::Guest;
use wasmbot::plugin::config;
use wasmbot::plugin::http::{self, Method, Request};
use wasmbot::plugin::log::{self, Level};
use wasmbot::plugin::types::{Message, PluginInfo, Reply, Setting};

struct Hostile;

fn get(url: String) -> String {
    match http::send(&Request {
        method: Method::Get,
        url,
        headers: Vec::new(),
        body: None,
    }) {
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("{e:?}"),
    }
}

fn text(t: String) -> Result<Option<Reply>, String> {
    Ok(Some(Reply {
        text: Some(t),
        media: Vec::new(),
    }))
}

#[inline(never)]
fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    let pad = std::hint::black_box(pad);
    recurse(depth + 1, pad) + pad[(depth % 16) as usize]
}

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "0.0.1".into(),
            description: "attacks the host, one way per message".into(),
            priority: 0,
            settings: vec![
                Setting {
                    key: "slow_url".into(),
                    default: None,
                    description: "a URL that answers too late".into(),
                },
                Setting {
                    key: "local_url".into(),
                    default: Some("http://localhost:9/".into()),
                    description: "a URL on an allowed name that resolves to loopback".into(),
                },
            ],
        }
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        let body = msg.body;
        if body.contains("membomb") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        if body.contains("recurse") {
            return text(recurse(0, [1; 16]).to_string());
        }
        if body.contains("bigtext") {
            return text("x".repeat(10 << 20));
        }
        if body.contains("manymedia") {
            return Ok(Some(Reply {
                text: None,
                media: (0..10_000)
                    .map(|i| format!("https://media.example/{i}.jpg"))
                    .collect(),
            }));
        }
        if body.contains("forbidden") {
            return text(format!(
                "forbidden: {}",
                get("http://169.254.169.254/latest/meta-data/".into())
            ));
        }
        if body.contains("private") {
            let url = config::get("local_url").unwrap_or_default();
            return text(format!("private: {}", get(url)));
        }
        if body.contains("slowhttp") {
            let url = config::get("slow_url").unwrap_or_default();
            return text(format!("slowhttp: {}", get(url)));
        }
        if body.contains("manyhttp") {
            let url = config::get("slow_url").unwrap_or_default();
            let outcomes: Vec<String> = (0..100)
                .map(|_| get(url.replace("/slow", "/random")))
                .collect();
            let ok = outcomes.iter().filter(|o| o.starts_with("status")).count();
            return text(format!(
                "manyhttp: {ok} ok, last: {}",
                outcomes.last().unwrap()
            ));
        }
        if body.contains("memhold") {
            let hoard = vec![1u8; 40 << 20];
            std::thread::sleep(std::time::Duration::from_millis(600));
            return text(format!(
                "held {} MiB",
                std::hint::black_box(&hoard).len() >> 20
            ));
        }
        if body.contains("hostheader") {
            let url = config::get("slow_url")
                .unwrap_or_default()
                .replace("/slow", "/host");
            let answer = match http::send(&Request {
                method: Method::Get,
                url,
                headers: vec![("Host".into(), "evil.example".into())],
                body: None,
            }) {
                Ok(r) => String::from_utf8_lossy(&r.body).into_owned(),
                Err(e) => format!("{e:?}"),
            };
            return text(format!("hostheader: {answer}"));
        }
        if body.contains("authredirect") {
            let base = config::get("slow_url").unwrap_or_default();
            let fetch = |path: &str| match http::send(&Request {
                method: Method::Get,
                url: base.replace("/slow", path),
                headers: vec![("Authorization".into(), "Bearer plugin-secret".into())],
                body: None,
            }) {
                Ok(r) => String::from_utf8_lossy(&r.body).into_owned(),
                Err(e) => format!("{e:?}"),
            };
            return text(format!(
                "same: {}; other: {}",
                fetch("/redirect-auth-same"),
                fetch("/redirect-auth-other")
            ));
        }
        if body.contains("amplify") {
            return Ok(Some(Reply {
                text: None,
                media: vec![String::new(); 2_000_000],
            }));
        }
        if body.contains("forgelog") {
            let forged =
                "\n2026-11-25T00:00:00.000000Z  INFO wasmbot: FORGED-BY-PLUGIN admin logged in";
            log::log(Level::Warn, &format!("innocent{forged}"));
            return Err(format!("failed{forged}"));
        }
        if body.contains("files") {
            let file = std::fs::read_to_string("/etc/passwd").map(|s| s.len());
            let data = std::fs::read_to_string("/data/hello.txt").unwrap_or_default();
            let written = std::fs::write("/data/written.txt", "x").is_ok();
            let env = std::env::var("HOME").unwrap_or_default();
            let socket = std::net::TcpStream::connect("127.0.0.1:22").map(|_| ());
            return text(format!(
                "files: {}; data: {data:?}; write: {written}; env: {env:?}; socket: {}",
                file.is_ok(),
                socket.is_ok()
            ));
        }
        Ok(None)
    }
}

export!(Hostile);
