//! The `quote` behaviour: a message containing "quote" gets a random quote
//! from the configured upstream (quotable by default), or a bundled one when
//! the upstream fails. The logic lives in [`logic`] (plain Rust, tested
//! natively); [`Quote`] is the plugin, on the wasmbot-plugin SDK.

pub mod logic;

use wasmbot_plugin::http::{self, Error as HttpError, Method, Request};
use wasmbot_plugin::{Level, Message, Plugin, PluginInfo, Reply, Trigger};

pub struct Quote;

impl Plugin for Quote {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info(
            "quote",
            env!("CARGO_PKG_VERSION"),
            "Answers \"quote\" with a random quote",
        )
        .setting(
            "url",
            Some(logic::DEFAULT_URL),
            "quotable-compatible endpoint (/random or /quotes/random)",
        )
        .trigger(Trigger::Contains(logic::KEYWORD.into()))
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        if !logic::wants_quote(&msg.body) {
            return Ok(None);
        }
        let url = wasmbot_plugin::config("url").unwrap_or_else(|| logic::DEFAULT_URL.into());
        let upstream = http::send(&Request {
            method: Method::Get,
            url,
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
        })
        .map(|response| (response.status, response.body))
        .map_err(|e| match e {
            HttpError::InvalidUrl(why) => format!("invalid URL {why}"),
            HttpError::Denied(host) => format!("host {host} is not allowed"),
            HttpError::Timeout => "the upstream timed out".to_owned(),
            HttpError::TooLarge => "the upstream's answer is too large".to_owned(),
            HttpError::Transport(why) => format!("the upstream is unreachable: {why}"),
        });
        let (quote, why) = logic::choose(upstream, &msg.message_sid);
        if let Some(why) = why {
            wasmbot_plugin::log(Level::Warn, &format!("{why}; sending a bundled quote"));
        }
        Ok(Some(Reply::text(quote.to_string())))
    }
}

wasmbot_plugin::export!(Quote);
