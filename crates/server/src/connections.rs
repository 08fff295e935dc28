//! Connections: accepting them, bounding how many are open at once and how long each may
//! stall, and serving HTTP/1.1 on each with hyper.
//!
//! Every connection must send a request's headers within the header timeout, counted from
//! when it opens or finishes its previous request, so idle keep-alive sockets and slow
//! header senders are closed. A response the client does not read for the write timeout
//! closes the connection. Beyond the connection cap a new connection is answered `503` with a
//! JSON body and closed at once. The process's open-file limit is raised to its hard limit
//! at start, and the cap is kept below it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The most connections open at once (kept below the open-file limit).
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when it
    /// opens or its previous answer was sent (so also how long a connection may idle).
    pub header_timeout: Duration,
    /// How long a request body or an answer may stall: a body that sends nothing, or a
    /// client that reads nothing, for this long loses its connection.
    pub stall_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// File descriptors kept free for everything but connections (the database, blob files,
/// temporary upload files): this many, or half the limit if it is small.
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit to the hard limit and returns the limit now in force
/// (`None` where it cannot be read).
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` everywhere.
#[allow(unsafe_code)] // The two libc calls; see the SAFETY note.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                tracing::debug!(
                    from = limit.rlim_cur,
                    to = limit.rlim_max,
                    "raised the open-file limit"
                );
                return Some(limit.rlim_max as u64);
            }
            tracing::warn!(
                limit = limit.rlim_cur,
                "cannot raise the open-file limit to its hard limit"
            );
        }
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// The connection cap that fits under `open_files`: `wanted`, or fewer if the limit leaves
/// no room for them.
pub fn fitting_cap(wanted: usize, open_files: Option<u64>) -> usize {
    match open_files {
        None => wanted,
        Some(files) => {
            let room = files.saturating_sub(RESERVED_FILES.min(files / 2)).max(16);
            wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
    }
}

/// The answer to a connection beyond the cap.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 92\r\n\r\n\
{\"status\":503,\"message\":\"the registry has too many open connections; try again in a moment\"}";

/// Logs a limit being hit at most once per second per kind, with how many times it was hit.
#[derive(Default)]
pub(crate) struct LimitLog {
    last_second: AtomicU64,
    count: AtomicU64,
}

impl LimitLog {
    /// A log that has seen nothing.
    pub(crate) const fn new() -> Self {
        LimitLog {
            last_second: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Notes that the limit `limit` was hit, logging `what` unless it was logged this second.
    pub(crate) fn hit(&self, what: &'static str, limit: u64) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_second.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(limit, total = count, "{what}");
        }
    }
}

/// Serves HTTP/1.1 with `service` on every connection `listener` accepts, within `limits`,
/// until `shutdown` resolves; then stops accepting, lets the requests in flight finish (up
/// to `grace`), and returns.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) where
    S: tower_service::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let over_cap = Arc::new(LimitLog::default());
    let accept_failed = LimitLog::default();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (or another passing failure): wait a moment
                    // rather than spin; connections that finish free descriptors.
                    accept_failed.hit(
                        "cannot accept connections (open-file limit?)",
                        limits.max_connections as u64,
                    );
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            over_cap.hit(
                "connection refused: too many open connections (--max-connections)",
                limits.max_connections as u64,
            );
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StallGuard::new(stream, limits.stall_timeout));
        let service = service.clone();
        let hyper_service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut service = service.clone();
                tower_service::Service::call(&mut service, request.map(axum::body::Body::new))
            });
        let connection = graceful.watch(http.serve_connection(io, hyper_service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("requests still in flight after {grace:?}; closing their connections");
        }
    }
}

/// Answers a connection beyond the cap and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(OVER_CAPACITY).await?;
        stream.shutdown().await
    })
    .await;
}

/// A stream whose writes fail once they have made no progress for the stall timeout, and
/// whose reads fail the same way while a write is stalled: a client that stops reading an
/// answer cannot hold its connection (and the task serving it) for ever.
///
/// It also gives hyper's own answers to requests it cannot parse (400, 414, 431, sent with an
/// empty body before any handler runs) a JSON body: see [`parse_error_answer`].
struct StallGuard {
    stream: TcpStream,
    timeout: Duration,
    /// Set while a write waits; cleared by any progress.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// An answer written in place of hyper's, and how much of it is sent.
    replacement: Option<(Vec<u8>, usize)>,
}

/// The JSON answer that replaces hyper's automatic answer to a request it could not parse,
/// if `head` is one: status 400, 414 or 431, no `content-type` (every error answer of cairn's
/// own handlers has one) and nothing after the head. The body carries both error shapes,
/// warg's `status` and `message` and the distribution spec's `errors`, since the path that
/// would tell which API was meant is what could not be read.
fn parse_error_answer(head: &[u8]) -> Option<Vec<u8>> {
    let (status, message) = if head.starts_with(b"HTTP/1.1 400 ") {
        (
            "400 Bad Request",
            "the request could not be parsed as HTTP/1.1",
        )
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        ("414 URI Too Long", "the request's URL is too long")
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            "the request's headers are too large",
        )
    } else {
        return None;
    };
    let head = std::str::from_utf8(head).ok()?;
    let (fields, rest) = head.split_once("\r\n\r\n")?;
    let generated = rest.is_empty()
        && !fields
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("content-type:"));
    if !generated {
        return None;
    }
    let code = &status[..3];
    let body = format!(
        "{{\"status\":{code},\"message\":\"{message}\",\"errors\":[{{\"code\":\"UNKNOWN\",\"message\":\"{message}\"}}]}}"
    );
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl StallGuard {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        StallGuard {
            stream,
            timeout,
            deadline: None,
            replacement: None,
        }
    }

    /// Sends what is left of a replacement answer; ready once it is all sent.
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let Some((bytes, sent)) = &self.replacement else {
                return Poll::Ready(Ok(()));
            };
            if *sent == bytes.len() {
                self.replacement = None;
                return Poll::Ready(Ok(()));
            }
            let rest = bytes[*sent..].to_vec();
            match Pin::new(&mut self.stream).poll_write(cx, &rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    self.deadline = None;
                    if let Some((_, sent)) = &mut self.replacement {
                        *sent += n;
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return self.stalled(cx).map(Err),
            }
        }
    }

    /// Called when a write is pending: fails once it has waited past the timeout.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of the answer for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_result<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain_replacement(cx))?;
        if let Some(answer) = parse_error_answer(buf) {
            self.replacement = Some((answer, 0));
            return Poll::Ready(Ok(buf.len()));
        }
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.write_result(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain_replacement(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            if let Some(answer) = parse_error_answer(only) {
                self.replacement = Some((answer, 0));
                return Poll::Ready(Ok(only.len()));
            }
        }
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.write_result(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.drain_replacement(cx))?;
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.write_result(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.drain_replacement(cx))?;
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.write_result(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_answer_with_a_json_body() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 503);
    }

    #[test]
    fn only_hypers_bodiless_parse_error_answers_are_replaced() {
        let generated = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 12:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(parse_error_answer(generated).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 414);
        assert!(json["errors"][0]["code"].is_string());
        // An answer of cairn's own (it has a content type), a success, or a head with more
        // after it: left alone.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n";
        assert!(parse_error_answer(own).is_none());
        assert!(parse_error_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            parse_error_answer(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\nx").is_none()
        );
    }

    #[test]
    fn the_cap_fits_under_the_open_file_limit() {
        assert_eq!(fitting_cap(4096, None), 4096);
        assert_eq!(fitting_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(
            fitting_cap(4096, Some(1024)),
            1024 - RESERVED_FILES as usize
        );
        assert_eq!(fitting_cap(4096, Some(10)), 16);
    }
}
