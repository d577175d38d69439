//! Test-only guest: describes itself normally, then panics (a wasm trap) on
//! every message. The host must leave it out and still answer with the
//! other plugins.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit", world: "behaviour" });

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
        panic!("trap fixture: boom on {:?}", msg.body);
    }
}

export!(Trap);
