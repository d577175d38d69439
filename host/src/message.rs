//! The host's own view of a message and a reply: what the webhook builds,
//! what dispatch hands to plugins and what merge combines. `runtime`
//! converts these to and from the WIT types; nothing else sees those.

/// One media item of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub url: String,
    pub content_type: String,
}

/// An inbound message, as Twilio posted it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    pub body: String,
    pub from: String,
    pub to: String,
    pub message_sid: String,
    pub account_sid: String,
    pub profile_name: Option<String>,
    pub wa_id: Option<String>,
    pub media: Vec<Media>,
    /// Every parameter as received, in order, repeated names included.
    pub params: Params,
}

impl Inbound {
    /// Builds the message from the webhook's parameters. Missing fields
    /// are empty rather than errors: Twilio's own test tools and other
    /// channels (SMS) omit some of them.
    pub fn new(params: Params) -> Self {
        let get = |name: &str| params.get(name).map(str::to_owned);
        let num_media = params
            .get("NumMedia")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0)
            // Twilio sends at most 10; never trust a count to size anything.
            .min(10);
        let media = (0..num_media)
            .filter_map(|i| {
                Some(Media {
                    url: get(&format!("MediaUrl{i}"))?,
                    content_type: get(&format!("MediaContentType{i}")).unwrap_or_default(),
                })
            })
            .collect();
        Inbound {
            body: get("Body").unwrap_or_default(),
            from: get("From").unwrap_or_default(),
            to: get("To").unwrap_or_default(),
            message_sid: get("MessageSid")
                .or_else(|| get("SmsMessageSid"))
                .or_else(|| get("SmsSid"))
                .unwrap_or_default(),
            account_sid: get("AccountSid").unwrap_or_default(),
            profile_name: get("ProfileName"),
            wa_id: get("WaId"),
            media,
            params,
        }
    }

    /// [`Inbound::new`] from `(name, value)` pairs.
    pub fn from_params<K: AsRef<str>, V: AsRef<str>>(
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Inbound::new(params.into_iter().collect())
    }
}

/// Form parameters, in order, repeated names included: decoded into one
/// buffer, so a webhook's thirty-odd parameters are two allocations rather
/// than one per name and value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Every name and value, back to back.
    text: String,
    /// Per pair: where its name starts, where its value starts (the name's
    /// end) and where the value ends, in `text`.
    pairs: Vec<[usize; 3]>,
}

impl Params {
    /// Decodes an `application/x-www-form-urlencoded` body leniently: every
    /// pair is kept, in order; bad escapes and invalid UTF-8 are decoded
    /// lossily rather than refused (Twilio adds parameters without notice;
    /// refusing a message would lose it).
    pub fn parse(body: &[u8]) -> Self {
        let mut params = Params {
            // Decoding never lengthens a form, bar replacement characters.
            text: String::with_capacity(body.len()),
            // Empty pairs are skipped: a body of `&`s reserves nothing.
            pairs: Vec::with_capacity(
                body.split(|b| *b == b'&')
                    .filter(|pair| !pair.is_empty())
                    .count(),
            ),
        };
        // What `form_urlencoded::parse` does, without a `String` for every
        // escaped name or value: pairs split at `&` (empty ones skipped),
        // name and value at the first `=`.
        let mut scratch = Vec::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let start = params.text.len();
            params.decode(name, &mut scratch);
            let middle = params.text.len();
            params.decode(value, &mut scratch);
            params.pairs.push([start, middle, params.text.len()]);
        }
        params
    }

    /// Appends `encoded`, decoded: `+` is a space, `%XX` a byte (a `%`
    /// without two hex digits stays as it is), invalid UTF-8 the
    /// replacement character.
    fn decode(&mut self, encoded: &[u8], scratch: &mut Vec<u8>) {
        scratch.clear();
        for (i, part) in encoded.split(|b| *b == b'+').enumerate() {
            if i > 0 {
                scratch.push(b' ');
            }
            scratch.extend(percent_encoding::percent_decode(part));
        }
        self.text.push_str(&String::from_utf8_lossy(scratch));
    }

    /// Adds a pair at the end.
    pub fn push(&mut self, name: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        let middle = self.text.len();
        self.text.push_str(value);
        self.pairs.push([start, middle, self.text.len()]);
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        self.pairs
            .iter()
            .map(|&[start, middle, end]| (&self.text[start..middle], &self.text[middle..end]))
    }

    /// The value of the first pair named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut params = Params::default();
        for (name, value) in pairs {
            params.push(name.as_ref(), value.as_ref());
        }
        params
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What one plugin answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub text: Option<String>,
    pub media: Vec<String>,
}

