//! The admin endpoints: `GET /plugins` (what is loaded, what each plugin
//! asked for and was granted, what failed and why),
//! `POST /plugins/reload` (rescan the folder now) and `GET /metrics`
//! (Prometheus).
//!
//! They answer to the operator's admin credential, `WASMBOT_ADMIN_TOKEN`,
//! as `Authorization: Bearer <token>` — never to the account's Auth Token,
//! and never to a peer address (behind a tunnel every request comes from
//! this machine). Whenever webhook authentication is configured they need
//! it, and are off without one; a bot without any authentication (local
//! development) leaves them open unless a token is set — but only to
//! requests for `localhost`, `127.0.0.1` or `[::1]`, so that a web page
//! rebinding its name to this machine, or a tunnel, gets nothing.

use crate::config::Secret;
use crate::policy::{GrantLine, HostGrant, HostRequest, Source};
use crate::webhook::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who may use the admin endpoints.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// The admin credential, if the operator set one.
    pub token: Option<Secret>,
    /// Whether a credential is required (webhook auth is configured, or a
    /// token is set).
    pub required: bool,
}

impl AdminAuth {
    pub fn new(token: Option<Secret>, webhook_auth: bool) -> Self {
        AdminAuth {
            required: webhook_auth || token.is_some(),
            token,
        }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), AdminError> {
        if !self.required {
            // Open for local development, but only under a local name (a
            // web page that rebinds its own name to 127.0.0.1, or a tunnel
            // that passes its public name, does not get in) and never from
            // another site's page (a cross-site form POST carries its
            // `Origin`).
            let local_host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(is_local_host);
            let from_elsewhere = headers
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .is_some_and(|origin| {
                    let host = origin.split_once("://").map_or(origin, |(_, h)| h);
                    !is_local_host(host)
                })
                || headers
                    .get("sec-fetch-site")
                    .is_some_and(|s| s.as_bytes().eq_ignore_ascii_case(b"cross-site"));
            return if local_host && !from_elsewhere {
                Ok(())
            } else {
                Err(AdminError::NotLocal)
            };
        }
        let Some(token) = &self.token else {
            return Err(AdminError::Disabled);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AdminError::Unauthorized)?;
        if subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.0.as_bytes()).into() {
            Ok(())
        } else {
            Err(AdminError::Unauthorized)
        }
    }
}

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("needs `Authorization: Bearer <WASMBOT_ADMIN_TOKEN>`")]
    Unauthorized,
    #[error(
        "the admin endpoints are off: webhook authentication is configured but \
         WASMBOT_ADMIN_TOKEN is not set"
    )]
    Disabled,
    #[error(
        "without WASMBOT_ADMIN_TOKEN the admin endpoints answer only requests for localhost, \
         127.0.0.1 or [::1] that come from no other site"
    )]
    NotLocal,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{self}\n"),
            )
                .into_response(),
            AdminError::Disabled | AdminError::NotLocal => {
                (StatusCode::FORBIDDEN, format!("{self}\n")).into_response()
            }
        }
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1"
    )
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/plugins", get(plugins))
        .route("/plugins/reload", post(reload))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Prometheus's scrape, behind the same credential (Prometheus sends it
/// with `authorization: {credentials: …}` or `bearer_token`).
async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    state.admin.check(&headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.dispatcher.metrics.render(),
    )
        .into_response())
}

/// Rescans the plugins folder and answers like `GET /plugins`. Requests
/// that arrive during a scan share the next one.
async fn reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    state.admin.check(&headers)?;
    tracing::info!("reload requested over HTTP: rescanning the plugins folder");
    state.dispatcher.registry().scan(true).await;
    Ok(listing(&state))
}

async fn plugins(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    state.admin.check(&headers)?;
    Ok(listing(&state))
}

/// One loaded plugin as `GET /plugins` shows it.
#[derive(serde::Serialize)]
struct PluginView<'a> {
    /// Its identity: the file name without `.wasm`.
    id: &'a str,
    /// What it calls itself.
    name: &'a str,
    version: &'a str,
    description: &'a str,
    priority: i32,
    /// The contract version it was built for (`0.2.x`, `0.1.x`).
    contract: &'static str,
    /// The messages it is called for.
    triggers: &'a [crate::trigger::Declared],
    file: &'a str,
    sha256: &'a str,
    size: u64,
    /// Seconds since the Unix epoch.
    loaded_at: u64,
    /// The keys it declares, with their defaults.
    settings: &'a [crate::runtime::Setting],
    /// Where each key the operator set comes from (never the values).
    configured: &'a BTreeMap<String, Source>,
    /// Hosts it may reach, and who granted each.
    hosts: &'a [HostGrant],
    /// Hosts its declared URLs ask for, granted or not.
    requested: &'a [HostRequest],
    /// The configuration that would grant what it asks for and lacks.
    to_grant: Option<GrantLine>,
    /// Names of the environment variables granted.
    env: Vec<&'a str>,
    /// The folder granted, read-only at `/data`.
    dir: Option<&'a std::path::Path>,
    /// Linear memory its instances hold now, in bytes.
    memory_in_use: usize,
    #[serde(flatten)]
    stats: crate::registry::StatsView,
}

fn listing(state: &AppState) -> Response {
    let registry = state.dispatcher.registry();
    let snapshot = registry.snapshot();
    let plugins: Vec<PluginView<'_>> = snapshot
        .plugins
        .iter()
        .map(|l| {
            let info = l.plugin.info();
            let grant = l.plugin.grant();
            PluginView {
                id: l.id.as_str(),
                name: &info.name,
                version: &info.version,
                description: &info.description,
                priority: info.priority,
                contract: l.plugin.contract(),
                triggers: &info.triggers,
                file: &l.file,
                sha256: &l.sha256,
                size: l.size,
                loaded_at: l
                    .loaded_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
                settings: &info.settings,
                configured: &grant.operator,
                hosts: &grant.hosts,
                requested: &grant.requests,
                to_grant: grant.grant_line(),
                env: grant.env_names(),
                dir: grant.dir.as_deref(),
                memory_in_use: l.plugin.memory_in_use(),
                stats: l.stats.view(),
            }
        })
        .collect();
    let runtime = registry.runtime();
    Json(serde_json::json!({
        "ready": registry.is_ready(),
        "dir": registry.dir().display().to_string(),
        "plugins": plugins,
        "errors": snapshot.errors,
        "warnings": snapshot.warnings,
        "cache": runtime.cache_stats(),
        "memory": runtime.memory_stats(),
        "state": runtime.state().map(|store| serde_json::json!({
            "store": store.location().to_string(),
            "max_keys": store.limits().max_keys,
            "max_bytes": store.limits().max_bytes,
            "max_value": store.limits().max_value,
            "max_ops": store.limits().max_ops,
        })),
        "now": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_only() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert!(is_local_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1.evil.example",
            "bot.ngrok.app",
            "10.0.0.5:5000",
            "[::2]:5000",
            "",
        ] {
            assert!(!is_local_host(host), "{host}");
        }
    }
}
