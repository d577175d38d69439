//! Triggers: which plugins a message reaches. A plugin declares in
//! `describe` what it reacts to (contract 0.2: words, texts, a prefix, a
//! regular expression, media, or everything; a 0.1 plugin gets
//! everything); dispatch asks [`Triggers::matches`] before it starts an
//! instance, so a message nobody reacts to costs no WebAssembly at all.
//!
//! Texts are compared in lowercase on both sides, like the tutorial's
//! `'quote' in msg.lower()`; patterns use the `regex` crate (linear time,
//! size-limited), compiled once at load. What a plugin declares only
//! narrows what it is given; it grants nothing.

use crate::message::Inbound;
use regex::{RegexSet, RegexSetBuilder};

/// Most triggers one plugin may declare.
pub const MAX_TRIGGERS: usize = 32;
/// Longest text of a `contains`, `word`, `prefix` or `media` trigger.
pub const MAX_TEXT: usize = 200;
/// Longest `pattern`, in bytes.
pub const MAX_PATTERN: usize = 1000;
/// Memory the compiled patterns of one plugin may take (the `regex`
/// crate's size limit), so a pattern cannot blow up at load.
const REGEX_SIZE_LIMIT: usize = 256 << 10;

/// One trigger as the plugin declared it (shown in `GET /plugins` and by
/// `wasmbot check`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Declared {
    Everything,
    Contains(String),
    Word(String),
    Prefix(String),
    Pattern(String),
    Media(String),
}

impl std::fmt::Display for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declared::Everything => write!(f, "everything"),
            Declared::Contains(s) => write!(f, "contains {s:?}"),
            Declared::Word(s) => write!(f, "word {s:?}"),
            Declared::Prefix(s) => write!(f, "prefix {s:?}"),
            Declared::Pattern(s) => write!(f, "pattern {s:?}"),
            Declared::Media(s) => write!(f, "media {s:?}"),
        }
    }
}

/// Why declared triggers were refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("no triggers: it would never be called (declare `everything` to get every message)")]
    None,
    #[error("{0} triggers; at most {MAX_TRIGGERS}")]
    TooMany(usize),
    #[error("an empty `{0}` trigger matches every message; declare `everything` instead")]
    Empty(&'static str),
    #[error("a `{0}` trigger of over {MAX_TEXT} characters")]
    TooLong(&'static str),
    #[error("a pattern of over {MAX_PATTERN} bytes")]
    PatternTooLong,
    #[error("pattern does not compile: {0}")]
    Pattern(String),
}

/// A plugin's triggers, compiled.
#[derive(Debug, Clone)]
pub struct Triggers {
    everything: bool,
    contains: Vec<String>,
    words: Vec<String>,
    prefixes: Vec<String>,
    media: Vec<String>,
    patterns: Option<RegexSet>,
}

impl Triggers {
    /// Checks and compiles what a plugin declared.
    pub fn compile(declared: &[Declared]) -> Result<Self, TriggerError> {
        if declared.is_empty() {
            return Err(TriggerError::None);
        }
        if declared.len() > MAX_TRIGGERS {
            return Err(TriggerError::TooMany(declared.len()));
        }
        let mut triggers = Triggers {
            everything: false,
            contains: Vec::new(),
            words: Vec::new(),
            prefixes: Vec::new(),
            media: Vec::new(),
            patterns: None,
        };
        let text = |kind: &'static str, s: &str| {
            if s.chars().count() > MAX_TEXT {
                Err(TriggerError::TooLong(kind))
            } else if s.trim().is_empty() && kind != "media" {
                Err(TriggerError::Empty(kind))
            } else {
                Ok(s.to_lowercase())
            }
        };
        let mut patterns = Vec::new();
        for trigger in declared {
            match trigger {
                Declared::Everything => triggers.everything = true,
                Declared::Contains(s) => triggers.contains.push(text("contains", s)?),
                Declared::Word(s) => triggers.words.push(text("word", s)?),
                // The body's leading whitespace is ignored, so the
                // prefix's is too.
                Declared::Prefix(s) => triggers.prefixes.push(text("prefix", s.trim_start())?),
                Declared::Media(s) => triggers.media.push(text("media", s)?),
                Declared::Pattern(p) if p.len() > MAX_PATTERN => {
                    return Err(TriggerError::PatternTooLong);
                }
                Declared::Pattern(p) => patterns.push(p.as_str()),
            }
        }
        if !patterns.is_empty() {
            let set = RegexSetBuilder::new(&patterns)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| TriggerError::Pattern(first_line(&e.to_string())))?;
            triggers.patterns = Some(set);
        }
        Ok(triggers)
    }

    /// Every message.
    pub fn everything() -> Self {
        Self::compile(&[Declared::Everything]).expect("valid")
    }

    /// Whether the plugin is called for this message.
    pub fn matches(&self, seen: &Seen<'_>) -> bool {
        self.everything
            || self
                .contains
                .iter()
                .any(|t| seen.lower.contains(t.as_str()))
            || self.words.iter().any(|w| contains_word(&seen.lower, w))
            || self
                .prefixes
                .iter()
                .any(|p| seen.lower.trim_start().starts_with(p.as_str()))
            || self
                .media
                .iter()
                .any(|m| seen.media.iter().any(|t| t.starts_with(m.as_str())))
            || self
                .patterns
                .as_ref()
                .is_some_and(|p| p.is_match(seen.body))
    }
}

