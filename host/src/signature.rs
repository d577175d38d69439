//! Twilio request signatures (`X-Twilio-Signature`), as Twilio's official
//! helper libraries compute and check them. Pure: no I/O.
//!
//! The signed string is the full URL Twilio called followed by every form
//! parameter, sorted by name (byte order), as `name` + `value` with no
//! separators; the values of a repeated name are sorted and counted once
//! each. It is signed with HMAC-SHA1 keyed by the account's Auth Token (or,
//! for webhooks signed with a SharedKey, HMAC-SHA256 keyed by its secret)
//! and base64-encoded. Because Twilio's back end is inconsistent about
//! default ports, a signature is accepted for the URL with and without its
//! port. A URL carrying `bodySHA256` signs the URL alone; the body must
//! then hash to that value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use subtle::ConstantTimeEq;

/// Form parameters, as `(name, value)` pairs in the order received: the
/// webhook's decoded [`Params`](crate::message::Params), or a list.
pub trait Pairs {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Pairs for crate::message::Params {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Pairs for [(K, V)] {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Pairs for Vec<(K, V)> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.as_slice().pairs()
    }
}

/// The string Twilio signs for `url` and the form `params`.
pub fn canonical(url: &str, params: &(impl Pairs + ?Sized)) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut len = url.len();
    for (name, value) in params.pairs() {
        len += name.len() + value.len();
        sorted.entry(name).or_default().insert(value);
    }
    let mut out = String::with_capacity(len);
    out.push_str(url);
    for (name, values) in sorted {
        for value in values {
            out.push_str(name);
            out.push_str(value);
        }
    }
    out
}

/// The HMAC of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Keyed by the account's Auth Token: the default.
    HmacSha1,
    /// Keyed by a SharedKey's secret, announced by the header
    /// `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256`.
    HmacSha256,
}

/// The base64 HMAC-SHA1 signature of `url` + `params` under `auth_token`.
pub fn sign(auth_token: &str, url: &str, params: &(impl Pairs + ?Sized)) -> String {
    sign_with(Algorithm::HmacSha1, auth_token, url, params)
}

/// The base64 signature of `url` + `params` under `key` with `algorithm`.
pub fn sign_with(
    algorithm: Algorithm,
    key: &str,
    url: &str,
    params: &(impl Pairs + ?Sized),
) -> String {
    let data = canonical(url, params);
    let digest = match algorithm {
        Algorithm::HmacSha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("any key length");
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    STANDARD.encode(digest)
}

/// Whether `signature` is a valid HMAC-SHA1 signature under `auth_token`.
pub fn verify(
    auth_token: &str,
    url: &str,
    params: &(impl Pairs + ?Sized),
    signature: &str,
) -> bool {
    verify_with(Algorithm::HmacSha1, auth_token, url, params, signature)
}

/// Whether `signature` is valid for the request, comparing in constant time.
/// Like Twilio's libraries, tries the URL with its port (the scheme's
/// default port added if it has none) and without any port.
pub fn verify_with(
    algorithm: Algorithm,
    key: &str,
    url: &str,
    params: &(impl Pairs + ?Sized),
    signature: &str,
) -> bool {
    let [with_port, without_port] = port_variants(url);
    // Evaluate both, so the time taken does not depend on which matched.
    let a = ct_eq(&sign_with(algorithm, key, &with_port, params), signature);
    let b = ct_eq(&sign_with(algorithm, key, &without_port, params), signature);
    a | b
}

/// The `bodySHA256` query parameter of `url`, if it has one.
pub fn body_sha256_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "bodySHA256")
        .map(|(_, value)| value.into_owned())
}

/// Whether `body` hashes to `expected_hex` (SHA-256, hex), in constant time.
pub fn body_matches(body: &[u8], expected_hex: &str) -> bool {
    let actual: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ct_eq(&actual, &expected_hex.to_ascii_lowercase())
}

