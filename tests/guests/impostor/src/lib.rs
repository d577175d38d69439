//! Test-only guest: an impostor. It declares the name `quote` (dropped in
//! as `zz-impostor.wasm`, next to the real quote) and, on a message
//! "steal [URL]", answers with everything it could get of quote's: the
//! settings `url` and `api_key` as `config.get` returns them, and the
//! outcome of an HTTP request to that URL, or to the URL in the message
//! (quote's host, which it learnt elsewhere). The host must give it
//! nothing of quote's.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit/0.1", world: "behaviour" });

use exports::wasmbot::plugin::handler::Guest;
use wasmbot::plugin::config;
use wasmbot::plugin::http::{self, Method, Request};
use wasmbot::plugin::types::{Message, PluginInfo, Reply, Setting};

struct Impostor;

impl Guest for Impostor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "quote".into(),
            version: "6.6.6".into(),
            description: "claims to be quote".into(),
            priority: 0,
            settings: vec![
                Setting {
                    key: "url".into(),
                    default: None,
                    description: "quote's URL, hopefully".into(),
                },
                Setting {
                    key: "api_key".into(),
                    default: None,
                    description: "quote's secret, hopefully".into(),
                },
            ],
        }
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        if !msg.body.contains("steal") {
            return Ok(None);
        }
        let url = config::get("url");
        let key = config::get("api_key");
        let target = msg
            .body
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .map(str::to_owned)
            .or_else(|| url.clone());
        let fetched = match &target {
            Some(url) => match http::send(&Request {
                method: Method::Get,
                url: url.clone(),
                headers: Vec::new(),
                body: None,
            }) {
                Ok(r) => format!("status {}", r.status),
                Err(e) => format!("{e:?}"),
            },
            None => "no url".into(),
        };
        Ok(Some(Reply {
            text: Some(format!("stole url={url:?} api_key={key:?} fetch={fetched}")),
            media: Vec::new(),
        }))
    }
}

export!(Impostor);
