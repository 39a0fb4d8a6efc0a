//! The HTTP server loop: axum's router on hyper, with the limits a daemon facing untrusted
//! clients needs and `axum::serve` does not set — a deadline for request headers (a slow
//! client cannot hold a connection open by trickling them), a header size cap (431 above
//! it), and a cap on open connections. HTTP/1.1 only unless `[server] http2` asks for
//! cleartext HTTP/2 too; then a connection must make its first request within the header
//! read timeout and is closed once idle for `idle_timeout`, so idle sockets cannot hold
//! the connection slots.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// Also serve cleartext HTTP/2; its connections are then watched for idleness.
    pub http2: bool,
    pub idle_timeout: Duration,
}

impl From<&crate::config::ServerConfig> for Limits {
    fn from(server: &crate::config::ServerConfig) -> Self {
        Limits {
            header_read_timeout: server.header_read_timeout,
            max_header_bytes: server.max_header_bytes,
            max_connections: server.max_connections,
            http2: server.http2,
            idle_timeout: server.idle_timeout,
        }
    }
}

/// Serves until `stop`, then stops accepting and waits for open connections to finish
/// (the caller bounds that wait).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    if limits.http2 {
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32);
    } else {
        builder = builder.http1_only();
    }
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        // Responses are often small streamed chunks (SSE, wait): without TCP_NODELAY,
        // Nagle and delayed ACKs add ~40 ms to each.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
        let activity = limits.http2.then(|| Arc::new(Activity::new()));
        let tracked = activity.clone();
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|request: hyper::Request<Incoming>| request.map(Body::new))
                .map_response(move |response: axum::response::Response| match &tracked {
                    Some(activity) => activity.track(response),
                    None => response,
                }),
        );
        // No upgrades are served (no route switches protocols), and only this variant
        // honours `http1_only`.
        let connection = builder
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let stop = stop.clone();
        let limits = limits.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            let idle = async {
                match &activity {
                    Some(activity) => activity.idle(&limits).await,
                    None => std::future::pending().await,
                }
            };
            let mut idle = pin!(idle);
            let mut closing = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.cancelled(), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = idle.as_mut(), if !closing => {
                        tracing::debug!("closing an idle HTTP connection");
                        connection.as_mut().graceful_shutdown();
                        // Nothing is in flight: a peer that does not let go is cut off.
                        let _ = tokio::time::timeout(Duration::from_secs(1), connection.as_mut()).await;
                        break;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// What a connection is doing, for the idle check of multiplexed (HTTP/2) connections,
/// whose streams hyper does not time out: requests (with their response bodies) in
/// flight, and when the last one ended.
struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `born` when a request last ended.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    /// Counts the response as in flight until its body is done or dropped (a stream
    /// lasts as long as its run).
    fn track(self: &Arc<Self>, response: axum::response::Response) -> axum::response::Response {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let done = InFlight(self.clone());
        response.map(move |body| {
            Body::new(body.map_frame(move |frame| {
                let _ = &done;
                frame
            }))
        })
    }

    /// Resolves once the connection has had nothing in flight for the idle timeout, or
    /// made no request within the header read timeout of opening.
    async fn idle(&self, limits: &Limits) {
        let mut deadline = self.born + limits.header_read_timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                deadline = Instant::now() + limits.idle_timeout;
                continue;
            }
            let first = self.requests.load(Ordering::Relaxed) == 0;
            let quiet_since =
                self.born + Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
            let due = if first {
                self.born + limits.header_read_timeout
            } else {
                quiet_since + limits.idle_timeout
            };
            if Instant::now() >= due {
                return;
            }
            deadline = due;
        }
    }
}

/// Ends one request's time in flight when its response body is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.born.elapsed().as_millis() as u64;
        activity.last_end_ms.store(now, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
