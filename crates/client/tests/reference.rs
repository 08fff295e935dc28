//! The verifying client against the reference `warg-server` 0.10.0 (no split extension):
//! publish, update, fetch byte-identical (whole files), yank, grant and revoke.
//!
//! `warg-server` is found at `$CAIRN_PEERS/bin/warg-server` (default `~/.cache/cairn-peers`),
//! where `.ci/run` installs it. Without it the test says so loudly and passes, except in CI
//! (`CI` set), where it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::ClientError;
use cairn_protocol::{PackagePermission, PrivateKey};
use semver::{Version, VersionReq};
use support::*;

fn find_warg_server() -> Option<PathBuf> {
    let peers = std::env::var_os("CAIRN_PEERS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/cairn-peers"))
        })?;
    Some(peers.join("bin/warg-server")).filter(|p| p.is_file())
}

struct Reference(Child);

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_reference(binary: &Path, dir: &Path) -> (Reference, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--namespace",
            "example",
            "--content-dir",
        ])
        .arg(dir)
        .env(
            "WARG_OPERATOR_KEY",
            PrivateKey::generate().unwrap().to_secret_text(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(format!("{url}/v1/fetch/checkpoint")).await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "warg-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Reference(child), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_works_against_the_reference_warg_server() {
    let Some(binary) = find_warg_server() else {
        let message = "\n*** warg-server NOT FOUND: the client test against the reference server did NOT run ***\n";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("{message}");
        return;
    };
    let dir = temp_dir("reference");
    std::fs::create_dir_all(dir.join("content")).unwrap();
    let (_server, url) = start_reference(&binary, &dir.join("content")).await;
    let owner = key();
    let package = name("example:calc");
    let mut publisher = client(&url, &dir.join("publisher"));
    publisher.publish_init(&package, &owner).await.unwrap();
    let first = fixture("b03-rs-calc.wac.component.wasm");
    let second = fixture("b01-fac.component.wasm");
    let v = |t: &str| t.parse::<Version>().unwrap();
    publisher
        .publish_release(&package, &owner, v("1.0.0"), first.clone())
        .await
        .unwrap();
    publisher
        .publish_release(&package, &owner, v("1.1.0"), second.clone())
        .await
        .unwrap();

    let mut consumer = client(&url, &dir.join("consumer"));
    let fetched = consumer
        .fetch(&package, &"^1".parse::<VersionReq>().unwrap())
        .await
        .unwrap();
    assert_eq!(fetched.version, v("1.1.0"));
    assert_eq!(fetched.bytes, second);
    assert!(
        fetched.stats.whole_file,
        "the reference has no split extension"
    );

    publisher.yank(&package, &owner, v("1.1.0")).await.unwrap();
    let fetched = consumer
        .fetch(&package, &"^1".parse::<VersionReq>().unwrap())
        .await
        .unwrap();
    assert_eq!(fetched.version, v("1.0.0"));
    assert_eq!(fetched.bytes, first);

    let other = key();
    publisher
        .grant(
            &package,
            &owner,
            other.public_key().clone(),
            vec![PackagePermission::Release],
        )
        .await
        .unwrap();
    let mut second_publisher = client(&url, &dir.join("second"));
    second_publisher
        .publish_release(
            &package,
            &other,
            v("2.0.0"),
            fixture("r03-wabt-fac.core.wasm"),
        )
        .await
        .unwrap();
    publisher
        .revoke(
            &package,
            &owner,
            other.public_key().fingerprint(),
            vec![PackagePermission::Release],
        )
        .await
        .unwrap();
    let refused = second_publisher
        .publish_release(
            &package,
            &other,
            v("2.1.0"),
            fixture("r03-wabt-fac.core.wasm"),
        )
        .await;
    // Refused by the client itself, from the log it verified: nothing is signed or sent.
    assert!(
        matches!(refused, Err(ClientError::NotPermitted { .. })),
        "{refused:?}"
    );

    let summary = consumer.update().await.unwrap();
    assert!(summary.package_records >= 3);
    let (version, _) = consumer.resolve(&package, &"*".parse().unwrap()).unwrap();
    assert_eq!(version, v("2.0.0"));
}
