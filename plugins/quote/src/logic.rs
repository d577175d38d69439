//! The quote behaviour as plain Rust: when to answer, how to read the
//! upstream's JSON, and the bundled quotes used when the upstream fails.
//! Compiles natively, so everything here is unit-tested without wasm.

use serde::Deserialize;
use std::fmt;

/// quotable's endpoint, as in the original tutorial.
pub const DEFAULT_URL: &str = "https://api.quotable.io/random";

/// The seed answers any message that contains "quote", in any case: the
/// plugin's trigger, so the host calls it for nothing else.
pub const KEYWORD: &str = "quote";

/// Whether a message asks for a quote (the trigger, checked again so the
/// plugin is right on its own too).
pub fn wants_quote(body: &str) -> bool {
    body.to_lowercase().contains(KEYWORD)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Quote {
    pub content: String,
    pub author: String,
}

impl fmt::Display for Quote {
    /// `{content} - {author}`: what the tutorial meant to send.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.content, self.author)
    }
}

/// Reads quotable's `/random` object or its `/quotes/random` array.
/// Anything else, or a quote with an empty content or author, is `None`.
pub fn parse_quote(json: &[u8]) -> Option<Quote> {
    // The first byte tells the shape, so the JSON is read once, straight
    // into the quote (an untagged enum would first copy the whole document
    // into a tree of its own, every field the plugin ignores included).
    let quote = match json.iter().find(|b| !b.is_ascii_whitespace())? {
        b'[' => serde_json::from_slice::<Vec<Quote>>(json)
            .ok()?
            .into_iter()
            .next()?,
        _ => serde_json::from_slice::<Quote>(json).ok()?,
    };
    let quote = Quote {
        content: trimmed(quote.content),
        author: trimmed(quote.author),
    };
    (!quote.content.is_empty() && !quote.author.is_empty()).then_some(quote)
}

/// `text` without surrounding whitespace; no copy when there is none.
fn trimmed(text: String) -> String {
    match text.trim() {
        trim if trim.len() == text.len() => text,
        trim => trim.to_owned(),
    }
}

/// What the upstream answered, as far as the plugin is concerned.
pub type Upstream = Result<(u16, Vec<u8>), String>;

/// The quote to send: the upstream's, or a bundled one picked by `seed`
/// (the message id, so that different messages get different quotes) with
/// the reason the upstream was not used.
pub fn choose(upstream: Upstream, seed: &str) -> (Quote, Option<String>) {
    let why = match upstream {
        Ok((200, body)) => match parse_quote(&body) {
            Some(quote) => return (quote, None),
            None => "the upstream's answer is not a quote".to_owned(),
        },
        Ok((status, _)) => format!("the upstream answered HTTP {status}"),
        Err(e) => e,
    };
    (bundled(seed), Some(why))
}

/// Real quotes from public-domain works, used when the upstream fails
/// (quotable's TLS certificate has been expired for months at a time).
pub const BUNDLED: &[(&str, &str)] = &[
    ("Well done is better than well said.", "Benjamin Franklin"),
    ("The unexamined life is not worth living.", "Socrates"),
    (
        "Waste no more time arguing about what a good man should be. Be one.",
        "Marcus Aurelius",
    ),
    (
        "It does not matter how slowly you go as long as you do not stop.",
        "Confucius",
    ),
    (
        "The journey of a thousand miles begins with one step.",
        "Lao Tzu",
    ),
    (
        "He who has a why to live can bear almost any how.",
        "Friedrich Nietzsche",
    ),
    ("The best way out is always through.", "Robert Frost"),
    (
        "Hope is the thing with feathers that perches in the soul.",
        "Emily Dickinson",
    ),
    (
        "It is not the man who has too little, but the man who craves more, that is poor.",
        "Seneca",
    ),
    (
        "Nothing in life is to be feared, it is only to be understood.",
        "Marie Curie",
    ),
    ("Fortune favours the bold.", "Virgil"),
    (
        "Genius is one per cent inspiration and ninety-nine per cent perspiration.",
        "Thomas Edison",
    ),
];

/// A bundled quote chosen by a stable hash (FNV-1a) of `seed`.
pub fn bundled(seed: &str) -> Quote {
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let (content, author) = BUNDLED[(hash % BUNDLED.len() as u64) as usize];
    Quote {
        content: content.to_owned(),
        author: author.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_quote_in_any_case_and_position() {
        for body in ["quote", "QUOTE please", "Give me a Quote!", "misquoted"] {
            assert!(wants_quote(body), "{body}");
        }
        for body in ["", "hello", "quot", "q u o t e"] {
            assert!(!wants_quote(body), "{body}");
        }
    }

    #[test]
    fn parses_both_quotable_shapes() {
        let one =
            br#"{"_id":"x","content":"Be yourself.","author":"Oscar Wilde","tags":[],"length":12}"#;
        let many = br#"[{"_id":"x","content":"Be yourself.","author":"Oscar Wilde"}]"#;
        let spaced =
            b" \r\n\t[ {\"content\": \" Be yourself.\\n\", \"author\": \"Oscar Wilde \"} ] ";
        let expected = Quote {
            content: "Be yourself.".into(),
            author: "Oscar Wilde".into(),
        };
        assert_eq!(parse_quote(one), Some(expected.clone()));
        assert_eq!(parse_quote(many), Some(expected.clone()));
        assert_eq!(parse_quote(spaced), Some(expected.clone()));
        assert_eq!(expected.to_string(), "Be yourself. - Oscar Wilde");
    }

    #[test]
    fn rejects_garbage() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"[]",
            b"{}",
            b"  ",
            b"null",
            b"[1]",
            br#"[{"content":"C"}]"#,
            br#"{"content":"C","author":"A"} trailing"#,
            br#"{"content":"","author":"A"}"#,
            br#"{"content":"C","author":"  "}"#,
            br#"{"content":1,"author":"A"}"#,
            br#"{"statusCode":429,"statusMessage":"Too Many Requests"}"#,
        ] {
            assert_eq!(parse_quote(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn upstream_quote_wins_when_good() {
        let body = br#"{"content":"C","author":"A"}"#.to_vec();
        let (quote, why) = choose(Ok((200, body)), "SM1");
        assert_eq!(quote.to_string(), "C - A");
        assert_eq!(why, None);
    }

    #[test]
    fn falls_back_with_a_reason() {
        let good = br#"{"content":"C","author":"A"}"#.to_vec();
        let cases: [(Upstream, &str); 3] = [
            (Ok((500, good)), "HTTP 500"),
            (Ok((200, b"nope".to_vec())), "not a quote"),
            (Err("timeout".into()), "timeout"),
        ];
        for (upstream, reason) in cases {
            let (quote, why) = choose(upstream, "SM1");
            assert!(BUNDLED.contains(&(quote.content.as_str(), quote.author.as_str())));
            assert!(why.unwrap().contains(reason));
        }
    }

    #[test]
    fn bundled_choice_is_stable_and_varies_with_the_seed() {
        assert_eq!(bundled("SMa"), bundled("SMa"));
        let distinct: std::collections::BTreeSet<_> = (0..64)
            .map(|i| bundled(&format!("SM{i}")).content)
            .collect();
        assert!(distinct.len() > BUNDLED.len() / 2, "{distinct:?}");
    }
}
