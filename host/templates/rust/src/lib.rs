//! {{name}}: a wasmbot behaviour plugin.
//!
//! A type implementing `wasmbot_plugin::Plugin`, exported with one macro
//! line. Everything but the host's imports also works natively, so
//! `cargo test` tests the plugin itself (`wasmbot_plugin::testing`).

use wasmbot_plugin::http::{self, Method, Request};
use wasmbot_plugin::{Level, Message, Plugin, PluginInfo, Reply, Trigger};

/// What to answer `body` with, if anything.
pub fn answer(body: &str, reply: &str) -> Option<String> {
    (body.trim().eq_ignore_ascii_case("ping")).then(|| reply.to_owned())
}

pub struct Hello;

impl Plugin for Hello {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info("{{name}}", env!("CARGO_PKG_VERSION"), "Answers ping with pong")
            .setting("reply", Some("pong"), "what to answer ping with")
            // A URL setting also allows HTTP to its host (once granted).
            .setting(
                "status_url",
                Some("https://status.example.com/"),
                "checked when someone sends \"status\"",
            )
            // The host calls `handle` only for messages that match one of
            // these (also Contains, Prefix, Pattern, Media, Everything).
            .trigger(Trigger::Word("ping".into()))
            .trigger(Trigger::Word("status".into()))
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        // Configuration: WASMBOT_{{env_name}}__REPLY or [plugins.{{name}}].
        let reply = wasmbot_plugin::config("reply").unwrap_or_else(|| "pong".into());
        if let Some(text) = answer(&msg.body, &reply) {
            wasmbot_plugin::log(Level::Info, &format!("ping from {}", msg.message_sid));
            return Ok(Some(Reply::text(text)));
        }
        if msg.body.trim().eq_ignore_ascii_case("status") {
            // Outbound HTTP goes through the host: allowed hosts only.
            let url = wasmbot_plugin::config("status_url").unwrap_or_default();
            let text = match http::send(&Request {
                method: Method::Get,
                url,
                headers: Vec::new(),
                body: None,
            }) {
                Ok(response) => format!("status: HTTP {}", response.status),
                Err(e) => format!("status unknown: {e:?}"),
            };
            return Ok(Some(Reply::text(text)));
        }
        Ok(None) // not for us: stay silent
    }
}

wasmbot_plugin::export!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbot_plugin::testing;

    #[test]
    fn answers_ping_only() {
        assert_eq!(answer(" PING ", "pong").as_deref(), Some("pong"));
        assert_eq!(answer("pingpong", "pong"), None);
    }

    #[test]
    fn answers_with_the_configured_reply() {
        testing::set_config("reply", "PONG!");
        let reply = Hello::handle(testing::message("ping")).unwrap().unwrap();
        assert_eq!(reply.text.as_deref(), Some("PONG!"));
        assert!(Hello::handle(testing::message("hello")).unwrap().is_none());
    }
}
