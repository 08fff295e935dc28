//! A tampering registry: a proxy in front of a real cairn registry changes one thing at a
//! time, and the client must refuse each change with the right [`SecurityError`] and leave
//! its trusted state (in memory and on disk) as it was. Each test names the row of
//! `docs/threat-model.md` it covers.

mod support;

use cairn_client::{Client, ClientError, SecurityError};
use cairn_protocol::{Digest, PrivateKey, TimestampedCheckpoint};
use semver::{Version, VersionReq};
use support::*;

fn v(text: &str) -> Version {
    text.parse().unwrap()
}

fn any() -> VersionReq {
    VersionReq::STAR
}

/// A setup with `example:app` initialised and released as 1.0.0 (b03), and a consumer that
/// follows it through the proxy.
async fn published(test: &str) -> (Setup, Client, Client, PrivateKey) {
    let setup = Setup::start(test).await;
    let owner = key();
    let package = name("example:app");
    let mut publisher = setup.client("publisher");
    publisher.publish_init(&package, &owner).await.unwrap();
    publisher
        .publish_release(
            &package,
            &owner,
            v("1.0.0"),
            fixture("b03-rs-calc.wac.component.wasm"),
        )
        .await
        .unwrap();
    let mut consumer = setup.client("consumer");
    consumer.update_packages(&[package]).await.unwrap();
    (setup, publisher, consumer, owner)
}

/// Runs `attempt` and checks that it fails with a security error and changes nothing.
fn assert_refused_and_unchanged(
    consumer: &Client,
    before_file: &[u8],
    before_checkpoint: &cairn_protocol::SignedCheckpoint,
    error: ClientError,
) -> SecurityError {
    assert_eq!(state_bytes(consumer), before_file, "the state file changed");
    assert_eq!(
        consumer.trusted().checkpoint(),
        Some(before_checkpoint),
        "the trusted checkpoint changed"
    );
    match error {
        ClientError::Security(security) => security,
        other => panic!("expected a security error, got: {other}"),
    }
}

/// Threat model row 1 (tampered content), split download: a changed byte in a blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_content_byte_in_a_blob_is_refused() {
    let (setup, _publisher, mut consumer, _) = published("tamper-blob").await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::FlipContentByte);
    let error = consumer
        .fetch(&name("example:app"), &any())
        .await
        .unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::TamperedContent { .. }),
        "{security}"
    );
    // Nothing unverified entered the fragment cache.
    let cached = std::fs::read_dir(consumer.cache().dir().join("sha256"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(cached, 0);
    setup.stop().await;
}

/// Threat model row 1 (tampered content), whole-file download from a registry without the
/// split extension: a changed byte in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_content_byte_in_a_whole_file_is_refused() {
    let (setup, _publisher, mut consumer, _) = published("tamper-whole").await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::NoSplitExtensionAndFlipContentByte);
    let error = consumer
        .fetch(&name("example:app"), &any())
        .await
        .unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    match &security {
        SecurityError::TamperedContent { expected, .. } => assert_eq!(
            *expected,
            Digest::of(&fixture("b03-rs-calc.wac.component.wasm")).to_string()
        ),
        other => panic!("{other}"),
    }
    setup.stop().await;
}

/// Threat model row 2 (forged or altered records): a new record whose signature changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_record_signature_is_refused() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-signature").await;
    publisher
        .publish_release(
            &name("example:app"),
            &owner,
            v("1.1.0"),
            fixture("b01-fac.component.wasm"),
        )
        .await
        .unwrap();
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::ForgeRecordSignatures);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::BadRecordSignature { .. }),
        "{security}"
    );
    assert_eq!(
        consumer.resolve(&name("example:app"), &any()).unwrap().0,
        v("1.0.0")
    );
    setup.stop().await;
}

/// Threat model row 4 (rollback): an older, genuinely signed checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_checkpoint_is_refused() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-rewind").await;
    let old = consumer.trusted().checkpoint().unwrap().clone();
    publisher
        .publish_release(
            &name("example:app"),
            &owner,
            v("1.1.0"),
            fixture("b01-fac.component.wasm"),
        )
        .await
        .unwrap();
    consumer.update().await.unwrap();
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    assert!(checkpoint.contents.log_length > old.contents.log_length);
    setup.proxy.set(Tamper::ServeCheckpoint(old.clone()));
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert_eq!(
        security,
        SecurityError::RewoundCheckpoint {
            trusted: checkpoint.contents.log_length,
            offered: old.contents.log_length,
        }
    );
    setup.stop().await;
}

