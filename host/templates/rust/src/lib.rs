//! {{name}}: a wasmbot behaviour plugin.
//!
//! The decision logic is plain Rust (unit-tested natively with
//! `cargo test`); the component glue below exists only on wasm.

/// What to answer `body` with, if anything.
pub fn answer(body: &str, reply: &str) -> Option<String> {
    (body.trim().eq_ignore_ascii_case("ping")).then(|| reply.to_owned())
}

#[cfg(target_arch = "wasm32")]
mod component {
    // Bindings generated from wit/wasmbot.wit, the plugin contract.
    wit_bindgen::generate!({ path: "wit", world: "behaviour" });

    use exports::wasmbot::plugin::handler::Guest;
    use wasmbot::plugin::http::{Method, Request};
    use wasmbot::plugin::log::Level;
    use wasmbot::plugin::types::{Message, PluginInfo, Reply, Setting, Trigger};
    use wasmbot::plugin::{config, http, log};

    struct Plugin;

    impl Guest for Plugin {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: "{{name}}".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Answers ping with pong".into(),
                priority: 100,
                settings: vec![
                    Setting {
                        key: "reply".into(),
                        default: Some("pong".into()),
                        description: "what to answer ping with".into(),
                    },
                    Setting {
                        // A URL setting also allows HTTP to its host.
                        key: "status_url".into(),
                        default: Some("https://status.example.com/".into()),
                        description: "checked when someone sends \"status\"".into(),
                    },
                ],
                // The host calls `handle` only for messages that match one
                // of these (also Contains, Prefix, Pattern, Media, Everything).
                triggers: vec![Trigger::Word("ping".into()), Trigger::Word("status".into())],
            }
        }

        fn handle(msg: Message) -> Result<Option<Reply>, String> {
            // Configuration: WASMBOT_{{env_name}}__REPLY or [plugins.{{name}}].
            let reply = config::get("reply").unwrap_or_else(|| "pong".into());
            if let Some(text) = crate::answer(&msg.body, &reply) {
                log::log(Level::Info, &format!("ping from {}", msg.message_sid));
                return Ok(Some(Reply { text: Some(text), media: Vec::new() }));
            }
            if msg.body.trim().eq_ignore_ascii_case("status") {
                // Outbound HTTP goes through the host: allowed hosts only.
                let url = config::get("status_url").unwrap_or_default();
                let text = match http::send(&Request {
                    method: Method::Get,
                    url,
                    headers: Vec::new(),
                    body: None,
                }) {
                    Ok(response) => format!("status: HTTP {}", response.status),
                    Err(e) => format!("status unknown: {e:?}"),
                };
                return Ok(Some(Reply { text: Some(text), media: Vec::new() }));
            }
            Ok(None) // not for us: stay silent
        }
    }

    export!(Plugin);
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_ping_only() {
        assert_eq!(super::answer(" PING ", "pong").as_deref(), Some("pong"));
        assert_eq!(super::answer("pingpong", "pong"), None);
    }
}
