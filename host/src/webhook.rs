//! The HTTP edge: Twilio's webhook (`POST /bot`), `GET /healthz`,
//! `GET /plugins` and `POST /plugins/reload`. Parses the form leniently, checks the signature, hands
//! the message to dispatch and answers TwiML. Bad input gets a 4xx with a
//! short reason; nothing a request does yields a 5xx.

use crate::config::Secret;
use crate::dispatch::Dispatcher;
use crate::message::Inbound;
use crate::{signature, twiml};
use axum::extract::{ConnectInfo, DefaultBodyLimit, OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Everything the handlers need.
pub struct AppState {
    pub dispatcher: Dispatcher,
    pub auth: Option<Auth>,
}

/// Signature checking: the Auth Token and, when set, the public base URL.
pub struct Auth {
    pub token: Secret,
    pub public_url: Option<String>,
}

/// The router, with `max_body` as the request body limit.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/bot", post(bot))
        .route("/healthz", get(healthz))
        .route("/plugins", get(plugins))
        .route("/plugins/reload", post(reload))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("expected Content-Type: application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("missing X-Twilio-Signature")]
    MissingSignature,
    #[error("invalid X-Twilio-Signature")]
    BadSignature,
    #[error(
        "reloading needs a request from this machine, or `Authorization: Bearer <auth token>` \
         when TWILIO_AUTH_TOKEN is set"
    )]
    ReloadForbidden,
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = match self {
            WebhookError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::MissingSignature
            | WebhookError::BadSignature
            | WebhookError::ReloadForbidden => StatusCode::FORBIDDEN,
        };
        (status, format!("{self}\n")).into_response()
    }
}

async fn bot(
    State(state): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let started = Instant::now();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(WebhookError::UnsupportedMediaType);
    }
    // Lenient: every pair is kept, repeated names included; bad escapes
    // and invalid UTF-8 are decoded lossily rather than refused.
    let params: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();

    if let Some(auth) = &state.auth {
        let given = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingSignature)?;
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = match &auth.public_url {
            Some(base) => format!("{base}{path_and_query}"),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}{path_and_query}")
            }
        };
        if !signature::verify(&auth.token.0, &url, &params, given) {
            tracing::warn!(
                url,
                "request refused: signature does not match (behind a proxy or tunnel, set \
                 WASMBOT_PUBLIC_URL to the URL Twilio calls)"
            );
            return Err(WebhookError::BadSignature);
        }
    }

    let msg = Inbound::from_params(params);
    let sid = msg.message_sid.clone();
    state.dispatcher.registry().wait_ready().await;
    let answer = state.dispatcher.dispatch(msg).await;
    let xml = twiml::render(&answer.messages);
    tracing::info!(
        sid,
        answered = ?answer.answered,
        failed = ?answer.failed.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        messages = answer.messages.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "message"
    );
    Ok(([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], xml).into_response())
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.dispatcher.registry().is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading plugins\n").into_response()
    }
}

#[derive(serde::Serialize)]
struct PluginView<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    priority: i32,
    file: &'a str,
    sha256: &'a str,
    size: u64,
    /// Seconds since the Unix epoch.
    loaded_at: u64,
    settings: &'a [crate::runtime::Setting],
    allowed_hosts: Vec<&'a str>,
    #[serde(flatten)]
    stats: crate::registry::StatsView,
}

/// Rescans the plugins folder now and answers like `GET /plugins`.
/// Allowed from loopback when no Auth Token is set; with one, only with
/// `Authorization: Bearer <token>` (a tunnel also connects from loopback).
async fn reload(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Result<Response, WebhookError> {
    let allowed = match &state.auth {
        Some(auth) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                subtle::ConstantTimeEq::ct_eq(given.as_bytes(), auth.token.0.as_bytes()).into()
            }),
        None => req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback()),
    };
    if !allowed {
        return Err(WebhookError::ReloadForbidden);
    }
    tracing::info!("reload requested over HTTP: rescanning the plugins folder");
    state.dispatcher.registry().scan().await;
    Ok(plugins(State(state)).await)
}

async fn plugins(State(state): State<Arc<AppState>>) -> Response {
    let registry = state.dispatcher.registry();
    let snapshot = registry.snapshot();
    let plugins: Vec<PluginView<'_>> = snapshot
        .plugins
        .iter()
        .map(|l| {
            let info = l.plugin.info();
            PluginView {
                name: &info.name,
                version: &info.version,
                description: &info.description,
                priority: info.priority,
                file: &l.file,
                sha256: &l.sha256,
                size: l.size,
                loaded_at: l
                    .loaded_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
                settings: &info.settings,
                allowed_hosts: l.plugin.allowed_hosts().collect(),
                stats: l.stats.view(),
            }
        })
        .collect();
    Json(serde_json::json!({
        "ready": registry.is_ready(),
        "dir": registry.dir().display().to_string(),
        "plugins": plugins,
        "errors": snapshot.errors,
        "warnings": snapshot.warnings,
        "cache": registry.runtime().cache_stats(),
        "now": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
    }))
    .into_response()
}
