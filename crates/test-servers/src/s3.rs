//! An S3 server for tests: `s3s-fs` (from crates.io, `cargo install s3s-fs --features binary`,
//! which `.ci/run` does into the peers' folder) serving a temporary directory on a free
//! loopback port, each bucket a folder; stopped by its PID when dropped.
//!
//! The binary is `$CAIRN_S3S_FS`, else `$CAIRN_PEERS/bin/s3s-fs` (default
//! `~/.cache/cairn-peers`), else `s3s-fs` on `PATH`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key and secret the server accepts.
pub const ACCESS_KEY: &str = "cairn-test";
/// The secret key.
pub const SECRET_KEY: &str = "cairn-test-secret";

/// A running S3 server.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    root: PathBuf,
    port: u16,
}

fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CAIRN_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let peers = std::env::var_os("CAIRN_PEERS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/cairn-peers"))
        });
    if let Some(path) = peers.map(|p| p.join("bin/s3s-fs")).filter(|p| p.is_file()) {
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("s3s-fs"))
        .find(|path| path.is_file())
}

impl S3Server {
    /// Starts a server holding the empty buckets `buckets`, or `None` (after saying so on
    /// stderr) when `s3s-fs` is not installed and `CI` is not set.
    pub fn start(name: &str, buckets: &[&str]) -> Option<S3Server> {
        let Some(binary) = binary() else {
            if std::env::var_os("CI").is_some() {
                panic!("s3s-fs is not installed; .ci/run installs it into the peers' folder");
            }
            eprintln!("skipped: s3s-fs is not installed (cargo install s3s-fs --features binary)");
            return None;
        };
        let root = std::env::temp_dir().join(format!("cairn-s3-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).expect("cannot make a bucket's folder");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("no free loopback port");
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start s3s-fs");
        let server = S3Server { child, root, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The folder holding the buckets.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The `AWS_*` variables that point a client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
