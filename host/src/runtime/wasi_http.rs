//! `wasi:http/outgoing-handler` for plugins, so that a language's own HTTP
//! client works (JavaScript's `fetch`, Rust's `wstd`, Python through the
//! scaffold's `wasmbot_http.py`). wasmtime-wasi-http implements the
//! interface; every request it would send comes to [`Egress`]'s
//! `send_request` hook instead, the way Spin enforces
//! `allowed_outbound_hosts`, and goes out through the plugin's
//! [`Outbound`](crate::outbound::Outbound) client: the same allow list,
//! SSRF guard and rebinding-safe resolver, request count, size and time
//! caps as the `http` import. A redirect is handed back, not followed: the
//! guest's client follows it with a new request, checked in turn.
//!
//! Every refusal and failure reaches the guest as a `wasi:http` error code
//! (`http-request-denied`, `http-response-body-size`, …), never a trap;
//! the reason is in the host's log, under the plugin's id.

use super::host::{Egress, HostState, logged};
use crate::outbound::{HttpError, HttpRequest, HttpResponse, Method};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// Most header bytes a plugin may hold in one `fields` resource (wasi:http
/// counts in-memory size, about 2-4× the wire size: a few KiB on the wire,
/// plenty for an API request).
const FIELD_SIZE_LIMIT: usize = 16 << 10;

/// Most bytes of a request body the host buffers for the guest per write
/// (wasi:http's default is 1 MiB, buffered before `handle` is even called:
/// with a body per table slot, that would be hundreds of MiB per call).
const BODY_CHUNK: usize = 16 << 10;