/// Threat model row 5 (fork): a second checkpoint at the trusted length with another root,
/// signed with the operator's real key (a compromised or lying registry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_checkpoint_at_the_same_length_with_another_root_is_refused() {
    let (setup, _publisher, mut consumer, _) = published("tamper-fork").await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    let contents = checkpoint.contents;
    let forked = TimestampedCheckpoint {
        log_root: Digest::of(b"another history"),
        ..contents
    }
    .sign(&setup.registry.operator_key);
    setup.proxy.set(Tamper::ServeCheckpoint(forked));
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert_eq!(
        security,
        SecurityError::ForkedCheckpoint {
            log_length: contents.log_length
        }
    );
    setup.stop().await;
}

/// Threat model row 10 (endless data): a checkpoint response that never ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_response_is_cut_off() {
    let (setup, _publisher, mut consumer, _) = published("tamper-endless").await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::EndlessCheckpoint);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::OversizedResponse { .. }),
        "{security}"
    );
    setup.stop().await;
}

/// Publishes two more releases of `example:app`, so an update has several new records.
async fn publish_two_more(publisher: &mut Client, owner: &PrivateKey) {
    for (version, file) in [
        ("1.1.0", "b01-fac.component.wasm"),
        ("1.2.0", "r01-wit-parser-e.component.wasm"),
    ] {
        publisher
            .publish_release(&name("example:app"), owner, v(version), fixture(file))
            .await
            .unwrap();
    }
}

/// Threat model row 3 (dropped records): the newest record is hidden, so the map proof is for
/// a head the client does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_newest_record_is_caught_by_the_map_proof() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-hide").await;
    publish_two_more(&mut publisher, &owner).await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::HideNewestPackageRecord);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::StaleMapHead { .. }),
        "{security}"
    );
    setup.stop().await;
}

/// Threat model row 3 (dropped records): a record in the middle of the new ones is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_record_breaks_the_chain() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-drop").await;
    publish_two_more(&mut publisher, &owner).await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::DropOldestPackageRecord);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::BrokenChain { .. }),
        "{security}"
    );
    setup.stop().await;
}

/// Threat model row 3 (reordered records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_records_break_the_chain() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-reorder").await;
    publish_two_more(&mut publisher, &owner).await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::SwapPackageRecords);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(
            security,
            SecurityError::BrokenChain { .. } | SecurityError::RecordOutOfPlace { .. }
        ),
        "{security}"
    );
    setup.stop().await;
}

/// Threat model rows 4 and 5 (rollback, fork): a consistency proof that does not verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_consistency_proof_is_refused() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-consistency").await;
    publish_two_more(&mut publisher, &owner).await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::CorruptConsistencyProof);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::BadConsistencyProof { .. }),
        "{security}"
    );
    setup.stop().await;
}

/// Threat model row 7 (mix-and-match): a log inclusion proof that does not verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_inclusion_proof_is_refused() {
    let (setup, mut publisher, mut consumer, owner) = published("tamper-inclusion").await;
    publish_two_more(&mut publisher, &owner).await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    setup.proxy.set(Tamper::CorruptInclusionProof);
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::BadInclusionProof { .. }),
        "{security}"
    );
    setup.stop().await;
}

/// Threat model row 9 (key compromise): a checkpoint signed by an operator key that the
/// operator log knows but that does not hold `commit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_signed_by_a_key_without_commit_is_refused() {
    let namespace_admin = key();
    let setup = Setup::start_with(
        "tamper-no-commit",
        Some(namespace_admin.public_key().clone()),
    )
    .await;
    let mut consumer = setup.client("consumer");
    consumer.update().await.unwrap();
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    let admin_id = namespace_admin.public_key().fingerprint();
    assert!(consumer
        .trusted()
        .operator()
        .state()
        .keys()
        .contains_key(&admin_id));
    let forged = checkpoint.contents.sign(&namespace_admin);
    setup.proxy.set(Tamper::ServeCheckpoint(forged));
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert_eq!(
        security,
        SecurityError::CheckpointSignerWithoutCommit(admin_id)
    );
    setup.stop().await;
}

