//! The `joke` behaviour: "joke" gets a random joke from an
//! icanhazdadjoke.com-compatible service (setting `url`).
//!
//! The example of a Rust plugin that uses an ordinary HTTP client crate:
//! [wstd](https://docs.rs/wstd)'s, over the standard `wasi:http` interface,
//! instead of the host's own `http` import. The host applies the same
//! policy to both: only hosts the operator granted, within the request,
//! size and time limits; a refused request is an error value here.
//! The decision logic is plain Rust, tested natively; the request is made
//! only inside the component.

use wasmbot_plugin::{Level, Message, Plugin, PluginInfo, Reply, Trigger};

pub const DEFAULT_URL: &str = "https://icanhazdadjoke.com/";

/// What the plugin says when the service does not give a joke.
pub const SORRY: &str = "Sorry, I cannot think of a joke right now.";

/// Longest joke passed on (characters); longer answers are not jokes.
const MAX_CHARS: usize = 600;

/// The reply for the service's answer: its text when it is a plain-text
/// joke, else the apology.
pub fn answer(status: u16, content_type: Option<&str>, body: &[u8]) -> String {
    let plain = content_type.is_some_and(|t| t.trim_start().starts_with("text/plain"));
    match std::str::from_utf8(body).map(str::trim) {
        Ok(joke) if status == 200 && plain && !joke.is_empty() => {
            joke.chars().take(MAX_CHARS).collect()
        }
        _ => SORRY.to_owned(),
    }
}

pub struct Joke;

impl Plugin for Joke {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info(
            "joke",
            env!("CARGO_PKG_VERSION"),
            "Answers \"joke\" with a random joke",
        )
        .priority(150)
        .setting(
            "url",
            Some(DEFAULT_URL),
            "joke service that answers Accept: text/plain",
        )
        .trigger(Trigger::Word("joke".into()))
    }

    fn handle(_msg: Message) -> Result<Option<Reply>, String> {
        let url = wasmbot_plugin::config("url").unwrap_or_else(|| DEFAULT_URL.into());
        let text = match fetch(&url) {
            Ok((status, content_type, body)) => answer(status, content_type.as_deref(), &body),
            Err(why) => {
                wasmbot_plugin::log(Level::Warn, &format!("joke service: {why}"));
                SORRY.to_owned()
            }
        };
        Ok(Some(Reply::text(text)))
    }
}

/// GET `url` as text: status, content type and body.
#[cfg(target_arch = "wasm32")]
fn fetch(url: &str) -> Result<(u16, Option<String>, Vec<u8>), String> {
    use wstd::http::{Client, Request};
    wstd::runtime::block_on(async {
        let request = Request::get(url)
            .header("accept", "text/plain")
            .body(())
            .map_err(|e| e.to_string())?;
        let mut response = Client::new()
            .send(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .body_mut()
            .contents()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_vec();
        Ok((response.status().as_u16(), content_type, body))
    })
}

/// Natively there is no wasi:http: the logic is tested through [`answer`].
#[cfg(not(target_arch = "wasm32"))]
fn fetch(_url: &str) -> Result<(u16, Option<String>, Vec<u8>), String> {
    Err("wasi:http exists only inside a component".into())
}

wasmbot_plugin::export!(Joke);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_on_a_plain_text_joke() {
        let joke = "Why did the scarecrow win an award? He was outstanding in his field.";
        assert_eq!(answer(200, Some("text/plain"), joke.as_bytes()), joke);
        assert_eq!(
            answer(200, Some("text/plain; charset=utf-8"), b"  spaced  \n"),
            "spaced"
        );
    }

    #[test]
    fn apologises_for_anything_else() {
        for (status, kind, body) in [
            (500, Some("text/plain"), &b"boom"[..]),
            (200, Some("text/html"), b"<html>joke</html>"),
            (200, None, b"no type"),
            (200, Some("text/plain"), b"   "),
            (200, Some("text/plain"), b"\xff\xfe"),
        ] {
            assert_eq!(answer(status, kind, body), SORRY, "{status} {kind:?}");
        }
    }

    #[test]
    fn caps_a_long_answer() {
        let long = "ha".repeat(1000);
        assert_eq!(
            answer(200, Some("text/plain"), long.as_bytes())
                .chars()
                .count(),
            MAX_CHARS
        );
    }

    #[test]
    fn describes_its_trigger_and_setting() {
        let info = Joke::describe();
        assert_eq!(info.name, "joke");
        assert!(matches!(&info.triggers[..], [Trigger::Word(w)] if w == "joke"));
        assert_eq!(info.settings[0].default.as_deref(), Some(DEFAULT_URL));
    }

    #[test]
    fn natively_a_request_is_an_error_and_the_reply_an_apology() {
        let reply = Joke::handle(wasmbot_plugin::testing::message("joke"))
            .unwrap()
            .unwrap();
        assert_eq!(reply.text.as_deref(), Some(SORRY));
    }
}