/// The wasi:http state of a new store.
pub(super) fn context() -> WasiHttpCtx {
    let mut ctx = WasiHttpCtx::new();
    ctx.set_field_size_limit(FIELD_SIZE_LIMIT);
    ctx
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

type Sent = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Egress {
    /// `Host` comes from the URL, set by our client: never the guest's.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let started = Instant::now();
        // Counted here, when the guest calls `handle` (the request is sent
        // from then on, whether or not the guest waits for the answer).
        let operator = self.time_limit(self.operator_limit());
        let admitted = self.admit().cloned();
        let in_flight = self.in_flight();
        let ctx = self.ctx.clone();
        Box::new(async move {
            let result = match admitted {
                Ok(outbound) => forward(&outbound, &in_flight, request, options, operator).await,
                Err(e) => Err(Refused::Policy(e)),
            };
            let outcome = match &result {
                Ok(r) => Ok(r.status),
                Err(Refused::Policy(e)) => Err(e as &dyn std::fmt::Display),
                Err(Refused::Wasi(e)) => Err(e as _),
            };
            logged(ctx.id(), started, outcome);
            let response = response(result.map_err(|e| match e {
                Refused::Policy(e) => error_code(e),
                Refused::Wasi(e) => e,
            })?)?;
            let done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// Why a request was not answered.
enum Refused {
    /// By the policy or our client: [`error_code`] tells the guest.
    Policy(HttpError),
    /// As wasi:http says it: a request body that failed or was too large.
    Wasi(Error),
}

/// Sends `request` through `outbound`: the body read from the guest up to
/// the size cap responses have too, the rest as the `http` import does it.
async fn forward(
    outbound: &crate::outbound::Outbound,
    in_flight: &tokio::sync::Semaphore,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    operator: Duration,
) -> Result<HttpResponse, Refused> {
    let (parts, mut body) = request.into_parts();
    let method = match parts.method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::PATCH => Method::Patch,
        http::Method::DELETE => Method::Delete,
        _ => {
            return Err(Refused::Policy(HttpError::Denied(format!(
                "method {} is not allowed (GET, HEAD, POST, PUT, PATCH, DELETE are)",
                parts.method
            ))));
        }
    };
    let limits = outbound.limits();
    // One deadline for the whole exchange, waiting for a turn and reading
    // the body included: the operator's limit (longer once the call
    // deferred its reply), or the guest's if shorter.
    let limit = limit(options, operator);
    let deadline = tokio::time::Instant::now() + limit;
    let timed_out = || Refused::Policy(HttpError::Timeout);
    let _turn = tokio::time::timeout_at(deadline, in_flight.acquire())
        .await
        .map_err(|_| timed_out())?
        .map_err(|_| timed_out())?;
    let mut sent = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(Refused::Wasi)?.into_data() {
                if sent.len() + data.len() > limits.max_body {
                    return Err(Refused::Wasi(Error::HttpRequestBodySize(Some(
                        limits.max_body as u64,
                    ))));
                }
                sent.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(Err(timed_out()))?;
    let request = HttpRequest {
        method,
        url: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: (!sent.is_empty() || method_has_body(method)).then_some(sent),
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    outbound
        .send_once(request, left)
        .await
        .map_err(Refused::Policy)
}

fn method_has_body(method: Method) -> bool {
    matches!(method, Method::Post | Method::Put | Method::Patch)
}

/// The time one exchange may take: the operator's limit, or the guest's
/// own ([`within`]) if shorter.
fn limit(options: Option<RequestOptions>, operator: Duration) -> Duration {
    within(options).map_or(operator, |guest| guest.min(operator))
}

/// The time the guest allows itself (connect plus first byte), if it set
/// any.
fn within(options: Option<RequestOptions>) -> Option<Duration> {
    let o = options?;
    match (o.connect_timeout, o.first_byte_timeout) {
        (None, None) => None,
        (connect, first) => Some(connect.unwrap_or_default() + first.unwrap_or_default()),
    }
}

/// The wasi:http error code for a refusal or failure.
fn error_code(e: HttpError) -> Error {
    match e {
        HttpError::InvalidUrl(_) => Error::HttpRequestUriInvalid,
        HttpError::Denied(_) => Error::HttpRequestDenied,
        HttpError::Timeout => Error::HttpResponseTimeout,
        HttpError::TooLarge => Error::HttpResponseBodySize(None),
        HttpError::Transport(why) => Error::InternalError(Some(why)),
    }
}

/// The guest's view of a response read in full.
fn response(r: HttpResponse) -> wasmtime_wasi_http::Result<http::Response<WasiBody>> {
    let mut builder = http::Response::builder().status(r.status);
    for (name, value) in &r.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(r.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder
        .body(body)
        .map_err(|e| Error::InternalError(Some(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_an_error_code() {
        let cases = [
            (HttpError::Denied("x".into()), "HttpRequestDenied"),
            (HttpError::InvalidUrl("x".into()), "HttpRequestUriInvalid"),
            (HttpError::Timeout, "HttpResponseTimeout"),
            (HttpError::TooLarge, "HttpResponseBodySize"),
            (HttpError::Transport("refused".into()), "InternalError"),
        ];
        for (e, code) in cases {
            let got = format!("{:?}", error_code(e));
            assert!(got.starts_with(code), "{got}");
        }
    }

    #[test]
    fn a_guest_timeout_only_shortens() {
        let operator = Duration::from_secs(3);
        assert_eq!(limit(None, operator), operator);
        assert_eq!(limit(Some(RequestOptions::default()), operator), operator);
        let ms = |n| Some(Duration::from_millis(n));
        let options = |connect, first_byte| RequestOptions {
            connect_timeout: connect,
            first_byte_timeout: first_byte,
            between_bytes_timeout: ms(1),
        };
        // Connect plus first byte, when shorter than the operator's.
        assert_eq!(
            limit(Some(options(ms(200), ms(300))), operator),
            Duration::from_millis(500)
        );
        assert_eq!(
            limit(Some(options(None, ms(300))), operator),
            Duration::from_millis(300)
        );
        // Never longer.
        assert_eq!(limit(Some(options(ms(60_000), None)), operator), operator);
    }
}
