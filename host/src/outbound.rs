//! Outbound HTTP on a plugin's behalf. Each plugin gets its own `reqwest`
//! clients (their own connection pools and resolver) enforcing its
//! [`AllowList`]: every URL on the way, redirect hops included, must be on
//! it; a total time limit and a response-size cap bound the exchange.
//!
//! One client per worker thread ([`Limits::clients`], each built at its
//! worker's first request): a request goes through its own thread's
//! ([`crate::edge::worker`]), so a connection is opened, driven and reused
//! by one worker only. With one client shared, a worker's request often
//! took a connection another worker drives, and its response waited for
//! that worker to be free to read it (quote and a cat: 15% more messages a
//! second this way; README, Performance).
//!
//! Every failure is an [`HttpError`] value, handed back to the plugin as a
//! WIT result; nothing here can trap a plugin or panic the host.
//!
//! SSRF: loopback, private, link-local and other non-public addresses
//! ([`is_public`]) are refused unless the operator allowed that host as
//! private (`allowed_private_hosts`, or a URL value the operator set). IP
//! literals are checked before connecting; names are checked by the
//! clients' own resolver, which drops non-public answers, so the address
//! checked is the address connected to and DNS rebinding gains nothing.
//!
//! Proxies: the environment's `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` are
//! ignored (a proxy resolves names itself, out of the guard's reach). An
//! egress proxy is the operator's explicit `outbound_proxy`; names are
//! then resolved, and must be policed, by that proxy.

use crate::policy::{AllowList, normal};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
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
    /// Refused by the policy: a host not granted, a non-public address,
    /// a method or the request limit.
    #[error("refused: {0}")]
    Denied(String),
    #[error("timed out")]
    Timeout,
    #[error("response too large")]
    TooLarge,
    #[error("transport error: {0}")]
    Transport(String),
}

/// Whether `ip` is an address of the public internet: not loopback,
/// private, link-local (cloud metadata lives there), shared, reserved,
/// unspecified, broadcast, multicast or documentation space, nor an IPv6
/// form that embeds or translates to IPv4 (mapped, compatible, NAT64,
/// 6to4, Teredo), whose IPv4 half could be any of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || s[..4] == [0; 4] && s[4] == 0xffff // IPv4-translated ::ffff:0:a.b.c.d (SIIT)
                || (s[0], s[1] & 0xfff0) == (0x2001, 0x0010) // ORCHID 2001:10::/28
                || (s[0], s[1] & 0xfff0) == (0x2001, 0x0020) // ORCHIDv2 2001:20::/28
                || (s[0], s[1] & 0xf000) == (0x3fff, 0) // documentation 3fff::/20
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0; 6] // IPv4-compatible ::a.b.c.d (deprecated)
                || (s[0], s[1]) == (0x0064, 0xff9b) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
                || s[0] == 0x2002 // 6to4
                || (s[0], s[1]) == (0x2001, 0x0000) // Teredo
                || (s[0], s[1], s[2], s[3]) == (0x0100, 0, 0, 0) // discard-only 100::/64
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0], s[1]) == (0x2001, 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared (CGNAT)
        || (a, b, c) == (192, 0, 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
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
    /// The operator's egress proxy (`outbound_proxy`); `None`: direct,
    /// whatever the environment says.
    pub proxy: Option<url::Url>,
    /// Clients per plugin: one per worker thread (`edge`); a thread that
    /// is no worker uses the first.
    pub clients: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(3),
            max_requests: 10,
            max_body: 1 << 20,
            max_redirects: 5,
            proxy: None,
            clients: 1,
        }
    }
}

/// One plugin's HTTP clients, one per worker thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    clients: Arc<Clients>,
    limits: Limits,
    allow: AllowList,
}

