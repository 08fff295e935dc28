//! The server's metrics, served at `/metrics` in the Prometheus text format (with the
//! `prometheus-client` crate): records accepted, published and rejected (by reason), the
//! records waiting for the sequencer, the checkpoint's age and the log's length, HTTP requests
//! and their latency by route and status, the bytes of content kept and what sharing saves, and
//! whether this node is the sequencer.
//!
//! Counters are counted where things happen; the figures about the state are read when
//! `/metrics` is asked for. Routes are named by their pattern (`/v2/{name}/blobs/{digest}`),
//! never by the path asked for, so that the number of series stays bounded whatever clients
//! send.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Why a record was rejected, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Its bytes do not decode as a record.
    Undecodable,
    /// It is not valid against its log (signature, order, permissions, versions).
    Invalid,
    /// The content it releases was refused (not WebAssembly, too large).
    ContentRefused,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::Undecodable => "undecodable",
            Rejection::Invalid => "invalid",
            Rejection::ContentRefused => "content-refused",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// What `/metrics` reads from the state when asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateFigures {
    /// Records waiting for the sequencer.
    pub pending_records: u64,
    /// The served checkpoint's log length.
    pub log_length: u64,
    /// Seconds since the served checkpoint was made (none before the first).
    pub checkpoint_age_seconds: Option<f64>,
    /// The content kept.
    pub content: cairn_store::ContentTotals,
    /// Whether this node sequences.
    pub sequencer: bool,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Counter,
    published: Counter,
    rejected: Family<ReasonLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pending: Gauge,
    log_length: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
    contents: Gauge,
    content_bytes: Gauge,
    stored_bytes: Gauge,
    saved_bytes: Gauge,
    sequencer: Gauge,
    /// The content totals last read, and when.
    totals: std::sync::Mutex<Option<(std::time::Instant, cairn_store::ContentTotals)>>,
    /// Whether this node holds the sequencer's lease now.
    is_sequencer: std::sync::atomic::AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `cairn_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let accepted = Counter::default();
        let published = Counter::default();
        let rejected = Family::<ReasonLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // 0.5 ms to about 16 s.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 16,
            ))
        });
        let (pending, log_length, contents, content_bytes, stored_bytes, saved_bytes, sequencer) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "records_accepted",
            "Records accepted (signature checked, queued for the sequencer or waiting for content)",
            accepted.clone(),
        );
        registry.register(
            "records_published",
            "Records the sequencer put into the registry log",
            published.clone(),
        );
        registry.register(
            "records_rejected",
            "Records rejected, by reason",
            rejected.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to the answer's head; bodies stream after), by route",
            latency.clone(),
        );
        registry.register(
            "sequencer_pending_records",
            "Records accepted and waiting for the sequencer",
            pending.clone(),
        );
        registry.register(
            "log_length",
            "The registry log's length at the served checkpoint",
            log_length.clone(),
        );
        registry.register(
            "checkpoint_age_seconds",
            "Seconds since the served checkpoint was made",
            checkpoint_age.clone(),
        );
        registry.register(
            "contents",
            "Contents (released files) kept",
            contents.clone(),
        );
        registry.register(
            "content_bytes",
            "Bytes of the contents kept, each file counted whole",
            content_bytes.clone(),
        );
        registry.register(
            "stored_blob_bytes",
            "Bytes of the distinct blobs the contents split into (before compression)",
            stored_bytes.clone(),
        );
        registry.register(
            "sharing_saved_bytes",
            "Bytes the split saves by storing each shared blob once",
            saved_bytes.clone(),
        );
        registry.register(
            "sequencer",
            "1 when this node is the sequencer",
            sequencer.clone(),
        );
        Metrics {
            registry,
            accepted,
            published,
            rejected,
            requests,
            latency,
            pending,
            log_length,
            checkpoint_age,
            contents,
            content_bytes,
            stored_bytes,
            saved_bytes,
            sequencer,
            totals: std::sync::Mutex::new(None),
            is_sequencer: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The content totals read less than `fresh_for` ago, if any.
    pub fn cached_totals(
        &self,
        fresh_for: std::time::Duration,
    ) -> Option<cairn_store::ContentTotals> {
        let totals = self.totals.lock().expect("totals lock");
        totals
            .filter(|(read, _)| read.elapsed() < fresh_for)
            .map(|(_, totals)| totals)
    }

    /// Notes whether this node holds the sequencer's lease.
    pub fn set_sequencer(&self, sequencer: bool) {
        self.is_sequencer
            .store(sequencer, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this node holds the sequencer's lease now.
    pub fn is_sequencer(&self) -> bool {
        self.is_sequencer.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps the content totals just read, for [`Metrics::cached_totals`].
    pub fn keep_totals(&self, totals: cairn_store::ContentTotals) {
        *self.totals.lock().expect("totals lock") = Some((std::time::Instant::now(), totals));
    }

    /// Counts a record accepted.
    pub fn record_accepted(&self) {
        self.accepted.inc();
    }

    /// Counts records published.
    pub fn records_published(&self, count: u64) {
        self.published.inc_by(count);
    }

    /// Counts a record rejected.
    pub fn record_rejected(&self, why: Rejection) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: why.label(),
            })
            .inc();
    }

    /// Counts a request answered with `status` after `seconds`.
    pub fn request(&self, method: &axum::http::Method, path: &str, status: u16, seconds: f64) {
        let route = route_of(path);
        let method = match *method {
            axum::http::Method::GET => "GET",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::POST => "POST",
            axum::http::Method::PUT => "PUT",
            axum::http::Method::PATCH => "PATCH",
            axum::http::Method::DELETE => "DELETE",
            axum::http::Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// The metrics in the Prometheus text format, with the state's figures.
    pub fn render(&self, figures: &StateFigures) -> String {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pending.set(as_i64(figures.pending_records));
        self.log_length.set(as_i64(figures.log_length));
        self.checkpoint_age
            .set(figures.checkpoint_age_seconds.unwrap_or(0.0));
        let content = figures.content;
        self.contents.set(as_i64(content.contents));
        self.content_bytes.set(as_i64(content.content_bytes));
        self.stored_bytes.set(as_i64(content.blob_bytes));
        self.saved_bytes.set(as_i64(
            content.content_bytes.saturating_sub(content.blob_bytes),
        ));
        self.sequencer.set(i64::from(figures.sequencer));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The route pattern `path` falls under: one of a fixed set of names.
pub fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "fetch", "checkpoint"] => "/v1/fetch/checkpoint",
        ["v1", "fetch", "logs"] => "/v1/fetch/logs",
        ["v1", "fetch", "names"] => "/v1/fetch/names",
        ["v1", "package", _, "record"] => "/v1/package/{logId}/record",
        ["v1", "package", _, "record", _] => "/v1/package/{logId}/record/{recordId}",
        ["v1", "package", _, "record", _, "content", ..] => {
            "/v1/package/{logId}/record/{recordId}/content/{digest}"
        }
        ["v1", "package", _, "record", _, "blobs", ..] => {
            "/v1/package/{logId}/record/{recordId}/blobs/{blob}"
        }
        ["v1", "content", _] => "/v1/content/{digest}",
        ["v1", "proof", "consistency"] => "/v1/proof/consistency",
        ["v1", "proof", "inclusion"] => "/v1/proof/inclusion",
        ["v1", "verify", "checkpoint"] => "/v1/verify/checkpoint",
        ["v1", "ledger"] => "/v1/ledger",
        ["v1", "ledger", "records", _] => "/v1/ledger/records/{start}",
        ["v1", "cairn", "content", _, "manifest"] => "/v1/cairn/content/{digest}/manifest",
        ["v1", "cairn", "content", _, "sources"] => "/v1/cairn/content/{digest}/sources",
        ["v1", "cairn", "blobs", "missing"] => "/v1/cairn/blobs/missing",
        ["v1", "cairn", "blobs", _] => "/v1/cairn/blobs/{blob}",
        ["v1", "cairn", "blobs", _, "patch"] => "/v1/cairn/blobs/{blob}/patch",
        ["content", _] => "/content/{file}",
        [".well-known", "wasm-pkg", "registry.json"] => "/.well-known/wasm-pkg/registry.json",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["v2"] | ["v2", ""] => "/v2/",
        ["v2", "_catalog"] => "/v2/_catalog",
        ["v2", "token"] => "/v2/token",
        ["v2", rest @ ..] => match rest {
            [.., "blobs", "uploads", _] | [.., "blobs", "uploads"] => {
                "/v2/{name}/blobs/uploads/{id}"
            }
            [.., "blobs", _] => "/v2/{name}/blobs/{digest}",
            [.., "manifests", _] => "/v2/{name}/manifests/{reference}",
            [.., "tags", "list"] => "/v2/{name}/tags/list",
            [.., "referrers", _] => "/v2/{name}/referrers/{digest}",
            _ => "/v2/(other)",
        },
        _ => "(other)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_by_their_pattern() {
        assert_eq!(route_of("/v1/fetch/logs"), "/v1/fetch/logs");
        assert_eq!(
            route_of("/v1/package/sha256:ab/record"),
            "/v1/package/{logId}/record"
        );
        assert_eq!(
            route_of("/v2/acme/tools/calc/blobs/sha256:00"),
            "/v2/{name}/blobs/{digest}"
        );
        assert_eq!(
            route_of("/v2/a/b/blobs/uploads/"),
            "/v2/{name}/blobs/uploads/{id}"
        );
        assert_eq!(
            route_of("/v1/cairn/blobs/sha256:00/patch"),
            "/v1/cairn/blobs/{blob}/patch"
        );
        assert_eq!(route_of("/no/such/thing/../x"), "(other)");
    }

    #[test]
    fn the_text_format_has_every_metric() {
        let metrics = Metrics::new();
        metrics.record_accepted();
        metrics.records_published(3);
        metrics.record_rejected(Rejection::Invalid);
        metrics.request(&axum::http::Method::GET, "/v1/fetch/checkpoint", 200, 0.002);
        let text = metrics.render(&StateFigures {
            log_length: 7,
            content: cairn_store::ContentTotals {
                contents: 2,
                content_bytes: 300,
                blob_bytes: 200,
            },
            sequencer: true,
            ..StateFigures::default()
        });
        for line in [
            "cairn_records_accepted_total 1",
            "cairn_records_published_total 3",
            "cairn_records_rejected_total{reason=\"invalid\"} 1",
            "cairn_http_requests_total{method=\"GET\",route=\"/v1/fetch/checkpoint\",status=\"200\"} 1",
            "cairn_log_length 7",
            "cairn_sharing_saved_bytes 100",
            "cairn_sequencer 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.contains("cairn_http_request_duration_seconds_bucket{le="));
        assert!(text.ends_with("# EOF\n"));
    }
}
