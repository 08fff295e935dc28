//! `cairn serve`: run the registry.

use std::time::Duration;

use anyhow::Context;
use cairn_protocol::Namespace;
use cairn_server::connections::ConnectionLimits;
use cairn_server::upload::UploadLimits;
use cairn_server::{Registry, Settings};
use cairn_store::ContentLocation;
use clap::Args;

use crate::logging::LogFormat;

/// Run the registry.
///
/// Serves the warg v1 API and the content, and runs the sequencer that signs checkpoints.
///
/// With no flags it listens on 127.0.0.1:8090 and keeps everything in ./cairn-data (a SQLite
/// database, the content blobs, and the operator key, created on first start). With
/// `--content oci://HOST[:PORT]/REPOSITORY` the content blobs are kept in an OCI registry
/// instead.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn serve --namespace example\n  cairn serve --listen 0.0.0.0:8090 --data /var/lib/cairn --namespace example --base-url https://registry.example.com\n  cairn serve --content oci://127.0.0.1:5000/cairn-blobs --require-publisher-token --log-format json"
)]
pub struct ServeCommand {
    /// Address and port to listen on.
    #[arg(
        long,
        env = "CAIRN_LISTEN",
        default_value = "127.0.0.1:8090",
        value_name = "ADDR:PORT"
    )]
    listen: String,
    #[command(flatten)]
    dir: super::DataDir,
    /// A namespace this registry hosts (repeatable; defined in the operator log if new).
    #[arg(
        long = "namespace",
        env = "CAIRN_NAMESPACE",
        value_delimiter = ',',
        value_name = "NS"
    )]
    namespaces: Vec<Namespace>,
    /// The shortest time between two checkpoints (e.g. `1s`, `250ms`).
    #[arg(long, env = "CAIRN_CHECKPOINT_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// The largest content upload (e.g. `256MiB`).
    #[arg(long, env = "CAIRN_MAX_CONTENT_SIZE", default_value = "256MiB", value_parser = parse_size)]
    max_content_size: u64,
    /// The most disk the cache of patches between blobs may take (`DIR/patches`): patches are
    /// made when a client that holds an earlier build asks for one, and kept for the next.
    #[arg(long, env = "CAIRN_PATCH_CACHE", default_value = "1GiB", value_parser = parse_size)]
    patch_cache: u64,
    /// The URL clients reach this registry at (default: `http://` and the listening address).
    #[arg(long, env = "CAIRN_BASE_URL", value_name = "URL")]
    base_url: Option<String>,
    /// The credential OCI pushes to scratch repositories need (`Authorization: Bearer TOKEN`,
    /// or basic auth with any user and TOKEN as password). Without it, OCI pushes are refused.
    /// Use a long random one, and prefer the environment variable: other users can read a
    /// command line.
    #[arg(
        long,
        env = "CAIRN_OCI_PUSH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    oci_push_token: Option<String>,
    /// Publish only for publisher accounts: every record (and every OCI push) must carry the
    /// token of an account whose scope covers the package (`cairn admin publisher add`).
    /// Without it, any key may create packages in a hosted namespace.
    #[arg(long, env = "CAIRN_REQUIRE_PUBLISHER_TOKEN")]
    require_publisher_token: bool,
    /// Where the content blobs are kept: a directory, or a repository of an OCI registry as
    /// `oci://[USER:PASSWORD@]HOST[:PORT]/REPOSITORY` (HTTPS, plain HTTP for loopback hosts;
    /// `oci+http://` and `oci+https://` choose). Credentials may instead come from
    /// CAIRN_CONTENT_USERNAME and CAIRN_CONTENT_PASSWORD. Recorded in the data directory at
    /// first start and used from then on; naming another store later is refused.
    /// [default: DIR/content]
    #[arg(
        long,
        env = "CAIRN_CONTENT",
        value_name = "LOCATION",
        hide_env_values = true
    )]
    content: Option<String>,
    /// The most connections open at once; beyond it a new connection is answered 503 and
    /// closed. Kept below the open-file limit, which is raised to its hard limit at start.
    #[arg(
        long,
        env = "CAIRN_MAX_CONNECTIONS",
        default_value_t = 4096,
        value_name = "N"
    )]
    max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when it
    /// opens or its previous answer was sent; an idle connection is closed after it.
    #[arg(long, env = "CAIRN_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// How long an upload may send nothing, or a client read nothing of an answer, before
    /// its connection is closed.
    #[arg(long, env = "CAIRN_STALL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// How long blobs uploaded for a record wait for the record's content to be completed
    /// before they are removed.
    #[arg(long, env = "CAIRN_UPLOAD_DEADLINE", default_value = "1h", value_parser = parse_duration)]
    upload_deadline: Duration,
    /// The most bytes of unfinished uploads (blobs staged for records and bodies being
    /// received) kept at once; beyond it uploads are refused with 507 until some finish.
    #[arg(long, env = "CAIRN_MAX_PENDING_UPLOADS", default_value = "4GiB", value_parser = parse_size)]
    max_pending_uploads: u64,
    /// How log lines are written to standard error: `text` (coloured only on a terminal) or
    /// `json` (one object a line). `RUST_LOG` filters them (default `info`).
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Parses a duration as people write it (`100ms`, `90s`, `10m`, `24h`, `1h 30m`;
/// `humantime`'s syntax), at most a century: longer is surely a typo, and the clock
/// arithmetic of any use of a duration stays far from overflowing.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let too_long = || format!("duration {text:?} is too long (at most 100 years)");
    let duration = humantime::parse_duration(text.trim()).map_err(|error| match error {
        humantime::DurationError::NumberOverflow => too_long(),
        error => format!("invalid duration {text:?}: {error}; write it like 90s, 10m or 24h"),
    })?;
    const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    if duration > LONGEST {
        return Err(too_long());
    }
    Ok(duration)
}

