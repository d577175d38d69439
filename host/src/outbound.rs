//! Outbound HTTP on a plugin's behalf: one shared `reqwest` client
//! (connection pooling), a per-plugin allow list of hosts checked on every
//! hop of a redirect, a total time limit and a response-size cap. Every
//! failure is an [`HttpError`] value, handed back to the plugin as a WIT
//! result; nothing here can trap a plugin or panic the host.
//!
//! SSRF: loopback, private, link-local and other non-public addresses are
//! refused unless the operator named that host in the plugin's settings
//! (a plugin's own declared defaults do not count). IP literals are checked
//! directly; names are resolved and checked before the request, and the
//! client's resolver drops non-public answers for every name no operator
//! setting names, so a DNS answer that changes in between (rebinding)
//! gains nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// HTTP methods a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("host not allowed for this plugin: {0}")]
    Denied(String),
    #[error("timed out")]
    Timeout,
    #[error("response too large")]
    TooLarge,
    #[error("transport error: {0}")]
    Transport(String),
}

/// The hosts one plugin may reach (lowercase host names or IP literals;
/// any port), and which of them may be non-public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: BTreeSet<String>,
    /// Hosts the operator named: these may resolve to private addresses.
    private_ok: BTreeSet<String>,
}

impl AllowList {
    /// `effective`: the plugin's settings (its declared defaults, overridden
    /// by the operator's); `operator`: the operator's settings alone. The
    /// hosts of absolute `http(s)` URL values and of the comma-separated
    /// `allowed_hosts` of `effective` are allowed; those of `operator` may
    /// also be non-public.
    pub fn new(effective: &BTreeMap<String, String>, operator: &BTreeMap<String, String>) -> Self {
        AllowList {
            hosts: hosts_in(effective),
            private_ok: hosts_in(operator),
        }
    }

    pub fn allows(&self, url: &url::Url) -> bool {
        url.host_str()
            .is_some_and(|h| self.hosts.contains(&normal(h)))
    }

    /// Whether `host` may be a loopback, private or link-local address.
    pub fn allows_private(&self, host: &str) -> bool {
        self.private_ok.contains(&normal(host))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }
}

/// The hosts named by `settings`: those of absolute `http(s)` URL values,
/// and the entries of `allowed_hosts`.
pub fn hosts_in(settings: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut hosts: BTreeSet<String> = settings
        .values()
        .filter_map(|v| url::Url::parse(v.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .filter_map(|u| u.host_str().map(normal))
        .collect();
    if let Some(extra) = settings.get("allowed_hosts") {
        hosts.extend(extra.split(',').map(normal).filter(|h| !h.is_empty()));
    }
    hosts
}

/// Lowercase, without the brackets of an IPv6 literal.
fn normal(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Whether `ip` is an address of the public internet: not loopback,
/// private, link-local (cloud metadata lives there), shared, unspecified,
/// broadcast, multicast or documentation space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// Limits of outbound HTTP.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whole exchange, redirects included.
    pub timeout: Duration,
    /// Requests one plugin may make while handling one message.
    pub max_requests: u32,
    /// Largest response body handed to a plugin.
    pub max_body: usize,
    /// Redirects followed for GET and HEAD.
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(3),
            max_requests: 10,
            max_body: 1 << 20,
            max_redirects: 5,
        }
    }
}

/// The shared client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    limits: Limits,
}

