//! A `docker-registry` process (Debian's build of the CNCF distribution registry) on loopback
//! for the tests and benchmarks that need a real OCI registry; killed by its PID when dropped.
//! It must never outlive the test that started it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository that tests keep cairn's content in.
pub const REPOSITORY: &str = "cairn/content";

/// The `docker-registry` binary, or `None` after printing that the test is skipped (a
/// failure when `CI` is set).
pub fn docker_registry_binary(what: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CAIRN_DOCKER_REGISTRY") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("sh")
        .args(["-c", "command -v docker-registry"])
        .output()
        .ok()
        .filter(|output| output.status.success());
    if let Some(output) = found {
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        return Some(PathBuf::from(path));
    }
    let message = format!(
        "SKIPPED: docker-registry is not installed (apt-get install -y docker-registry); \
         {what} did not run"
    );
    assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
    eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
    None
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a test registry is set up.
#[derive(Default)]
pub struct RegistryOptions {
    /// Blob deletes allowed.
    pub deletes: bool,
    /// `user:bcrypt-hash` lines of an htpasswd file: basic auth required.
    pub htpasswd: Option<String>,
}

/// A `docker-registry serve` process on loopback with its storage in a temporary directory,
/// killed by its PID when dropped (also when a test panics).
pub struct DockerRegistry {
    child: Child,
    pub port: u16,
    root: PathBuf,
    log: PathBuf,
}

impl DockerRegistry {
    pub fn start(binary: &Path, name: &str, options: RegistryOptions) -> DockerRegistry {
        let dir = crate::support::temp_dir(name);
        let root = dir.join("storage");
        let log = dir.join("registry.log");
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let auth = match &options.htpasswd {
                Some(lines) => {
                    let path = dir.join("htpasswd");
                    std::fs::write(&path, lines).unwrap();
                    format!(
                        "auth:\n  htpasswd:\n    realm: cairn-test\n    path: {}\n",
                        path.display()
                    )
                }
                None => String::new(),
            };
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: {deletes}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: cairn-test-secret\n\
                 {auth}",
                root = root.display(),
                deletes = options.deletes,
            );
            let config_path = dir.join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            // The access log goes to stdout, the rest to stderr: both into one file.
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(binary)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("cannot start docker-registry");
            let registry = DockerRegistry {
                child,
                port,
                root: root.clone(),
                log: log.clone(),
            };
            if registry.wait_until_ready() {
                return registry;
            }
            last_log = registry.log();
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// Polls `GET /v2/` until it answers (200, or 401 with auth), or the process exits.
    fn wait_until_ready(&self) -> bool {
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(response) = http.get(format!("{}/v2/", self.url())).send() {
                if matches!(response.status().as_u16(), 200 | 401) {
                    return true;
                }
            }
            if !self.log().is_empty() && self.log().contains("level=fatal") {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn content_location(&self) -> String {
        format!("oci://127.0.0.1:{}/{REPOSITORY}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The blob as the registry serves it, if it has it.
    pub fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let response =
            reqwest::blocking::get(format!("{}/v2/{REPOSITORY}/blobs/{digest}", self.url()))
                .unwrap();
        match response.status().as_u16() {
            200 => Some(response.bytes().unwrap().to_vec()),
            404 => None,
            status => panic!("GET blob {digest}: HTTP {status}"),
        }
    }

    /// The blob as cairn keeps it in the registry, if it does: the blob itself, or the zstd
    /// frame the manifest tagged `sha256-<hex>.zst` points to, decompressed.
    pub fn kept_blob(&self, digest: &str) -> Option<Vec<u8>> {
        kept_blob(digest, |path| {
            let response = reqwest::blocking::Client::new()
                .get(format!("{}/v2/{REPOSITORY}/{path}", self.url()))
                .header("Accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .unwrap();
            match response.status().as_u16() {
                200 => Some(response.bytes().unwrap().to_vec()),
                404 => None,
                status => panic!("GET {path}: HTTP {status}"),
            }
        })
    }

    /// How many blobs the registry's storage holds (each is a `data` file under
    /// `docker/registry/v2/blobs`).
    pub fn stored_blob_count(&self) -> usize {
        fn count(dir: &Path) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .map(|entry| entry.unwrap().path())
                .map(|path| match path.is_dir() {
                    true => count(&path),
                    false => usize::from(path.file_name().unwrap() == "data"),
                })
                .sum()
        }
        count(&self.root.join("docker/registry/v2/blobs"))
    }

    /// How many upload sessions the access log shows started in our repository.
    pub fn upload_count(&self) -> usize {
        self.log()
            .matches(&format!("\"POST /v2/{REPOSITORY}/blobs/uploads/"))
            .count()
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The blob `digest` as cairn keeps it in an OCI repository that `get` reads (`get("blobs/D")`,
/// `get("manifests/TAG")`): the blob itself, or the zstd frame the manifest tagged
/// `sha256-<hex>.zst` names, decompressed.
pub fn kept_blob(digest: &str, get: impl Fn(&str) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    if let Some(bytes) = get(&format!("blobs/{digest}")) {
        return Some(bytes);
    }
    let manifest = get(&format!("manifests/{}.zst", digest.replace(':', "-")))?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.cairn.blob.v1+zstd"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(layer["annotations"]["dev.cairn.blob.digest"], digest);
    let frame = get(&format!("blobs/{}", layer["digest"].as_str().unwrap()))?;
    Some(zstd::decode_all(&frame[..]).unwrap())
}