/// Threat model row 9: a checkpoint signed by a key the operator log does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_signed_by_an_unknown_key_is_refused() {
    let (setup, _publisher, mut consumer, _) = published("tamper-unknown-signer").await;
    let before = state_bytes(&consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    let stranger = key();
    setup
        .proxy
        .set(Tamper::ServeCheckpoint(checkpoint.contents.sign(&stranger)));
    let error = consumer.update().await.unwrap_err();
    let security = assert_refused_and_unchanged(&consumer, &before, &checkpoint, error);
    assert_eq!(
        security,
        SecurityError::UnknownCheckpointSigner(stranger.public_key().fingerprint())
    );
    setup.stop().await;
}

/// An upgrade from greeter 1.0.0 (fetched, so its blobs are cached) to 1.1.0 (published and
/// followed), ready to be fetched as patches through the proxy.
async fn upgrade_ready(test: &str) -> (Setup, Client) {
    let setup = Setup::start(test).await;
    let owner = key();
    let package = name("example:greeter");
    let mut publisher = setup.client("publisher");
    publisher.publish_init(&package, &owner).await.unwrap();
    publisher
        .publish_release(
            &package,
            &owner,
            v("1.0.0"),
            fixture("greeter-1.component.wasm"),
        )
        .await
        .unwrap();
    let mut consumer = setup.client("consumer");
    consumer.fetch(&package, &any()).await.unwrap();
    publisher
        .publish_release(
            &package,
            &owner,
            v("1.1.0"),
            fixture("greeter-2.component.wasm"),
        )
        .await
        .unwrap();
    consumer.update_packages(&[package]).await.unwrap();
    (setup, consumer)
}

/// Checks that fetching the upgrade fails with tampered content, changes nothing trusted, and
/// caches none of the new release's blobs.
async fn assert_upgrade_refused(setup: &Setup, consumer: &mut Client) {
    let before = state_bytes(consumer);
    let checkpoint = consumer.trusted().checkpoint().unwrap().clone();
    let error = consumer
        .fetch(&name("example:greeter"), &any())
        .await
        .unwrap_err();
    let security = assert_refused_and_unchanged(consumer, &before, &checkpoint, error);
    assert!(
        matches!(security, SecurityError::TamperedContent { .. }),
        "{security}"
    );
    // Nothing unverified entered the fragment cache, and the release is not in it whole.
    let second = fixture("greeter-2.component.wasm");
    let second = cairn_split::split(&second).unwrap();
    assert!(!second
        .blobs()
        .iter()
        .all(|blob| consumer.cache().contains(&blob.digest)));
    // A blob verified before the failure may still be being written under a temporary name
    // (dot-prefixed, renamed into place when complete): only complete blobs are checked.
    for entry in std::fs::read_dir(consumer.cache().dir().join("sha256")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            cairn_split::BlobId::of(&bytes).to_hex(),
            entry.file_name().to_string_lossy()
        );
    }
    // Faithful again, the same client fetches the upgrade as patches.
    setup.proxy.set(Tamper::Nothing);
    let fetched = consumer
        .fetch(&name("example:greeter"), &any())
        .await
        .unwrap();
    assert_eq!(fetched.bytes, fixture("greeter-2.component.wasm"));
    assert!(fetched.stats.blobs_patched >= 1);
}

/// Threat model row 1 (tampered content), patches: a changed byte in a patch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_in_a_patch_is_refused() {
    let (setup, mut consumer) = upgrade_ready("tamper-patch").await;
    setup.proxy.set(Tamper::FlipPatchByte);
    assert_upgrade_refused(&setup, &mut consumer).await;
    setup.stop().await;
}

/// Threat model row 1 (tampered content), patches: a patch made against another blob than the
/// one it names, which the client applies to the wrong base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_against_another_base_than_it_names_is_refused() {
    let (setup, mut consumer) = upgrade_ready("tamper-patch-base").await;
    // The largest blob of 1.0.0 other than the one each patch is asked against: its root
    // skeleton stands in for every base.
    let first = fixture("greeter-1.component.wasm");
    let first = cairn_split::split(&first).unwrap();
    let other = first.manifest().root().digest.to_string();
    setup.proxy.set(Tamper::PatchAgainstOtherBase(other));
    assert_upgrade_refused(&setup, &mut consumer).await;
    setup.stop().await;
}