/// The clients of one plugin: the first built with the plugin (so a
/// setting that cannot work fails its load), each other one by its
/// worker's first request; all alike, with one resolver.
struct Clients {
    slots: Box<[OnceLock<reqwest::Client>]>,
    resolver: Arc<PublicOnly>,
    proxy: Option<reqwest::Proxy>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let built = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Clients")
            .field("slots", &self.slots.len())
            .field("built", &built)
            .finish_non_exhaustive()
    }
}

impl Clients {
    fn build(&self) -> Result<reqwest::Client, HttpError> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("wasmbot/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by hand so that each hop is checked.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            // Kept warm for the next messages, within bounds: about 32
            // idle connections per host for the plugin's clients together
            // (at least one each), since descriptors are shared with the
            // edge.
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host((32 / self.slots.len()).max(1))
            .dns_resolver(self.resolver.clone());
        match &self.proxy {
            Some(proxy) => builder.proxy(proxy.clone()),
            None => builder.no_proxy(),
        }
        .build()
        .map_err(|e| HttpError::Transport(e.to_string()))
    }

    /// The client of the worker thread this runs on, built if it is not
    /// yet.
    fn get(&self) -> Result<&reqwest::Client, HttpError> {
        let worker = crate::edge::worker().unwrap_or(0);
        let slot = &self.slots[worker % self.slots.len()];
        if let Some(client) = slot.get() {
            return Ok(client);
        }
        let client = self.build()?;
        Ok(slot.get_or_init(|| client))
    }
}