impl Outbound {
    /// `private_ok`: every host any operator setting names; only these may
    /// resolve to non-public addresses.
    pub fn new(limits: Limits, private_ok: BTreeSet<String>) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wasmbot/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PublicOnly {
                private_ok: Arc::new(private_ok),
            }))
            // Redirects are followed by hand so that each hop is checked.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        Ok(Outbound { client, limits })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Performs `req` if every URL on the way is allowed by `allow`.
    pub async fn send(
        &self,
        allow: &AllowList,
        req: HttpRequest,
    ) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(self.limits.timeout, self.send_inner(allow, req))
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }

    async fn send_inner(
        &self,
        allow: &AllowList,
        req: HttpRequest,
    ) -> Result<HttpResponse, HttpError> {
        let mut url = parse(&req.url)?;
        let follows = matches!(req.method, Method::Get | Method::Head);
        let mut hops = 0;
        loop {
            check_destination(allow, &url).await?;
            let mut builder = self.client.request(method(req.method), url.clone());
            for (name, value) in &req.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(transport)?;
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            if let (true, true, Some(next)) = (status.is_redirection(), follows, location) {
                hops += 1;
                if hops > self.limits.max_redirects {
                    return Err(HttpError::Transport("too many redirects".into()));
                }
                url = next;
                continue;
            }
            return self.read(response).await;
        }
    }

    async fn read(&self, mut response: reqwest::Response) -> Result<HttpResponse, HttpError> {
        if response
            .content_length()
            .is_some_and(|len| len > self.limits.max_body as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.limits.max_body {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// The allow list, then the addresses: IP literals directly, names by
/// resolving them.
async fn check_destination(allow: &AllowList, url: &url::Url) -> Result<(), HttpError> {
    let host = url.host_str().unwrap_or_default();
    if !allow.allows(url) {
        return Err(HttpError::Denied(format!("{host} is not an allowed host")));
    }
    if allow.allows_private(host) {
        return Ok(());
    }
    let private = |ip: IpAddr| {
        HttpError::Denied(format!(
            "{host} is {ip}, a non-public address; the operator must name the host in the \
             plugin's settings to allow it"
        ))
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) if !is_public(ip.into()) => Err(private(ip.into())),
        Some(url::Host::Ipv6(ip)) if !is_public(ip.into()) => Err(private(ip.into())),
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            let addrs = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| HttpError::Transport(format!("cannot resolve {name}: {e}")))?;
            for addr in addrs {
                if !is_public(addr.ip()) {
                    return Err(private(addr.ip()));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The shared client's resolver: drops non-public addresses of every name
/// that no operator setting names.
struct PublicOnly {
    private_ok: Arc<BTreeSet<String>>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let private_ok = self.private_ok.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| private_ok.contains(&normal(&host)) || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                let e = std::io::Error::other(format!("{host} has no public address"));
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn parse(raw: &str) -> Result<url::Url, HttpError> {
    let url = url::Url::parse(raw).map_err(|e| HttpError::InvalidUrl(format!("{raw}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(HttpError::InvalidUrl(format!("{raw}: not an http(s) URL")));
    }
    Ok(url)
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

fn transport(e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        return HttpError::Timeout;
    }
    // The chain carries the useful part ("connection refused", TLS errors).
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    HttpError::Transport(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn allow_list_from_settings() {
        let declared = settings(&[
            ("url", "https://overridden.example/random"),
            ("quotes", "https://API.quotable.io/random"),
            ("note", "not a url"),
            ("ftp", "ftp://files.example/x"),
            ("n", "42"),
            ("local", "http://localhost:9/"),
        ]);
        let operator = settings(&[
            ("url", "http://127.0.0.1:8080/x"),
            ("allowed_hosts", " extra.example , ,OTHER.example,[::1]"),
        ]);
        let mut effective = declared.clone();
        effective.extend(operator.clone());
        let allow = AllowList::new(&effective, &operator);
        let hosts: Vec<_> = allow.hosts().collect();
        assert_eq!(
            hosts,
            [
                "127.0.0.1",
                "::1",
                "api.quotable.io",
                "extra.example",
                "localhost",
                "other.example"
            ]
        );
        let ok = |u: &str| allow.allows(&url::Url::parse(u).unwrap());
        assert!(ok("https://api.quotable.io/quotes/random?x=1"));
        assert!(ok("http://127.0.0.1:9/any"));
        assert!(ok("http://[::1]:9/any"));
        assert!(!ok("https://quotable.io/random"));
        assert!(!ok("https://api.quotable.io.evil.example/"));
        assert!(!ok("https://overridden.example/random"));
        // Only what the operator named may be private.
        assert!(allow.allows_private("127.0.0.1"));
        assert!(allow.allows_private("[::1]"));
        assert!(!allow.allows_private("localhost"));
    }

    #[test]
    fn public_and_private_addresses() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn non_public_destinations_need_the_operator() {
        let declared = settings(&[
            ("meta", "http://169.254.169.254/latest"),
            ("local", "http://localhost:9/"),
        ]);
        let allow = AllowList::new(&declared, &BTreeMap::new());
        for url in ["http://169.254.169.254/latest", "http://localhost:9/"] {
            let err = check_destination(&allow, &url::Url::parse(url).unwrap())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, HttpError::Denied(why) if why.contains("non-public")),
                "{err}"
            );
        }
        let operator = settings(&[("allowed_hosts", "localhost")]);
        let allow = AllowList::new(&operator, &operator);
        let url = url::Url::parse("http://localhost:9/").unwrap();
        assert_eq!(check_destination(&allow, &url).await, Ok(()));
    }

    #[test]
    fn rejects_non_http_urls() {
        for raw in [
            "",
            "/relative",
            "file:///etc/passwd",
            "data:text/plain,x",
            "http://",
        ] {
            assert!(matches!(parse(raw), Err(HttpError::InvalidUrl(_))), "{raw}");
        }
    }
}
