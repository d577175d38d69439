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
    pub params: Vec<(String, String)>,
}

impl Inbound {
    /// Builds the message from the decoded webhook form. Missing fields are
    /// empty rather than errors: Twilio's own test tools and other channels
    /// (SMS) omit some of them.
    pub fn from_params(params: Vec<(String, String)>) -> Self {
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let num_media = get("NumMedia")
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
        assert_eq!(m.params, p);
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