impl Outbound {
    /// Clients that reach only what `allow` allows.
    pub fn new(limits: Limits, allow: AllowList) -> Result<Self, HttpError> {
        let mut private_ok = allow.private_hosts();
        let proxy = match &limits.proxy {
            Some(proxy) => {
                // The proxy is the operator's: it may live on their network.
                if let Some(host) = proxy.host_str() {
                    private_ok.insert(normal(host));
                }
                Some(
                    reqwest::Proxy::all(proxy.as_str())
                        .map_err(|e| HttpError::Transport(format!("outbound_proxy: {e}")))?,
                )
            }
            None => None,
        };
        let clients = Clients {
            slots: (0..limits.clients.max(1))
                .map(|_| OnceLock::new())
                .collect(),
            resolver: Arc::new(PublicOnly {
                private_ok: Arc::new(private_ok),
            }),
            proxy,
            connect_timeout: limits.timeout,
        };
        let first = clients.build()?;
        let _ = clients.slots[0].set(first);
        Ok(Outbound {
            clients: Arc::new(clients),
            limits,
            allow,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn allow(&self) -> &AllowList {
        &self.allow
    }

    /// Performs `req` if every URL on the way is allowed, following
    /// redirects of GET and HEAD (each hop checked): the `http` import.
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.send_within(req, true, self.limits.timeout).await
    }

    /// [`Outbound::send`] within `limit` instead of the operator's time
    /// limit (a call that replies later may wait longer).
    pub async fn send_for(
        &self,
        req: HttpRequest,
        limit: Duration,
    ) -> Result<HttpResponse, HttpError> {
        self.send_within(req, true, limit).await
    }

    /// Performs `req` if its URL is allowed, and hands back a redirect as
    /// it came (the caller's next request is checked in turn), within
    /// `within` (which the caller bounds): `wasi:http`, whose clients
    /// follow redirects themselves.
    pub async fn send_once(
        &self,
        req: HttpRequest,
        within: Duration,
    ) -> Result<HttpResponse, HttpError> {
        self.send_within(req, false, within).await
    }

    async fn send_within(
        &self,
        req: HttpRequest,
        redirects: bool,
        limit: Duration,
    ) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(limit, self.send_inner(req, redirects))
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }

    async fn send_inner(
        &self,
        req: HttpRequest,
        redirects: bool,
    ) -> Result<HttpResponse, HttpError> {
        let mut url = parse(&req.url)?;
        let follows = redirects && matches!(req.method, Method::Get | Method::Head);
        let mut hops = 0;
        // Headers that steer the connection or name another site are the
        // host's to set, never the plugin's (a `Host` of its choosing would
        // reach another site behind an allowed address).
        let mut headers: Vec<&(String, String)> = req
            .headers
            .iter()
            .filter(|(name, _)| !is_forbidden_header(name))
            .collect();
        loop {
            check_destination(&self.allow, &url)?;
            let mut builder = self.clients.get()?.request(method(req.method), url.clone());
            for (name, value) in &headers {
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
                // Credentials go only where they were sent: not to another
                // origin, nor over a downgrade to plain http.
                if next.origin() != url.origin() {
                    headers.retain(|(name, _)| !is_credential_header(name));
                }
                url = next;
                continue;
            }
            return self.read(response).await;
        }
    }

    async fn read(&self, response: reqwest::Response) -> Result<HttpResponse, HttpError> {
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
        let body = read_within(response, self.limits.max_body)
            .await
            .map_err(transport)?
            .ok_or(HttpError::TooLarge)?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// A response's body if it is at most `max` bytes (`None` past that,
/// without reading further).
pub(crate) async fn read_within(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Request headers a plugin may not set: they steer the connection or the
/// virtual host (as the Fetch standard's forbidden request headers).
fn is_forbidden_header(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "content-length"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
            | "via"
    ) || name.starts_with("proxy-")
}

/// Headers that carry credentials, dropped when a redirect changes origin.
fn is_credential_header(name: &str) -> bool {
    matches!(
        name.trim().to_ascii_lowercase().as_str(),
        "authorization" | "cookie"
    )
}

/// The allow list, and the address of an IP literal. Names are checked
/// where they are resolved, in [`PublicOnly`].
fn check_destination(allow: &AllowList, url: &url::Url) -> Result<(), HttpError> {
    let host = url.host_str().unwrap_or_default();
    if !allow.allows(url) {
        return Err(HttpError::Denied(format!(
            "{host} is not an allowed host (the operator grants hosts with allowed_hosts)"
        )));
    }
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        _ => None,
    };
    match ip {
        Some(ip) if !is_public(ip) && !allow.allows_private(host) => {
            Err(HttpError::Denied(NonPublic::message(host, ip)))
        }
        _ => Ok(()),
    }
}

/// A name that resolved to non-public addresses only, for a plugin not
/// allowed to reach them there.
#[derive(Debug)]
struct NonPublic {
    host: String,
    ip: IpAddr,
}

impl NonPublic {
    fn message(host: &str, ip: IpAddr) -> String {
        format!(
            "{host} is {ip}, a non-public address; only hosts the operator lists in \
             allowed_private_hosts (or names in a URL setting) may be"
        )
    }
}

impl std::fmt::Display for NonPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Self::message(&self.host, self.ip))
    }
}

impl std::error::Error for NonPublic {}

