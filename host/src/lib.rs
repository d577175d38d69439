//! wasmbot: a Twilio (WhatsApp and SMS) bot server whose behaviours are
//! WebAssembly components. See `ARCHITECTURE.md` for the map.
//!
//! The request path, one module per stage:
//! [`edge`] (connections) → [`webhook`] → [`dispatch`] → [`runtime`] →
//! [`merge`] → [`twiml`], with [`registry`] (loaded plugins) and
//! [`watcher`] (hot reload), [`policy`] (plugin identity and grants),
//! [`outbound`] (plugins' HTTP), [`signature`], [`admin`] and [`config`]
//! beside it.

pub mod admin;
pub mod chat;
pub mod check;
pub mod config;
pub mod deliver;
pub mod dispatch;
pub mod edge;
pub mod error;
pub mod later;
pub mod logsink;
pub mod merge;
pub mod message;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod registry;
pub mod runtime;
pub mod scaffold;
pub mod signature;
pub mod state;
pub mod toolchain;
pub mod trigger;
pub mod twiml;
pub mod watcher;
pub mod webhook;

use anyhow::Context as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A server built from a [`config::Config`]: the router plus the registry
/// behind it, for tests and embedders.
pub struct Server {
    pub state: Arc<webhook::AppState>,
    pub registry: Arc<registry::Registry>,
    edge: edge::Limits,
    watch: bool,
}

/// Worker threads (`edge`): one per CPU unless the operator says.
fn workers(config: &config::Config) -> usize {
    config.workers.unwrap_or_else(edge::default_workers)
}

impl Server {
    /// The WebAssembly runtime `config` asks for.
    pub fn runtime(config: &config::Config) -> anyhow::Result<runtime::Runtime> {
        let runtime = runtime::Runtime::new(
            runtime::Limits {
                memory: config.plugin_memory,
                memory_budget: config.memory_budget,
                pool_instances: config.pool_instances(),
                http: outbound::Limits {
                    timeout: config.http_timeout,
                    max_body: config.http_max_body,
                    max_requests: config.http_max_requests,
                    proxy: config.outbound_proxy.clone(),
                    clients: workers(config),
                    ..outbound::Limits::default()
                },
                ..runtime::Limits::default()
            },
            config.cache_dir.as_deref(),
        )
        .context("starting the WebAssembly runtime")?;
        let store = match state::Store::open(&config.state, config.state_limits.clone()) {
            Ok(store) => store,
            Err(e) if !config.state_required => {
                tracing::warn!(
                    state = %config.state,
                    "plugin state is off: the default store cannot be opened ({e}); set \
                     WASMBOT_STATE to a file or redis:// URL"
                );
                state::Store::open(&state::Location::Off, config.state_limits.clone())?
            }
            Err(e) => {
                return Err(e).with_context(|| format!("opening plugin state ({})", config.state));
            }
        };
        Ok(runtime.with_state(Arc::new(store)))
    }

    /// Builds the runtime and an empty registry; plugins load on
    /// [`Server::run`] or [`Server::start_plugins`].
    pub fn new(config: &config::Config) -> anyhow::Result<Self> {
        let runtime = Self::runtime(config)?;
        let mut replay = webhook::Replay::new(config.idempotency_cache);
        if let Some(store) = runtime.state() {
            replay = replay.shared(store.clone());
        }
        let registry = Arc::new(registry::Registry::new(
            Arc::new(runtime),
            config.plugins_dir.clone(),
            Arc::new(config.policy()?),
            registry::Limits {
                max_plugin_size: config.max_plugin_size,
                max_plugins: config.max_plugins,
            },
        ));
        let mut dispatcher = dispatch::Dispatcher::new(
            registry.clone(),
            config.plugin_timeout,
            config.apology.clone(),
        );
        dispatcher.disable_after = config.disable_after_failures;
        if let Some(credentials) = &config.twilio_api {
            let twilio = deliver::Twilio::new(&config.twilio_api_url, credentials.clone())
                .map_err(|e| anyhow::anyhow!("Twilio Messages API: {e}"))?;
            let mut replies = later::Later::new(twilio, config.later.clone());
            if let Some(store) = registry.runtime().state() {
                replies = replies.with_store(store.clone());
            }
            dispatcher.later = Some(Arc::new(replies));
        }
        let auth = config.webhook_auth().then(|| webhook::Auth {
            token: config.auth_token.clone(),
            shared_keys: config.shared_keys.clone(),
            public_url: config.public_url.clone(),
            trust_forwarded: config.trust_forwarded,
        });
        if config.plugin_timeout > Duration::from_secs(10) {
            tracing::warn!(
                timeout = ?config.plugin_timeout,
                "the plugin time limit is above 10 s; Twilio gives up on a reply after 15 s"
            );
        }
        Ok(Server {
            state: Arc::new(webhook::AppState {
                dispatcher,
                auth,
                admin: admin::AdminAuth::new(config.admin_token.clone(), config.webhook_auth()),
                reading: Arc::new(tokio::sync::Semaphore::new(
                    config.max_in_flight.saturating_mul(4),
                )),
                in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
                replay: Arc::new(replay),
                max_body: config.max_request_body,
            }),
            registry,
            edge: edge::Limits {
                header_timeout: config.header_timeout,
                max_connections: config
                    .max_connections
                    .unwrap_or_else(edge::default_max_connections),
                // A message takes at most the body time and the plugins' time.
                shutdown_grace: webhook::BODY_TIMEOUT
                    + config.plugin_timeout
                    + Duration::from_secs(5),
                workers: workers(config),
            },
            watch: config.watch,
        })
    }

