//! Accepting connections for a listener: at most `max_connections` open at once (more wait in
//! the kernel's listen backlog, so the server never runs out of file descriptors), a deadline
//! for every request head (a client that sends its headers slowly, or leaves a kept-alive
//! connection idle, is closed), and a graceful drain that lets requests in flight finish.
//!
//! This replaces `axum::serve`, which sets no header deadline and accepts without bound: a
//! slowloris client could otherwise hold connections open forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::policy::compile::defaults;

/// How many connections a listener keeps open, and how long a request head may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Longest wait for a request's head, from the moment the server reads for it (so an
    /// idle kept-alive connection is closed after this long too).
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: defaults::MAX_CONNECTIONS,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` until `stop` completes, then stops accepting and waits for
/// every open connection to finish its requests in flight (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed.
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait, go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    async fn start(limits: ConnectionLimits) -> (std::net::SocketAddr, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    async fn get_root(addr: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_closed() {
        let limits = ConnectionLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_millis(200),
        };
        let (addr, _stop) = start(limits).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        // The one connection slot is taken; the server must close the slow client to serve
        // the next one.
        let reply = tokio::time::timeout(Duration::from_secs(10), get_root(addr))
            .await
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(read.is_err() || !String::from_utf8_lossy(&rest).contains(" 200 "));
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_their_turn() {
        let limits = ConnectionLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(30),
        };
        let (addr, _stop) = start(limits).await;
        let replies = futures::future::join_all((0..8).map(|_| get_root(addr))).await;
        assert!(
            replies.iter().all(|r| r.starts_with("HTTP/1.1 200")),
            "{replies:?}"
        );
    }

    #[tokio::test]
    async fn stopping_refuses_new_connections() {
        let (addr, stop) = start(ConnectionLimits::default()).await;
        assert!(get_root(addr).await.starts_with("HTTP/1.1 200"));
        stop.send(()).unwrap();
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "the listener is closed once stopped");
    }
}
