//! The verifying client against a real cairn registry over HTTP on loopback: publish, update,
//! fetch, yank, grant and revoke, split-aware downloads, and the persisted trust state.

mod support;

use cairn_client::{ClientError, PublishEntry};
use cairn_protocol::{Digest, PackagePermission};
use semver::{Version, VersionReq};
use support::*;

fn v(text: &str) -> Version {
    text.parse().unwrap()
}

fn req(text: &str) -> VersionReq {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_release_is_fetched_byte_for_byte() {
    let dir = temp_dir("round-trip");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:calc");
    let bytes = fixture("b03-rs-calc.wac.component.wasm");

    let mut publisher = client(&registry.url, &dir.join("publisher"));
    publisher.publish_init(&package, &owner).await.unwrap();
    let published = publisher
        .publish_release(&package, &owner, v("1.0.0"), bytes.clone())
        .await
        .unwrap();
    assert!(published.bytes_uploaded > 0);
    let head = publisher.trusted().package(&package).unwrap();
    assert_eq!(head.records().len(), 2);

    let mut consumer = client(&registry.url, &dir.join("consumer"));
    let fetched = consumer.fetch(&package, &req("^1")).await.unwrap();
    assert_eq!(fetched.version, v("1.0.0"));
    assert_eq!(fetched.digest, Digest::of(&bytes));
    assert_eq!(fetched.bytes, bytes);
    assert!(!fetched.stats.whole_file);
    assert!(fetched.stats.blobs_downloaded > 1);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_sees_releases_published_since_the_last_one() {
    let dir = temp_dir("update");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:fac");
    let mut publisher = client(&registry.url, &dir.join("publisher"));
    publisher.publish_init(&package, &owner).await.unwrap();
    let first = fixture("b01-fac.component.wasm");
    publisher
        .publish_release(&package, &owner, v("1.0.0"), first.clone())
        .await
        .unwrap();

    let mut consumer = client(&registry.url, &dir.join("consumer"));
    consumer
        .update_packages(std::slice::from_ref(&package))
        .await
        .unwrap();
    let before = consumer.trusted().checkpoint().unwrap().contents;
    assert_eq!(consumer.resolve(&package, &req("*")).unwrap().0, v("1.0.0"));

    let second = fixture("r01-wit-parser-e.component.wasm");
    publisher
        .publish_release(&package, &owner, v("1.1.0"), second.clone())
        .await
        .unwrap();
    let summary = consumer.update().await.unwrap();
    assert_eq!(summary.previous, Some(before));
    assert!(summary.checkpoint.log_length > before.log_length);
    assert_eq!(summary.package_records, 1);
    let (version, digest) = consumer.resolve(&package, &req("*")).unwrap();
    assert_eq!((version, digest), (v("1.1.0"), Digest::of(&second)));
    assert_eq!(
        consumer.fetch(&package, &req("~1.0")).await.unwrap().bytes,
        first
    );
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_record_may_carry_several_entries() {
    let dir = temp_dir("entries");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:many");
    let one = fixture("b01-fac.component.wasm");
    let two = fixture("r03-wabt-fac.core.wasm");
    let mut publisher = client(&registry.url, &dir.join("publisher"));
    publisher
        .publish(
            &package,
            &owner,
            vec![
                PublishEntry::Init,
                PublishEntry::Release {
                    version: v("1.0.0"),
                    content: one.clone(),
                },
                PublishEntry::Release {
                    version: v("2.0.0"),
                    content: two.clone(),
                },
            ],
        )
        .await
        .unwrap();
    let log = publisher.trusted().package(&package).unwrap();
    assert_eq!(log.records().len(), 1);
    assert_eq!(log.state().releases().len(), 2);
    let mut consumer = client(&registry.url, &dir.join("consumer"));
    assert_eq!(
        consumer.fetch(&package, &req("^1")).await.unwrap().bytes,
        one
    );
    assert_eq!(
        consumer.fetch(&package, &req("*")).await.unwrap().bytes,
        two
    );
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_skips_yanked_versions() {
    let dir = temp_dir("yank");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:yanked");
    let old = fixture("b01-fac.component.wasm");
    let new = fixture("r01-wit-parser-e.component.wasm");
    let mut publisher = client(&registry.url, &dir.join("publisher"));
    publisher.publish_init(&package, &owner).await.unwrap();
    publisher
        .publish_release(&package, &owner, v("1.0.0"), old.clone())
        .await
        .unwrap();
    publisher
        .publish_release(&package, &owner, v("1.1.0"), new)
        .await
        .unwrap();
    publisher.yank(&package, &owner, v("1.1.0")).await.unwrap();

    let mut consumer = client(&registry.url, &dir.join("consumer"));
    let fetched = consumer.fetch(&package, &req("^1")).await.unwrap();
    assert_eq!(fetched.version, v("1.0.0"));
    assert_eq!(fetched.bytes, old);
    let error = consumer.fetch(&package, &req("=1.1.0")).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Yanked { version, .. } if *version == v("1.1.0")),
        "{error}"
    );
    // Asked for, a yanked release is fetched: the log still names its content.
    let yanked = consumer
        .fetch_allowing(&package, &req("=1.1.0"), cairn_client::Yanked::Allowed)
        .await
        .unwrap();
    assert_eq!(yanked.version, v("1.1.0"));
    let error = consumer.fetch(&package, &req("^3")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NoMatchingRelease { .. }),
        "{error}"
    );
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_key_can_release_until_its_permission_is_revoked() {
    let dir = temp_dir("grant");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let helper = key();
    let package = name("example:shared");
    let mut owner_client = client(&registry.url, &dir.join("owner"));
    owner_client.publish_init(&package, &owner).await.unwrap();
    owner_client
        .grant(
            &package,
            &owner,
            helper.public_key().clone(),
            vec![PackagePermission::Release],
        )
        .await
        .unwrap();

    let mut helper_client = client(&registry.url, &dir.join("helper"));
    helper_client
        .publish_release(
            &package,
            &helper,
            v("1.0.0"),
            fixture("b01-fac.component.wasm"),
        )
        .await
        .unwrap();
    let state = helper_client.trusted().package(&package).unwrap().state();
    assert_eq!(
        state.release(&v("1.0.0")).unwrap().by,
        helper.public_key().fingerprint()
    );

    owner_client
        .revoke(
            &package,
            &owner,
            helper.public_key().fingerprint(),
            vec![PackagePermission::Release],
        )
        .await
        .unwrap();
    let error = helper_client
        .publish_release(
            &package,
            &helper,
            v("2.0.0"),
            fixture("r03-wabt-fac.core.wasm"),
        )
        .await
        .unwrap_err();
    // Refused before anything is signed or sent, naming the grant that would allow it.
    assert!(
        matches!(
            &error,
            ClientError::NotPermitted {
                permission: PackagePermission::Release,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("cairn publish grant"), "{error}");
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_component_sharing_a_module_moves_only_what_is_new() {
    let dir = temp_dir("sharing");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let (shared, first, second) = two_components_sharing_a_module();
    let (a, b) = (name("example:first"), name("example:second"));

    let mut publisher = client(&registry.url, &dir.join("publisher"));
    for package in [&a, &b] {
        publisher.publish_init(package, &owner).await.unwrap();
    }
    let up_first = publisher
        .publish_release(&a, &owner, v("1.0.0"), first.clone())
        .await
        .unwrap();
    let up_second = publisher
        .publish_release(&b, &owner, v("1.0.0"), second.clone())
        .await
        .unwrap();
    assert_eq!(up_first.blobs_skipped, 0);
    assert_eq!(
        up_second.blobs_skipped, 1,
        "the shared module is not sent again"
    );
    assert!(up_second.bytes_uploaded < (second.len() - shared.len() + 1024) as u64);

    let mut consumer = client(&registry.url, &dir.join("consumer"));
    let got_first = consumer.fetch(&a, &req("*")).await.unwrap();
    assert_eq!(got_first.bytes, first);
    assert_eq!(got_first.stats.blobs_cached, 0);
    let got_second = consumer.fetch(&b, &req("*")).await.unwrap();
    assert_eq!(got_second.bytes, second);
    assert_eq!(got_second.stats.blobs_cached, 1);
    assert_eq!(got_second.stats.blobs_downloaded, 2);
    let split = cairn_split::split(&second).unwrap();
    let new_bytes: u64 = split
        .blobs()
        .iter()
        .filter(|blob| blob.bytes.as_ref() != shared.as_slice())
        .map(|blob| blob.bytes.len() as u64)
        .sum();
    // Blobs that compress come in zstd: no more than their bytes cross the wire.
    assert!(got_second.stats.content_bytes <= new_bytes);
    assert!(got_second.stats.bytes_downloaded() < second.len() as u64 / 4);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trusted_state_survives_reopening_the_client() {
    let dir = temp_dir("reopen");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:kept");
    let bytes = fixture("b01-fac.component.wasm");
    let storage = dir.join("client");
    let checkpoint = {
        let mut first = client(&registry.url, &storage);
        first.publish_init(&package, &owner).await.unwrap();
        first
            .publish_release(&package, &owner, v("0.1.0"), bytes.clone())
            .await
            .unwrap();
        first.trusted().checkpoint().unwrap().clone()
    };
    let mut reopened = client(&registry.url, &storage);
    assert_eq!(reopened.trusted().checkpoint(), Some(&checkpoint));
    assert_eq!(
        reopened.resolve(&package, &req("*")).unwrap(),
        (v("0.1.0"), Digest::of(&bytes))
    );
    assert_eq!(
        reopened
            .trusted()
            .package(&package)
            .unwrap()
            .records()
            .len(),
        2
    );
    let summary = reopened.update().await.unwrap();
    assert_eq!(summary.package_records, 0);
    assert_eq!(summary.checkpoint, checkpoint.contents);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_edited_on_disk_is_refused() {
    let dir = temp_dir("edited");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let storage = dir.join("client");
    let mut first = client(&registry.url, &storage);
    first.update().await.unwrap();
    let path = first.state_file().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let signature = text.split("\"signature\": \"").nth(1).unwrap();
    let forged = signature.replacen(&signature[20..24], "AAAA", 1);
    std::fs::write(&path, text.replacen(signature, &forged, 1)).unwrap();
    let config = cairn_client::ClientConfig::new(registry.url.clone(), &storage);
    let error = cairn_client::Client::open(config).unwrap_err();
    assert!(matches!(error, ClientError::CorruptState { .. }), "{error}");
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_older_than_the_maximum_age_is_refused() {
    let dir = temp_dir("freshness");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    // Nothing is published, so the registry's one checkpoint, made when it started, ages.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let open = |storage: &str, max_seconds: u64| {
        let mut config = cairn_client::ClientConfig::new(registry.url.clone(), dir.join(storage));
        config.max_checkpoint_age = Some(std::time::Duration::from_secs(max_seconds));
        cairn_client::Client::open(config).unwrap()
    };

    let mut strict = open("strict", 1);
    let error = strict.update().await.unwrap_err();
    match error {
        ClientError::Security(cairn_client::SecurityError::StaleCheckpoint {
            age_seconds,
            max_seconds,
        }) => {
            assert!(age_seconds >= 2, "{age_seconds}");
            assert_eq!(max_seconds, 1);
        }
        other => panic!("expected a stale checkpoint, got {other}"),
    }
    assert!(strict.trusted().checkpoint().is_none());
    assert!(state_bytes(&strict).is_empty());

    // The same checkpoint is fresh enough under a looser limit.
    let mut lenient = open("lenient", 3600);
    lenient.update().await.unwrap();
    assert!(lenient.trusted().checkpoint().is_some());
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_goes_through_after_a_quiet_spell_longer_than_the_maximum_age() {
    let dir = temp_dir("quiet");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let mut config = cairn_client::ClientConfig::new(registry.url.clone(), dir.join("publisher"));
    config.max_checkpoint_age = Some(std::time::Duration::from_secs(1));
    config.poll_interval = std::time::Duration::from_millis(20);
    let mut publisher = cairn_client::Client::open(config).unwrap();
    let (owner, package) = (key(), name("example:quiet"));
    publisher.publish_init(&package, &owner).await.unwrap();
    // Nothing changes for longer than the limit: the newest checkpoint is too old to update
    // from, but a publish starts from it and ends on the new one its record is in.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(matches!(
        publisher.update().await.unwrap_err(),
        ClientError::Security(cairn_client::SecurityError::StaleCheckpoint { .. })
    ));
    let bytes = fixture("b01-fac.component.wasm");
    publisher
        .publish_release(&package, &owner, v("1.0.0"), bytes)
        .await
        .unwrap();
    publisher.update().await.unwrap();
    let head = publisher.trusted().package(&package).unwrap();
    assert_eq!(head.records().len(), 2);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_package_is_not_found_and_changes_nothing() {
    let dir = temp_dir("unknown");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let mut consumer = client(&registry.url, &dir.join("consumer"));
    consumer.update().await.unwrap();
    let before = state_bytes(&consumer);
    let error = consumer
        .fetch(&name("example:nothing"), &req("*"))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::PackageNotFound(_)), "{error}");
    assert_eq!(state_bytes(&consumer), before);
    assert!(consumer.trusted().packages().next().is_none());
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_without_the_split_extension_gets_whole_files() {
    let setup = Setup::start("whole-file").await;
    setup.proxy.set(Tamper::NoSplitExtension);
    let owner = key();
    let package = name("example:whole");
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let mut publisher = setup.client("publisher");
    publisher.publish_init(&package, &owner).await.unwrap();
    let published = publisher
        .publish_release(&package, &owner, v("1.0.0"), bytes.clone())
        .await
        .unwrap();
    assert_eq!(published.bytes_uploaded, bytes.len() as u64);

    let mut consumer = setup.client("consumer");
    let fetched = consumer.fetch(&package, &req("*")).await.unwrap();
    assert_eq!(fetched.bytes, bytes);
    assert!(fetched.stats.whole_file);
    assert_eq!(fetched.stats.bytes_downloaded(), bytes.len() as u64);

    // The whole file's blobs were cached, so a split-aware fetch later needs none.
    setup.proxy.set(Tamper::Nothing);
    let again = consumer.fetch(&package, &req("*")).await.unwrap();
    assert_eq!(again.bytes, bytes);
    assert_eq!(again.stats.blobs_downloaded, 0);
    assert_eq!(again.stats.content_bytes, 0);
    setup.stop().await;
}

/// Counts what the client reports to a progress bar.
#[derive(Default)]
struct CountingProgress {
    started: std::sync::Mutex<Vec<(cairn_client::Transfer, String, u64)>>,
    advanced: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicU64,
}

impl cairn_client::Progress for CountingProgress {
    fn start(&self, direction: cairn_client::Transfer, what: &str, total_bytes: u64) {
        self.started
            .lock()
            .unwrap()
            .push((direction, what.to_owned(), total_bytes));
    }
    fn advance(&self, bytes: u64) {
        self.advanced
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_report_their_progress() {
    let dir = temp_dir("progress");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:calc");
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let progress = std::sync::Arc::new(CountingProgress::default());
    let open = |sub: &str| {
        let mut config = cairn_client::ClientConfig::new(&registry.url, dir.join(sub));
        config.poll_interval = std::time::Duration::from_millis(20);
        config.progress = cairn_client::ProgressSink::new(progress.clone());
        cairn_client::Client::open(config).unwrap()
    };
    let mut publisher = open("publisher");
    publisher.publish_init(&package, &owner).await.unwrap();
    let published = publisher
        .publish_release(&package, &owner, v("1.0.0"), bytes.clone())
        .await
        .unwrap();
    let uploaded = progress.advanced.load(std::sync::atomic::Ordering::Relaxed);
    // The blobs' bytes (the manifest is not counted as progress).
    assert!(
        uploaded > 0 && uploaded <= published.bytes_uploaded,
        "{uploaded} of {}",
        published.bytes_uploaded
    );

    let mut consumer = open("consumer");
    let fetched = consumer.fetch(&package, &req("*")).await.unwrap();
    let total = progress.advanced.load(std::sync::atomic::Ordering::Relaxed);
    // The bar counts the blobs' bytes, whatever their encoding on the wire.
    let blob_bytes: u64 = cairn_split::split(&bytes)
        .unwrap()
        .blobs()
        .iter()
        .map(|blob| blob.bytes.len() as u64)
        .sum();
    assert_eq!(total - uploaded, blob_bytes);
    assert!(fetched.stats.content_bytes <= blob_bytes);
    let started = progress.started.lock().unwrap().clone();
    assert_eq!(started.len(), 2);
    assert_eq!(
        started[0],
        (
            cairn_client::Transfer::Upload,
            "example:calc@1.0.0".to_owned(),
            uploaded
        )
    );
    assert_eq!(
        started[1],
        (
            cairn_client::Transfer::Download,
            "example:calc@1.0.0".to_owned(),
            blob_bytes
        )
    );
    assert_eq!(
        progress.finished.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    registry.stop().await;
}

/// Two builds of one application (tests/fixtures/greeter-src) released one after the other:
/// a client that fetched the first receives the blobs that changed as patches against the
/// blobs it holds, a few percent of the new file; one that did not receives them compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_comes_as_patches_against_the_release_the_client_holds() {
    let dir = temp_dir("upgrade");
    let registry = TestRegistry::start(&dir.join("registry")).await;
    let owner = key();
    let package = name("example:greeter");
    let (first, second) = (
        fixture("greeter-1.component.wasm"),
        fixture("greeter-2.component.wasm"),
    );
    let mut publisher = client(&registry.url, &dir.join("publisher"));
    publisher.publish_init(&package, &owner).await.unwrap();
    publisher
        .publish_release(&package, &owner, v("1.0.0"), first.clone())
        .await
        .unwrap();

    let mut consumer = client(&registry.url, &dir.join("consumer"));
    let got_first = consumer.fetch(&package, &req("=1.0.0")).await.unwrap();
    assert_eq!(got_first.bytes, first);
    assert_eq!(got_first.stats.blobs_patched, 0);
    // Cold, the blobs come compressed.
    assert!(got_first.stats.content_bytes < first.len() as u64 / 2);

    publisher
        .publish_release(&package, &owner, v("1.1.0"), second.clone())
        .await
        .unwrap();
    let upgrade = consumer.fetch(&package, &req("^1")).await.unwrap();
    assert_eq!(upgrade.version, v("1.1.0"));
    assert_eq!(upgrade.bytes, second);
    assert_eq!(upgrade.stats.blobs_patched, upgrade.stats.blobs_downloaded);
    assert!(upgrade.stats.blobs_patched >= 1);
    assert!(
        upgrade.stats.bytes_downloaded() < second.len() as u64 / 20,
        "{} bytes for a {}-byte file",
        upgrade.stats.bytes_downloaded(),
        second.len()
    );

    // Asked again (from the registry's patch cache), the same bytes; and a client that holds
    // nothing of the package gets the blobs compressed, not patched.
    let mut again = client(&registry.url, &dir.join("again"));
    again.fetch(&package, &req("=1.0.0")).await.unwrap();
    let cached_patch = again.fetch(&package, &req("^1")).await.unwrap();
    assert_eq!(cached_patch.bytes, second);
    assert_eq!(
        cached_patch.stats.content_bytes,
        upgrade.stats.content_bytes
    );
    let mut cold = client(&registry.url, &dir.join("cold"));
    let got_cold = cold.fetch(&package, &req("^1")).await.unwrap();
    assert_eq!(got_cold.bytes, second);
    assert_eq!(got_cold.stats.blobs_patched, 0);
    assert!(got_cold.stats.content_bytes > upgrade.stats.content_bytes * 5);
    registry.stop().await;
}