    pub fn router(&self) -> axum::Router {
        webhook::router(self.state.clone())
    }

    /// Loads the plugins and keeps them in step with the folder (the
    /// watcher unless `--no-watch`, and SIGHUP) for as long as the returned
    /// guard lives.
    pub fn start_plugins(&self) -> anyhow::Result<Background> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Watch before the first scan, so no change falls between the two.
        let watcher = if self.watch {
            match watcher::watch(self.registry.dir(), tx.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(
                        dir = %self.registry.dir().display(),
                        "cannot watch the plugins folder ({e}); changes need SIGHUP or \
                         POST /plugins/reload"
                    );
                    None
                }
            }
        } else {
            None
        };
        let _ = tx.send(watcher::Reload::All);
        let mut tasks = vec![tokio::spawn(watcher::reload_loop(
            self.registry.clone(),
            rx,
            tx.clone(),
        ))];
        if let Some(later) = &self.state.dispatcher.later {
            // Replies left by a replica (or a process) that stopped.
            tasks.push(tokio::spawn(later.clone().keep()));
        }
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
            tasks.push(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: rescanning the plugins folder");
                    if tx.send(watcher::Reload::Rescan).is_err() {
                        break;
                    }
                }
            }));
        }
        Ok(Background {
            _watcher: watcher,
            tasks,
        })
    }

    /// The connection limits the server applies.
    pub fn edge_limits(&self) -> &edge::Limits {
        &self.edge
    }

    /// Loads the plugins, keeps them in step with the folder and serves on
    /// `listener` until `shutdown` resolves; messages in flight then finish
    /// before this returns.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        if self.state.auth.is_none() {
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: requests are NOT authenticated; anyone who \
                 knows the URL can talk to the bot (and use GET /plugins and \
                 POST /plugins/reload unless WASMBOT_ADMIN_TOKEN is set)"
            );
        } else if self.state.admin.token.is_none() {
            tracing::info!(
                "WASMBOT_ADMIN_TOKEN is not set: GET /plugins and POST /plugins/reload are off"
            );
        }
        if let Some(store) = self.registry.runtime().state() {
            tracing::info!(state = %store.location(), "plugin state");
        }
        let _background = self.start_plugins()?;
        edge::serve(listener, self.router(), self.edge.clone(), shutdown)
            .await
            .context("serving HTTP")
    }
}

/// The plugin loading and watching behind a [`Server`]; stops when dropped.
pub struct Background {
    _watcher: Option<watcher::Watcher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; finishing messages in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every plugin has an HTTP client per worker thread (see `outbound`):
    /// the runtime gets as many as the edge starts workers, whether the
    /// operator set `workers` or left it to the CPUs.
    #[tokio::test]
    async fn plugins_get_an_http_client_per_worker() {
        for workers in [None, Some(1), Some(3)] {
            let config = config::Config {
                workers,
                cache_dir: None,
                ..config::Config::default()
            };
            let server = Server::new(&config).unwrap();
            let clients = server.registry.runtime().limits().http.clients;
            assert_eq!(clients, server.edge.workers, "workers {workers:?}");
            if let Some(n) = workers {
                assert_eq!(clients, n);
            }
        }
    }
}
