//! Outbound HTTP on a plugin's behalf: one shared `reqwest` client
//! (connection pooling), a per-plugin allow list of hosts checked on every
//! hop of a redirect, a total time limit and a response-size cap. Every
//! failure is an [`HttpError`] value, handed back to the plugin as a WIT
//! result; nothing here can trap a plugin or panic the host.

use std::collections::BTreeSet;
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
/// any port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(BTreeSet<String>);

impl AllowList {
    /// Hosts of every absolute `http(s)` URL among `values`, plus each
    /// comma-separated entry of `allowed_hosts`.
    pub fn from_settings<'a>(
        values: impl IntoIterator<Item = &'a str>,
        allowed_hosts: Option<&str>,
    ) -> Self {
        let mut hosts: BTreeSet<String> = values
            .into_iter()
            .filter_map(|v| url::Url::parse(v.trim()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
            .collect();
        hosts.extend(
            allowed_hosts
                .unwrap_or("")
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty()),
        );
        AllowList(hosts)
    }

    pub fn allows(&self, url: &url::Url) -> bool {
        url.host_str()
            .is_some_and(|h| self.0.contains(&h.to_ascii_lowercase()))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Limits of outbound HTTP.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whole exchange, redirects included.
    pub timeout: Duration,
    /// Largest response body handed to a plugin.
    pub max_body: usize,
    /// Redirects followed for GET and HEAD.
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(3),
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
    pub fn new(limits: Limits) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wasmbot/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by hand so that each hop is checked.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        Ok(Outbound { client, limits })
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
            if !allow.allows(&url) {
                return Err(HttpError::Denied(url.host_str().unwrap_or("").to_owned()));
            }
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

    #[test]
    fn allow_list_from_settings() {
        let allow = AllowList::from_settings(
            [
                "https://API.quotable.io/random",
                "not a url",
                "ftp://files.example/x",
                "42",
                "http://127.0.0.1:8080/x",
            ],
            Some(" extra.example , ,OTHER.example"),
        );
        let hosts: Vec<_> = allow.hosts().collect();
        assert_eq!(
            hosts,
            [
                "127.0.0.1",
                "api.quotable.io",
                "extra.example",
                "other.example"
            ]
        );
        let ok = |u: &str| allow.allows(&url::Url::parse(u).unwrap());
        assert!(ok("https://api.quotable.io/quotes/random?x=1"));
        assert!(ok("http://127.0.0.1:9/any"));
        assert!(!ok("https://quotable.io/random"));
        assert!(!ok("https://api.quotable.io.evil.example/"));
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
