//! Test-only guest: describes itself normally, then panics (a wasm trap) on
//! every message. The host must leave it out and still answer with the
//! other plugins. Two exceptions: a message saying "politely" gets an
//! error result, one saying "chatty" gets a reply after 1 MB of stderr.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit/0.1", world: "behaviour" });

use exports::wasmbot::plugin::handler::Guest;
use wasmbot::plugin::types::{Message, PluginInfo, Reply};

struct Trap;

impl Guest for Trap {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "trap".into(),
            version: "0.0.1".into(),
            description: "panics on every message".into(),
            priority: 0,
            settings: Vec::new(),
        }
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        if msg.body.contains("politely") {
            return Err("refused politely".into());
        }
        if msg.body.contains("chatty") {
            for i in 0..1024 {
                eprintln!("{i:04} {}", "-".repeat(1018));
            }
            return Ok(Some(Reply {
                text: Some("said a lot on stderr".into()),
                media: Vec::new(),
            }));
        }
        panic!("trap fixture: boom on {:?}", msg.body);
    }
}

export!(Trap);