/// One plugin's resolver: drops non-public addresses of every name the
/// operator did not allow as private.
struct PublicOnly {
    private_ok: Arc<BTreeSet<String>>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let private_ok = self.private_ok.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let may_be_private = private_ok.contains(&normal(&host));
            let addrs: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| may_be_private || is_public(a.ip()))
                .collect();
            match (addrs.is_empty(), all.first()) {
                (true, Some(first)) => Err(Box::new(NonPublic {
                    host,
                    ip: first.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                (true, None) => Err(Box::new(std::io::Error::other(format!(
                    "{host} has no address"
                )))
                    as Box<dyn std::error::Error + Send + Sync>),
                (false, _) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
            }
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
    // The chain carries the useful part ("connection refused", TLS errors)
    // and, from our resolver, a refused address.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<NonPublic>() {
            return HttpError::Denied(refused.to_string());
        }
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    HttpError::Transport(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn public_and_private_addresses() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2001:4860:4860::8888",
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
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100::1",
            "2001:db8::1",
            "::ffff:0:7f00:1",
            "2001:10::1",
            "2001:20::1",
            "3fff::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        let nat64: Ipv6Addr = "64:ff9b::808:808".parse().unwrap();
        assert!(!is_public(nat64.into()), "NAT64 as a whole");
    }

    fn client(hosts: &[(&str, bool)]) -> Outbound {
        let allow = AllowList::new(hosts.iter().map(|(h, p)| (h.to_string(), *p)));
        Outbound::new(Limits::default(), allow).unwrap()
    }

    /// An HTTP/1.1 server on loopback that answers `ok` to every request
    /// and keeps connections open; counts the connections it accepted.
    fn keep_alive_stub() -> (String, Arc<AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/",
            listener.local_addr().unwrap().port()
        );
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let (mut buf, mut seen) = ([0u8; 4096], Vec::new());
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    /// A worker's request never takes a connection another worker opened
    /// and drives: it would wait for as long as that worker is busy (here,
    /// for ever, until the time limit). It opens one of its own.
    #[test]
    fn each_worker_thread_has_its_own_connections() {
        let (url, accepted) = keep_alive_stub();
        let allow = AllowList::new([("127.0.0.1".to_owned(), true)]);
        let limits = Limits {
            clients: 2,
            ..Limits::default()
        };
        let out = Outbound::new(limits, allow).unwrap();
        let requests = |worker: usize| {
            crate::edge::become_worker(worker);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for _ in 0..3 {
                let answer = rt.block_on(out.send(get(&url))).unwrap();
                assert_eq!((answer.status, &answer.body[..]), (200, &b"ok"[..]));
            }
            // Time for the connection to go back to its pool, idle, where
            // a shared pool would hand it to the other worker.
            rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
            rt
        };
        let requests = &requests;
        let slots = &out.clients.slots;
        let (asked, asked_rx) = std::sync::mpsc::channel();
        let (done, done_rx) = std::sync::mpsc::channel::<()>();
        // `done` is the scope's: a failure below drops it, which lets the
        // first worker end.
        std::thread::scope(move |s| {
            let first = s.spawn(move || {
                // The runtime that drives its connection is kept, and
                // not polled, while the other worker asks.
                let _rt = requests(0);
                asked.send(()).unwrap();
                let _ = done_rx.recv();
            });
            asked_rx.recv().unwrap();
            assert!(slots[1].get().is_none(), "built when first used");
            let before = accepted.load(Ordering::SeqCst);
            assert!(before >= 1);
            s.spawn(move || drop(requests(1))).join().unwrap();
            assert!(
                accepted.load(Ordering::SeqCst) > before,
                "the second worker opened a connection of its own"
            );
            done.send(()).unwrap();
            first.join().unwrap();
        });
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    #[tokio::test]
    async fn non_public_destinations_need_the_operator() {
        let out = client(&[("169.254.169.254", false), ("localhost", false)]);
        for url in ["http://169.254.169.254/latest", "http://localhost:9/"] {
            let err = out.send(get(url)).await.unwrap_err();
            assert!(
                matches!(&err, HttpError::Denied(why) if why.contains("non-public")),
                "{url}: {err}"
            );
        }
        let err = out.send(get("http://example.invalid/")).await.unwrap_err();
        assert!(
            matches!(&err, HttpError::Denied(why) if why.contains("not an allowed host")),
            "{err}"
        );
        // Allowed as private: the request goes out (and finds nothing
        // listening on port 9).
        let out = client(&[("localhost", true)]);
        let err = out.send(get("http://localhost:9/")).await.unwrap_err();
        assert!(matches!(err, HttpError::Transport(_)), "{err}");
    }

    #[test]
    fn the_host_header_and_hop_by_hop_headers_are_the_hosts() {
        for name in [
            "Host",
            " host",
            "Connection",
            "Transfer-Encoding",
            "Content-Length",
            "Proxy-Authorization",
            "upgrade",
        ] {
            assert!(is_forbidden_header(name), "{name}");
        }
        for name in ["Authorization", "Accept", "User-Agent", "X-Api-Key"] {
            assert!(!is_forbidden_header(name), "{name}");
        }
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
