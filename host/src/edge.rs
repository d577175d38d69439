//! The HTTP edge below the router: accepts connections and serves them
//! with hyper's HTTP/1 connection builder and hyper-util's Tokio timer,
//! I/O adapter, service adapter and graceful shutdown (the pattern of
//! axum's `serve-with-hyper` example). `axum::serve` sets no timer, so a
//! client that never finishes its headers, or an idle keep-alive
//! connection, was held forever; here every connection is bounded:
//!
//! - **Headers within `header_timeout`** (default 10 s). hyper starts this
//!   timer whenever a connection waits for a request head, so it is also
//!   the idle keep-alive timeout: half-open and idle connections are closed
//!   by the server.
//! - **At most `max_connections` at once.** A connection past the cap is
//!   refused gracefully: answered `503` with `Retry-After` and closed (a
//!   few at a time, with a short header timeout of their own; past that
//!   it is closed at once), so the process never runs out of descriptors
//!   and a flood of idle sockets cannot starve real webhooks for longer
//!   than the header timeout.
//! - **Bodies** are timed (3 s) and read under a budget of their own by the
//!   webhook handler ([`crate::webhook`]); before authentication, this
//!   connection cap is what bounds how many clients can hold anything.
//! - **Shutdown** stops accepting, lets requests in flight finish, closes
//!   idle connections, and returns once no request is being answered
//!   (connections still waiting for a request head are dropped), or after
//!   `shutdown_grace` at the latest.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Bounds on connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request's headers; also the idle keep-alive time.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            shutdown_grace: Duration::from_secs(15),
        }
    }
}

/// Connections past the cap that are being answered 503 at once; past
/// this, an extra connection is closed without an answer.
const REFUSING: usize = 64;
/// Time a refused connection gets to send its request head.
const REFUSE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Raises the soft limit of open files to the hard limit (as Go's runtime
/// and nginx do) and returns the soft limit now in force (`u64::MAX`:
/// unlimited).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Half the open-files limit (the other half is for plugins' outbound
/// connections, plugin files and the cache), at most 10,000, at least 16.
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(16, 10_000)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight (for at most `limits.shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut refuse = http1::Builder::new();
    refuse
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSE_HEADER_TIMEOUT)
        .keep_alive(false);
    let active = Arc::new(AtomicUsize::new(0));
    let mut warned: Option<Instant> = None;
    let mut refused = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of descriptors or memory: the pending
                        // connections wait in the backlog meanwhile.
                        tracing::error!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                let service = Counted {
                    inner: TowerToHyperService::new(router.clone()),
                    active: active.clone(),
                };
                let conn = http.serve_connection(io, service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Err(_) => {
                refused += 1;
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        refused,
                        "connections refused: max_connections are open"
                    );
                    warned = Some(Instant::now());
                    refused = 0;
                }
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    let conn = refuse.serve_connection(io, hyper::service::service_fn(busy));
                    tokio::spawn(async move {
                        let _ = conn.await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    // Done when every connection has closed, or when no request is being
    // answered (connections still waiting for a request head have nothing
    // to lose), or at the grace limit.
    let answered = async {
        loop {
            if active.load(Ordering::Acquire) == 0 {
                // Let the last responses reach the wire.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if active.load(Ordering::Acquire) == 0 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = graceful.shutdown() => {}
        () = answered => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                "shutdown: requests still open after {:?} are dropped",
                limits.shutdown_grace
            );
        }
    }
    Ok(())
}

/// A service that counts the requests it is answering.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    active: Arc<AtomicUsize>,
}

/// Holds one count of [`Counted`] while a request is answered.
struct Answering(Arc<AtomicUsize>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: R) -> Self::Future {
        self.active.fetch_add(1, Ordering::AcqRel);
        let answering = Answering(self.active.clone());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let _answering = answering;
            answer.await
        })
    }
}

/// The answer on a connection past the cap.
async fn busy(
    _: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<String>, std::convert::Infallible> {
    let mut response = hyper::Response::new("too many connections; retry shortly\n".to_owned());
    *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    Ok(response)
}

/// Errors of one connection that failed while being accepted; the
/// listener itself is fine.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}
