//! The `quote` behaviour: a message containing "quote" gets a random quote
//! from the configured upstream (quotable by default), or a bundled one when
//! the upstream fails. The logic lives in [`logic`]; the component glue
//! below only exists on wasm.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "behaviour" });

    use crate::logic;
    use exports::wasmbot::plugin::handler::Guest;
    use wasmbot::plugin::http::{Error as HttpError, Method, Request};
    use wasmbot::plugin::log::Level;
    use wasmbot::plugin::types::{Message, PluginInfo, Reply, Setting, Trigger};
    use wasmbot::plugin::{config, http, log};

    struct Quote;

    impl Guest for Quote {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: "quote".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Answers \"quote\" with a random quote".into(),
                priority: 100,
                settings: vec![Setting {
                    key: "url".into(),
                    default: Some(logic::DEFAULT_URL.into()),
                    description: "quotable-compatible endpoint (/random or /quotes/random)".into(),
                }],
                triggers: vec![Trigger::Contains(logic::KEYWORD.into())],
            }
        }

        fn handle(msg: Message) -> Result<Option<Reply>, String> {
            if !logic::wants_quote(&msg.body) {
                return Ok(None);
            }
            let url = config::get("url").unwrap_or_else(|| logic::DEFAULT_URL.into());
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
                log::log(Level::Warn, &format!("{why}; sending a bundled quote"));
            }
            Ok(Some(Reply {
                text: Some(quote.to_string()),
                media: Vec::new(),
            }))
        }
    }

    export!(Quote);
}