/// Parses a size as people write it (`1024`, `64KiB`, `256MiB`, `1GiB`, `2 GB`; `bytesize`'s
/// syntax: `KiB` and `MiB` are powers of 1024, `kB` and `MB` of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| format!("invalid size {text:?}: {error}; write it like 256MiB or 4GiB"))
}

impl ServeCommand {
    pub fn run(self) -> anyhow::Result<()> {
        crate::logging::init(self.log_format);
        // Parsed here rather than by clap, whose errors would echo a password in the URL.
        let content = self
            .content
            .as_deref()
            .map(str::parse::<ContentLocation>)
            .transpose()
            .context("invalid --content")?;
        let database = self.dir.database()?;
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            let _lock = crate::commands::lock_data_dir(&self.dir.data)?;
            let listener = tokio::net::TcpListener::bind(&self.listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            let address = listener.local_addr()?;
            let base_url = self.base_url.unwrap_or_else(|| format!("http://{address}"));
            let registry = Registry::open_with_content(
                Settings {
                    data_dir: self.dir.data.clone(),
                    namespaces: self.namespaces,
                    checkpoint_interval: self.checkpoint_interval,
                    max_content_size: self.max_content_size,
                    connections: ConnectionLimits {
                        max_connections: self.max_connections,
                        header_timeout: self.header_timeout,
                        stall_timeout: self.stall_timeout,
                    },
                    uploads: UploadLimits {
                        deadline: self.upload_deadline,
                        max_pending_bytes: self.max_pending_uploads,
                        stall_timeout: self.stall_timeout,
                    },
                    require_publisher_token: self.require_publisher_token,
                    patch_cache_bytes: self.patch_cache,
                    database,
                },
                content,
            )
            .await
            .with_context(|| format!("cannot open the registry in {}", self.dir.data.display()))?
            .with_oci_push_token(self.oci_push_token);
            let started = format!(
                "cairn registry at {base_url} (data in {})",
                self.dir.data.display()
            );
            // Printed whatever `RUST_LOG` filters: scripts wait for this line.
            match self.log_format {
                LogFormat::Text => eprintln!("{started}"),
                LogFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({
                        "level": "INFO",
                        "message": started,
                        "url": base_url,
                        "data": self.dir.data,
                        "target": "cairn",
                    })
                ),
            }
            registry
                .serve(listener, base_url, shutdown_signal())
                .await?;
            Ok(())
        })
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("cannot listen for SIGTERM");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        let error = parse_duration("10 parsecs").unwrap_err();
        assert!(
            error.starts_with("invalid duration \"10 parsecs\""),
            "{error}"
        );
        assert!(parse_duration("1000y").unwrap_err().contains("too long"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4 GiB"), Ok(4 << 30));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        let error = parse_size("lots").unwrap_err();
        assert!(error.starts_with("invalid size \"lots\""), "{error}");
    }
}