/// What `X-Twilio-Webhooks-Signature-Settings` (`key=<id>,algorithm=<alg>`)
/// says, read as Twilio's Python helper library reads it: parts without
/// `=` or with other names are ignored, the algorithm's case does not
/// matter, and no `algorithm` means HMAC-SHA1. An algorithm this code does
/// not know is `Err(name)`: such a request cannot be validated.
pub fn parse_settings(header: &str) -> (Option<String>, Result<Algorithm, String>) {
    let value = |wanted: &str| {
        header.split(',').find_map(|part| {
            let (name, value) = part.split_once('=')?;
            (name.trim() == wanted && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
    };
    let algorithm = match value("algorithm") {
        None => Ok(Algorithm::HmacSha1),
        Some(a) if a.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Algorithm::HmacSha1),
        Some(a) if a.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Algorithm::HmacSha256),
        Some(other) => Err(other),
    };
    (value("key"), algorithm)
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `url` with an explicit port (the scheme's default if it has none) and
/// `url` with no port, keeping everything else byte for byte.
fn port_variants(url: &str) -> [String; 2] {
    let Some((scheme, rest)) = url.split_once("://") else {
        return [url.to_owned(), url.to_owned()];
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    // An IPv6 literal ends with `]`; a port, if any, follows it.
    let host_end = match hostport.rfind(']') {
        Some(bracket) => bracket + 1,
        None => hostport.find(':').unwrap_or(hostport.len()),
    };
    let (host, port) = hostport.split_at(host_end);
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        _ => ":80",
    };
    let port = if port.is_empty() { default_port } else { port };
    [
        format!("{scheme}://{userinfo}{host}{port}{tail}"),
        format!("{scheme}://{userinfo}{host}{tail}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Params;
    use proptest::prelude::*;

    proptest! {
        /// The order Twilio (or a proxy) sends parameters in never matters,
        /// and a repeated identical pair counts once.
        #[test]
        fn canonical_ignores_order_and_repeats(
            url in "https?://[a-z]{1,10}(:[0-9]{2,4})?/[a-z/?=&]{0,20}",
            mut pairs in proptest::collection::vec(("[A-Za-z]{1,6}", ".{0,8}"), 0..12),
            seed in any::<u64>(),
        ) {
            let original = canonical(&url, &pairs);
            let repeated: Vec<_> = pairs.iter().chain(pairs.iter()).cloned().collect();
            prop_assert_eq!(canonical(&url, &repeated), original.clone());
            // A deterministic shuffle.
            let len = pairs.len();
            for i in (1..len).rev() {
                let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
                pairs.swap(i, j);
            }
            prop_assert_eq!(canonical(&url, &pairs), original);
        }

        /// What is signed verifies, with and without the default port, and
        /// any change to a value does not.
        #[test]
        fn sign_verify_round_trip(
            token in "[a-f0-9]{32}",
            host in "[a-z]{1,12}\\.example",
            pairs in proptest::collection::vec(("[A-Za-z]{1,6}", "[a-z0-9+ ]{0,8}"), 1..10),
        ) {
            let url = format!("https://{}/bot?x=1", host);
            let sig = sign(&token, &url, &pairs);
            prop_assert!(verify(&token, &url, &pairs, &sig));
            let with_port = format!("https://{}:443/bot?x=1", host);
            prop_assert!(verify(&token, &with_port, &pairs, &sig));
            let mut changed = pairs.clone();
            changed[0].1.push('!');
            prop_assert!(!verify(&token, &url, &changed, &sig));
        }
    }

    const TOKEN: &str = "12345";
    const SHARED_KEY_VECTOR: &str = "iwOZCFCgsf1lZRuIVob5xh6MS+e56XvT2JyqSGp3ZtY=";

    fn vector_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    /// The official test vectors (see shared/twilio-reference.md).
    #[test]
    fn official_vectors() {
        let cases = [
            (
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            ),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(sign(TOKEN, url, &vector_params()), expected, "{url}");
            assert!(verify(TOKEN, url, &vector_params(), expected), "{url}");
        }
    }

    /// The port quirk: each signature validates against the URL written
    /// with or without the default port.
    #[test]
    fn port_quirk() {
        let p = vector_params();
        let portless = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify(TOKEN, with_port, &p, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(verify(TOKEN, portless, &p, "kvajT1Ptam85bY51eRf/AJRuM3w="));
        let http_portless = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(verify(
            TOKEN,
            http_portless,
            &p,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn duplicate_names_sort_their_values() {
        let p: Vec<(String, String)> = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(sign(TOKEN, url, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    /// The JSON-body vector: the signature covers the URL alone, and the
    /// body must hash to the URL's `bodySHA256`.
    #[test]
    fn body_sha256_vector() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let url = format!("https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={hash}");
        assert_eq!(body_sha256_param(&url).as_deref(), Some(hash));
        assert!(body_matches(body, hash));
        assert!(!body_matches(b"{}", hash));
        assert_eq!(
            sign(TOKEN, &url, &Params::default()),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        assert!(verify(
            TOKEN,
            &url,
            &Params::default(),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert_eq!(body_sha256_param("https://x/y?foo=1"), None);
    }

    /// HMAC-SHA256 (SharedKey) over the same canonical string. Expected
    /// value computed with Twilio's Python helper library 9.13
    /// (`RequestValidator`) for key "shared-secret".
    #[test]
    fn shared_key_sha256() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = sign_with(
            Algorithm::HmacSha256,
            "shared-secret",
            url,
            &vector_params(),
        );
        assert_eq!(sig, SHARED_KEY_VECTOR);
        assert!(verify_with(
            Algorithm::HmacSha256,
            "shared-secret",
            url,
            &vector_params(),
            &sig
        ));
        assert!(!verify_with(
            Algorithm::HmacSha1,
            "shared-secret",
            url,
            &vector_params(),
            &sig
        ));
        let portful = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify_with(
            Algorithm::HmacSha256,
            "shared-secret",
            portful,
            &vector_params(),
            &sig
        ));
    }

    #[test]
    fn settings_header() {
        use Algorithm::*;
        let cases: [(&str, Option<&str>, Result<Algorithm, String>); 7] = [
            (
                "key=KS123,algorithm=HMAC_SHA256",
                Some("KS123"),
                Ok(HmacSha256),
            ),
            (
                " algorithm=hmac_sha256 , key=KS9 ",
                Some("KS9"),
                Ok(HmacSha256),
            ),
            ("key=KS1", Some("KS1"), Ok(HmacSha1)),
            ("", None, Ok(HmacSha1)),
            ("key=,algorithm=,junk", None, Ok(HmacSha1)),
            ("algorithm=HMAC_SHA1,x=1", None, Ok(HmacSha1)),
            ("key=K,algorithm=MD5", Some("K"), Err("MD5".into())),
        ];
        for (header, key, algorithm) in cases {
            assert_eq!(
                parse_settings(header),
                (key.map(String::from), algorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn canonical_form() {
        let p: Vec<(String, String)> = [("b", "2"), ("a", "z"), ("a", "y"), ("a", "y"), ("B", "1")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        // Byte order puts "B" before "a"; "a"'s values sorted, "y" once.
        assert_eq!(canonical("U", &p), "UB1ayazb2");
    }

    #[test]
    fn rejects_tampering() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let mut p = vector_params();
        assert!(!verify("54321", url, &p, good));
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &p,
            good
        ));
        assert!(!verify(TOKEN, url, &p, ""));
        assert!(!verify(TOKEN, url, &p, &good[..good.len() - 1]));
        p[2].1 = "9999".into();
        assert!(!verify(TOKEN, url, &p, good));
    }

    #[test]
    fn port_variants_keep_the_rest() {
        let cases = [
            ("https://h/p?q", ["https://h:443/p?q", "https://h/p?q"]),
            ("http://h:8080/p", ["http://h:8080/p", "http://h/p"]),
            (
                "https://u:pw@h/p",
                ["https://u:pw@h:443/p", "https://u:pw@h/p"],
            ),
            (
                "https://[::1]:8443/p",
                ["https://[::1]:8443/p", "https://[::1]/p"],
            ),
            ("https://h?x=1", ["https://h:443?x=1", "https://h?x=1"]),
        ];
        for (url, expected) in cases {
            assert_eq!(port_variants(url), expected.map(String::from), "{url}");
        }
    }
}