/// One message of the bot's answer: what a `<Message>` carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub body: Option<String>,
    /// Its media URLs: one at most on WhatsApp, up to 10 on SMS/MMS.
    pub media: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lifts_the_known_fields_and_keeps_every_param() {
        let p = params(&[
            ("SmsMessageSid", "SM1"),
            ("NumMedia", "2"),
            ("ProfileName", "Ada"),
            ("WaId", "14155550100"),
            ("Body", "quote"),
            ("To", "whatsapp:+14155238886"),
            ("MessageSid", "SM1"),
            ("AccountSid", "AC1"),
            ("From", "whatsapp:+14155550100"),
            ("MediaUrl0", "https://api.twilio.com/m0"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://api.twilio.com/m1"),
            ("MediaContentType1", "image/png"),
            ("SomethingNew", "x"),
            ("SomethingNew", "y"),
        ]);
        let m = Inbound::from_params(p.clone());
        assert_eq!(m.body, "quote");
        assert_eq!(m.from, "whatsapp:+14155550100");
        assert_eq!(m.to, "whatsapp:+14155238886");
        assert_eq!(m.message_sid, "SM1");
        assert_eq!(m.account_sid, "AC1");
        assert_eq!(m.profile_name.as_deref(), Some("Ada"));
        assert_eq!(m.wa_id.as_deref(), Some("14155550100"));
        assert_eq!(
            m.media,
            vec![
                Media {
                    url: "https://api.twilio.com/m0".into(),
                    content_type: "image/jpeg".into()
                },
                Media {
                    url: "https://api.twilio.com/m1".into(),
                    content_type: "image/png".into()
                },
            ]
        );
        assert!(
            m.params
                .iter()
                .eq(p.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        );
        assert_eq!(m.params.len(), p.len());
        assert_eq!(m.params.get("SomethingNew"), Some("x"));
        assert_eq!(m.params.get("Missing"), None);
    }

    #[test]
    fn params_decode_as_forms_are_encoded() {
        let p = Params::parse(b"a=1+2%2B3&&b&=c&a=%E2%9C%93&bad=%zz%2&raw=%ff");
        let pairs: Vec<_> = p.iter().collect();
        assert_eq!(
            pairs,
            [
                ("a", "1 2+3"),
                ("b", ""),
                ("", "c"),
                ("a", "\u{2713}"),
                ("bad", "%zz%2"),
                ("raw", "\u{fffd}"),
            ]
        );
        assert_eq!(p.get("a"), Some("1 2+3"), "the first of a repeated name");
        assert_eq!(p.get("c"), None);
        assert_eq!(format!("{p:?}"), format!("{pairs:?}"));
        assert!(Params::parse(b"").is_empty());
    }

    #[test]
    fn tolerates_missing_and_odd_fields() {
        let m = Inbound::from_params(params(&[("NumMedia", "banana"), ("SmsSid", "SM9")]));
        assert_eq!(m.body, "");
        assert_eq!(m.message_sid, "SM9");
        assert!(m.media.is_empty());
        assert_eq!(m.profile_name, None);

        let m = Inbound::from_params(params(&[("NumMedia", "99999999999"), ("MediaUrl0", "u")]));
        assert_eq!(m.media.len(), 1);
    }
}