/// A message as triggers look at it, computed once per message.
pub struct Seen<'a> {
    body: &'a str,
    lower: String,
    media: Vec<String>,
}

impl<'a> Seen<'a> {
    pub fn new(msg: &'a Inbound) -> Self {
        Seen {
            body: &msg.body,
            lower: msg.body.to_lowercase(),
            media: msg
                .media
                .iter()
                .map(|m| m.content_type.to_lowercase())
                .collect(),
        }
    }
}

/// `word` occurs in `text` with no letter, digit or `_` right before or
/// after it.
fn contains_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    // Every occurrence, overlapping ones included ("ha ha" in "aha ha ha").
    while let Some(found) = text[from..].find(word) {
        let at = from + found;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn first_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Media;

    fn msg(body: &str, media: &[&str]) -> Inbound {
        Inbound {
            body: body.to_owned(),
            media: media
                .iter()
                .map(|t| Media {
                    url: "https://api.twilio.com/m".into(),
                    content_type: (*t).into(),
                })
                .collect(),
            ..Inbound::default()
        }
    }

    fn hits(declared: &[Declared], body: &str) -> bool {
        let m = msg(body, &[]);
        Triggers::compile(declared).unwrap().matches(&Seen::new(&m))
    }

    #[test]
    fn contains_is_the_tutorials_substring_test() {
        let quote = [Declared::Contains("Quote".into())];
        for body in ["quote", "a QUOTE please", "quotes!", "misquoted"] {
            assert!(hits(&quote, body), "{body}");
        }
        for body in ["", "hello", "quo te"] {
            assert!(!hits(&quote, body), "{body}");
        }
    }

    #[test]
    fn word_needs_boundaries() {
        let cat = [Declared::Word("cat".into())];
        for body in ["cat", "a Cat!", "cat, please", "dog/cat", "ÉCHO cat"] {
            assert!(hits(&cat, body), "{body}");
        }
        for body in ["concatenate", "cats", "bobcat", "cat_1", "caté", ""] {
            assert!(!hits(&cat, body), "{body}");
        }
        // A later occurrence counts when the first is inside a word, an
        // overlapping one too.
        assert!(hits(&cat, "concat and cat"));
        assert!(hits(&[Declared::Word("ha ha".into())], "aha ha ha"));
        assert!(hits(&[Declared::Word("a-a".into())], "xa-a-a"));
        assert!(hits(&[Declared::Word("/todo".into())], "/todo buy milk"));
    }

    #[test]
    fn prefix_ignores_leading_space_and_case() {
        let roll = [Declared::Prefix("roll".into())];
        assert!(hits(&roll, "  Roll 2d6"));
        assert!(!hits(&roll, "please roll"));
        assert!(hits(&[Declared::Prefix(" roll".into())], "roll"));
    }

    #[test]
    fn patterns_are_regexes_on_the_body_as_sent() {
        let dice = [Declared::Pattern(r"(?i)\b\d*d\d+\b".into())];
        assert!(hits(&dice, "roll 2D6 now"));
        assert!(!hits(&dice, "dd"));
        // Case matters unless the pattern says (?i).
        assert!(!hits(&[Declared::Pattern("^Hi$".into())], "hi"));
    }

    #[test]
    fn media_by_content_type() {
        let images = Triggers::compile(&[Declared::Media("image/".into())]).unwrap();
        let any = Triggers::compile(&[Declared::Media(String::new())]).unwrap();
        let (photo, audio, text) = (
            msg("", &["IMAGE/jpeg"]),
            msg("", &["audio/ogg"]),
            msg("image/", &[]),
        );
        assert!(images.matches(&Seen::new(&photo)));
        assert!(!images.matches(&Seen::new(&audio)));
        assert!(!images.matches(&Seen::new(&text)));
        assert!(any.matches(&Seen::new(&audio)));
        assert!(!any.matches(&Seen::new(&text)));
    }

    #[test]
    fn any_trigger_is_enough() {
        let both = [
            Declared::Word("cat".into()),
            Declared::Pattern("^meow".into()),
        ];
        assert!(hits(&both, "meow meow"));
        assert!(hits(&both, "a cat"));
        assert!(!hits(&both, "dog"));
        assert!(hits(&[Declared::Everything], ""));
    }

    #[test]
    fn bad_declarations_are_refused() {
        use TriggerError as E;
        let refused = |d: Vec<Declared>| Triggers::compile(&d).unwrap_err();
        assert_eq!(refused(vec![]), E::None);
        assert_eq!(
            refused(vec![Declared::Everything; MAX_TRIGGERS + 1]),
            E::TooMany(MAX_TRIGGERS + 1)
        );
        assert_eq!(
            refused(vec![Declared::Contains(" ".into())]),
            E::Empty("contains")
        );
        assert_eq!(
            refused(vec![Declared::Word("x".repeat(MAX_TEXT + 1))]),
            E::TooLong("word")
        );
        assert_eq!(
            refused(vec![Declared::Pattern("a".repeat(MAX_PATTERN + 1))]),
            E::PatternTooLong
        );
        assert!(matches!(
            refused(vec![Declared::Pattern("(unclosed".into())]),
            E::Pattern(_)
        ));
        // A short pattern that compiles to a huge automaton is refused at
        // load, not run.
        assert!(matches!(
            refused(vec![Declared::Pattern(r"\w{1000}\w{1000}\w{1000}".into())]),
            E::Pattern(_)
        ));
    }
}
