//! The store's contract, run against every store: SQLite on a real file and PostgreSQL on
//! a real server (a cluster of the test's own, on loopback; skipped, with a note, when
//! PostgreSQL is not installed, except in CI). Inserts (idempotent, case-insensitive names,
//! under concurrency), content arrival and provisional content, sequencer commits, OCI
//! metadata, publisher accounts, and what survives reopening the store.

use std::sync::Arc;

use cairn_protocol::{
    Checkpoint, Digest, LogId, PackageName, PrivateKey, RecordId, TimestampedCheckpoint,
};
use cairn_store::{
    CommitBatch, ContentRow, Database, InsertOutcome, NewPublisher, NewRecord, OciManifestRow,
    PublisherScope, RecordRow, RecordStatus, RejectedRecord, SequencedRecord, Store, StoreError,
};

/// A store under test: its database, which [`Under::open`] opens (again).
struct Under {
    database: Database,
}

impl Under {
    async fn open(&self) -> Arc<dyn Store> {
        cairn_store::open(&self.database).await.unwrap()
    }
}

fn sqlite(test: &str) -> Under {
    let dir = std::env::temp_dir().join(format!("cairn-contract-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Under {
        database: Database::Sqlite(dir.join("cairn.db")),
    }
}

fn postgres(test: &str) -> Option<Under> {
    let cluster = cairn_test_servers::Cluster::shared()?;
    Some(Under {
        database: Database::Postgres(cluster.create_database(test)),
    })
}

/// Each test, once on SQLite and once on PostgreSQL.
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::sqlite(stringify!($test))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(under) = super::postgres(stringify!($test)) {
                        super::$test(under).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    a_record_is_inserted_once_and_read_back,
    package_names_are_unique_regardless_of_case,
    a_record_waits_for_its_content_then_queues,
    inits_waiting_to_be_sequenced_are_found_by_their_log,
    a_sequencer_commit_is_one_transaction_and_survives_reopening,
    concurrent_inserts_are_all_committed,
    concurrent_duplicates_and_name_clashes_each_get_their_own_answer,
    a_record_missing_more_content_than_one_statement_binds_is_inserted,
    uploaded_content_is_provisional_until_a_claimant_is_published,
    abandoned_content_is_withdrawn_with_its_unshared_blobs,
    oci_manifests_tags_and_blobs_are_kept_per_repository,
    publisher_accounts_are_added_found_by_token_and_revoked,
    figures_count_pending_records_and_kept_content,
    a_round_decided_against_an_old_log_commits_nothing,
    one_sequencer_lease_at_a_time,
    committed_records_and_checkpoints_are_read_from_any_length,
);

fn record_id(n: u32) -> RecordId {
    RecordId::package_record(&n.to_le_bytes())
}

fn insert<'a>(
    name: &'a PackageName,
    id: RecordId,
    envelope: &'a [u8],
    missing: &'a [Digest],
) -> NewRecord<'a> {
    NewRecord {
        record_id: id,
        log_id: name.log_id(),
        package_name: Some(name),
        envelope,
        missing_content: missing,
        is_init: false,
    }
}

async fn a_record_is_inserted_once_and_read_back(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:one".parse().unwrap();
    let first = store
        .insert_record(insert(&name, record_id(1), b"envelope", &[]))
        .await
        .unwrap();
    let InsertOutcome::Inserted(row) = first else {
        panic!("{first:?}")
    };
    assert_eq!(row.status, RecordStatus::Pending);
    assert_eq!(row.envelope, b"envelope");
    let again = store
        .insert_record(insert(&name, record_id(1), b"other bytes", &[]))
        .await
        .unwrap();
    assert_eq!(again, InsertOutcome::AlreadyThere(row.clone()));
    assert_eq!(
        store.record(&record_id(1)).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(
        store.log_name(&name.log_id()).await.unwrap(),
        Some(Some("example:one".into()))
    );
    assert_eq!(store.log_name(&LogId::operator_log()).await.unwrap(), None);
    assert_eq!(store.record(&record_id(2)).await.unwrap(), None);
    // Still once after reopening the database.
    store.close().await;
    drop(store);
    let store = under.open().await;
    let again = store
        .insert_record(insert(&name, record_id(1), b"other bytes", &[]))
        .await
        .unwrap();
    assert_eq!(again, InsertOutcome::AlreadyThere(row.clone()));
    assert_eq!(store.record(&record_id(1)).await.unwrap(), Some(row));
}

async fn package_names_are_unique_regardless_of_case(under: Under) {
    let store = under.open().await;
    // Names are lowercase by the protocol's rules; the store enforces case-insensitive
    // uniqueness on its own, so build a clash through a different log id.
    let name: PackageName = "example:name".parse().unwrap();
    store
        .insert_record(insert(&name, record_id(1), b"a", &[]))
        .await
        .unwrap();
    let result = store
        .insert_record(NewRecord {
            record_id: record_id(2),
            log_id: LogId::operator_log(),
            package_name: Some(&name),
            envelope: b"b",
            missing_content: &[],
            is_init: false,
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::NameConflict { .. })),
        "{result:?}"
    );
    // The failed insert left nothing behind, and the store still works.
    assert_eq!(store.record(&record_id(2)).await.unwrap(), None);
    store
        .insert_record(insert(&name, record_id(3), b"c", &[]))
        .await
        .unwrap();
}

async fn a_record_waits_for_its_content_then_queues(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:waits".parse().unwrap();
    let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
    store
        .insert_record(insert(&name, record_id(1), b"x", &[a, b]))
        .await
        .unwrap();
    assert_eq!(
        store.record(&record_id(1)).await.unwrap().unwrap().status,
        RecordStatus::Sourcing
    );
    let mut missing = store.missing_content(&record_id(1)).await.unwrap();
    missing.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(missing, expected);
    assert!(store.content_arrived(&a).await.unwrap().is_empty());
    assert_eq!(store.content_arrived(&b).await.unwrap(), vec![record_id(1)]);
    assert_eq!(
        store.record(&record_id(1)).await.unwrap().unwrap().status,
        RecordStatus::Pending
    );
    let row = ContentRow {
        digest: a,
        size: 1,
        tree_digest: "sha256:00".into(),
        manifest: "{}".into(),
    };
    store.put_content(&row).await.unwrap();
    store.put_content(&row).await.unwrap();
    assert_eq!(store.content(&a).await.unwrap(), Some(row));
}

fn rejected(row: &RecordRow, reason: &str) -> RejectedRecord {
    RejectedRecord {
        seq: row.seq,
        record_id: row.record_id,
        reason: reason.into(),
    }
}

fn ids(rows: Vec<RecordRow>) -> Vec<RecordId> {
    rows.iter().map(|row| row.record_id).collect()
}

async fn inits_waiting_to_be_sequenced_are_found_by_their_log(under: Under) {
    let store = under.open().await;
    let a: PackageName = "example:a".parse().unwrap();
    let b: PackageName = "example:b".parse().unwrap();
    let missing = [Digest::of(b"not uploaded")];
    let records = [
        NewRecord {
            is_init: true,
            ..insert(&a, record_id(1), b"init", &[])
        },
        insert(&a, record_id(2), b"release", &[]),
        NewRecord {
            is_init: true,
            ..insert(&b, record_id(3), b"init", &[])
        },
        // A second init of `a`, waiting for content: sourcing is not sequenced either.
        NewRecord {
            is_init: true,
            ..insert(&a, record_id(4), b"init", &missing)
        },
    ];
    for record in records {
        store.insert_record(record).await.unwrap();
    }
    let a_inits = store.unsequenced_inits(&a.log_id()).await.unwrap();
    assert_eq!(ids(a_inits), [record_id(1), record_id(4)]);
    // Once sequenced or rejected, an init no longer waits.
    let first = store.pending(1).await.unwrap().remove(0);
    let second_init = store.record(&record_id(4)).await.unwrap().unwrap();
    let batch = CommitBatch {
        log_length_before: Some(0),
        validated: vec![SequencedRecord {
            seq: first.seq,
            record_id: first.record_id,
            registry_index: 0,
        }],
        rejected: vec![rejected(&second_init, "a second init")],
        checkpoint: None,
    };
    store.commit(&batch).await.unwrap();
    assert!(store
        .unsequenced_inits(&a.log_id())
        .await
        .unwrap()
        .is_empty());
    let b_inits = store.unsequenced_inits(&b.log_id()).await.unwrap();
    assert_eq!(ids(b_inits), [record_id(3)]);
}

async fn a_sequencer_commit_is_one_transaction_and_survives_reopening(under: Under) {
    let name: PackageName = "example:seq".parse().unwrap();
    let key = PrivateKey::generate().unwrap();
    let checkpoint = TimestampedCheckpoint::new(
        Checkpoint {
            log_root: Digest::of(b"root"),
            log_length: 2,
            map_root: Digest::of(b"map"),
        },
        1_800_000_000,
    )
    .sign(&key);
    {
        let store = under.open().await;
        for n in 1..=3 {
            store
                .insert_record(insert(&name, record_id(n), b"e", &[]))
                .await
                .unwrap();
        }
        let pending = store.pending(10).await.unwrap();
        let ids: Vec<RecordId> = pending.iter().map(|r| r.record_id).collect();
        assert_eq!(ids, vec![record_id(1), record_id(2), record_id(3)]);
        let sequenced = |row: &RecordRow, registry_index| SequencedRecord {
            seq: row.seq,
            record_id: row.record_id,
            registry_index,
        };
        // A leaf naming the wrong record for its row is refused, and nothing of it lands.
        let mismatched = CommitBatch {
            log_length_before: Some(0),
            validated: vec![SequencedRecord {
                record_id: record_id(2),
                ..sequenced(&pending[0], 0)
            }],
            rejected: vec![],
            checkpoint: None,
        };
        assert!(store.commit(&mismatched).await.is_err());
        let batch = CommitBatch {
            log_length_before: Some(0),
            validated: vec![sequenced(&pending[0], 0), sequenced(&pending[2], 1)],
            rejected: vec![rejected(&pending[1], "no")],
            checkpoint: Some(checkpoint.clone()),
        };
        store.commit(&batch).await.unwrap();
        // A second checkpoint at the same length is refused and nothing of its batch lands.
        let clash = CommitBatch {
            log_length_before: Some(2),
            validated: vec![],
            rejected: vec![rejected(&pending[0], "late")],
            checkpoint: Some(checkpoint.clone()),
        };
        assert!(store.commit(&clash).await.is_err());
        store.close().await;
    }
    let store = under.open().await;
    assert!(store.pending(10).await.unwrap().is_empty());
    let validated: Vec<(RecordId, Option<u64>)> = store
        .validated_range(0, u64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.record_id, r.registry_index))
        .collect();
    assert_eq!(
        validated,
        vec![(record_id(1), Some(0)), (record_id(3), Some(1))]
    );
    let rejected = store.record(&record_id(2)).await.unwrap().unwrap();
    assert_eq!(
        (rejected.status, rejected.reason.as_deref()),
        (RecordStatus::Rejected, Some("no"))
    );
    assert_eq!(
        store.record(&record_id(1)).await.unwrap().unwrap().status,
        RecordStatus::Validated
    );
    assert_eq!(store.checkpoints().await.unwrap(), vec![checkpoint]);
    let after_first = store
        .log_records(&name.log_id(), Some(0), 2, 10)
        .await
        .unwrap();
    assert_eq!(
        after_first
            .iter()
            .map(|r| r.registry_index)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert!(
        store
            .log_records(&name.log_id(), None, 1, 10)
            .await
            .unwrap()
            .len()
            == 1
    );
}

async fn concurrent_inserts_are_all_committed(under: Under) {
    let store = under.open().await;
    let mut tasks = Vec::new();
    for n in 0..400u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name: PackageName = format!("example:package-n{}", n % 40).parse().unwrap();
            let outcome = store
                .insert_record(insert(&name, record_id(n), b"e", &[]))
                .await
                .unwrap();
            assert!(matches!(outcome, InsertOutcome::Inserted(_)));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.pending(1000).await.unwrap().len(), 400);
}

async fn concurrent_duplicates_and_name_clashes_each_get_their_own_answer(under: Under) {
    let store = under.open().await;
    // Names are lowercase by the protocol; a clash is the same name under two log ids.
    let clash: PackageName = "example:clash".parse().unwrap();
    let mut tasks = Vec::new();
    // Each record sent three times at once, with the missing content of some; and two
    // spellings of one name racing for the same log name.
    for n in 0..60u32 {
        for _ in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let name: PackageName = format!("example:dup-n{}", n % 6).parse().unwrap();
                let missing = if n % 2 == 0 {
                    vec![cairn_protocol::Digest::of(&n.to_le_bytes())]
                } else {
                    vec![]
                };
                let outcome = store
                    .insert_record(insert(&name, record_id(n), b"e", &missing))
                    .await
                    .unwrap();
                (n, outcome)
            }));
        }
    }
    let clashes: Vec<_> = [(clash.log_id(), 1000u32), (LogId::operator_log(), 1001u32)]
        .into_iter()
        .map(|(log_id, n)| {
            let (store, name) = (store.clone(), clash.clone());
            tokio::spawn(async move {
                store
                    .insert_record(NewRecord {
                        record_id: record_id(n),
                        log_id,
                        package_name: Some(&name),
                        envelope: b"e",
                        missing_content: &[],
                        is_init: false,
                    })
                    .await
            })
        })
        .collect();
    let mut inserted = std::collections::HashMap::new();
    for task in tasks {
        let (n, outcome) = task.await.unwrap();
        let row = match outcome {
            InsertOutcome::Inserted(row) => {
                *inserted.entry(n).or_insert(0) += 1;
                row
            }
            InsertOutcome::AlreadyThere(row) => row,
        };
        assert_eq!(row.record_id, record_id(n));
        let expected = if n % 2 == 0 {
            RecordStatus::Sourcing
        } else {
            RecordStatus::Pending
        };
        assert_eq!(row.status, expected);
    }
    // Exactly one of the three sends inserted each record.
    assert_eq!(inserted.len(), 60);
    assert!(inserted.values().all(|&count| count == 1));
    let mut outcomes = Vec::new();
    for task in clashes {
        outcomes.push(task.await.unwrap());
    }
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::NameConflict { .. })))
        .count();
    assert_eq!(refused, 1, "{outcomes:?}");
    assert_eq!(store.pending(1000).await.unwrap().len(), 30 + 1);
    for n in (0..60u32).filter(|n| n % 2 == 0) {
        assert_eq!(
            store.missing_content(&record_id(n)).await.unwrap(),
            [cairn_protocol::Digest::of(&n.to_le_bytes())]
        );
    }
}

async fn a_record_missing_more_content_than_one_statement_binds_is_inserted(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:many".parse().unwrap();
    // 20,000 missing digests: 40,000 bound values in one statement would exceed SQLite's
    // limit (32,766).
    let missing: Vec<Digest> = (0..20_000u32)
        .map(|n| Digest::of(&n.to_le_bytes()))
        .collect();
    let other: PackageName = "example:other".parse().unwrap();
    let (big, small) = tokio::join!(
        store.insert_record(insert(&name, record_id(1), b"e", &missing)),
        store.insert_record(insert(&other, record_id(2), b"e", &[])),
    );
    assert!(
        matches!(big.unwrap(), InsertOutcome::Inserted(row) if row.status == RecordStatus::Sourcing)
    );
    assert!(matches!(small.unwrap(), InsertOutcome::Inserted(_)));
    let mut expected = missing.clone();
    expected.sort_by_key(|d| d.to_string());
    assert_eq!(
        store.missing_content(&record_id(1)).await.unwrap(),
        expected
    );
}

/// A content row whose manifest names `blobs` (digest, size).
fn content_row(name: &[u8], blobs: &[(&str, u64)]) -> ContentRow {
    let blobs: Vec<String> = blobs
        .iter()
        .map(|(digest, size)| format!(r#"{{"digest":"{digest}","size":{size}}}"#))
        .collect();
    ContentRow {
        digest: Digest::of(name),
        size: blobs.len() as u64 * 100,
        tree_digest: "sha256:00".into(),
        manifest: format!(r#"{{"blobs":[{}]}}"#, blobs.join(",")),
    }
}

fn blob(n: u8) -> String {
    format!("sha256:{}", hex_of(n))
}

fn hex_of(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn validate(row: &RecordRow, registry_index: u64) -> SequencedRecord {
    SequencedRecord {
        seq: row.seq,
        record_id: row.record_id,
        registry_index,
    }
}

async fn uploaded_content_is_provisional_until_a_claimant_is_published(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:claims".parse().unwrap();
    let content = content_row(b"app", &[(&blob(1), 10), (&blob(2), 20)]);
    store
        .insert_record(insert(&name, record_id(1), b"e", &[content.digest]))
        .await
        .unwrap();
    let ready = store.content_uploaded(&content, 1_000).await.unwrap();
    assert_eq!(ready, [record_id(1)]);
    // Stored, but provisional: invisible to readers, counted as provisional.
    assert_eq!(store.content(&content.digest).await.unwrap(), None);
    assert!(!store.blob_is_published(&blob(1)).await.unwrap());
    assert_eq!(store.provisional_bytes().await.unwrap(), content.size);
    // The sequencer publishes the claimant: the content is kept, in the same commit.
    let row = store.pending(10).await.unwrap().remove(0);
    store
        .commit(&CommitBatch {
            log_length_before: Some(0),
            validated: vec![validate(&row, 0)],
            rejected: vec![],
            checkpoint: None,
        })
        .await
        .unwrap();
    assert_eq!(store.content(&content.digest).await.unwrap(), Some(content));
    assert!(store.blob_is_published(&blob(2)).await.unwrap());
    assert_eq!(store.provisional_bytes().await.unwrap(), 0);
    assert!(store.abandoned_contents(i64::MAX).await.unwrap().is_empty());
}

async fn abandoned_content_is_withdrawn_with_its_unshared_blobs(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:abandoned".parse().unwrap();
    // Kept content that shares blob 1 with the abandoned one.
    let kept = content_row(b"kept", &[(&blob(1), 10)]);
    store.put_content(&kept).await.unwrap();
    let content = content_row(b"dropped", &[(&blob(1), 10), (&blob(3), 30)]);
    let other = Digest::of(b"never uploaded");
    store
        .insert_record(insert(&name, record_id(1), b"e", &[content.digest, other]))
        .await
        .unwrap();
    assert!(store
        .content_uploaded(&content, 1_000)
        .await
        .unwrap()
        .is_empty());
    // The claimant still waits for other content: abandoned only after the deadline.
    assert!(store.abandoned_contents(500).await.unwrap().is_empty());
    assert_eq!(
        store.withdraw_content(&content.digest, 500).await.unwrap(),
        None
    );
    assert_eq!(
        store.abandoned_contents(2_000).await.unwrap(),
        [content.digest]
    );
    let unshared = store
        .withdraw_content(&content.digest, 2_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unshared, [blob(3)]);
    // The record waits for it again; the kept content is untouched.
    let mut missing = store.missing_content(&record_id(1)).await.unwrap();
    missing.sort();
    let mut expected = vec![content.digest, other];
    expected.sort();
    assert_eq!(missing, expected);
    assert_eq!(store.content(&kept.digest).await.unwrap(), Some(kept));
    assert!(store.blob_is_published(&blob(1)).await.unwrap());
    assert_eq!(store.provisional_bytes().await.unwrap(), 0);
}

async fn oci_manifests_tags_and_blobs_are_kept_per_repository(under: Under) {
    let store = under.open().await;
    let manifest = |repository: &str, n: u8, subject: Option<String>| OciManifestRow {
        repository: repository.into(),
        digest: blob(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: vec![n, 0, 255],
        subject,
        artifact_type: Some("application/wasm".into()),
    };
    store.oci_add_blob("ns/a", &blob(10)).await.unwrap();
    store.oci_add_blob("ns/a", &blob(10)).await.unwrap();
    assert!(store.oci_has_blob("ns/a", &blob(10)).await.unwrap());
    assert!(!store.oci_has_blob("ns/b", &blob(10)).await.unwrap());
    assert!(store.oci_blob_anywhere(&blob(10)).await.unwrap());
    let image = manifest("ns/a", 20, None);
    store.oci_put_manifest(&image, &["v2", "v1"]).await.unwrap();
    let signature = manifest("ns/a", 21, Some(blob(20)));
    store.oci_put_manifest(&signature, &[]).await.unwrap();
    assert_eq!(
        store.oci_manifest("ns/a", &blob(20)).await.unwrap(),
        Some(image.clone())
    );
    assert_eq!(store.oci_tag("ns/a", "v1").await.unwrap(), Some(blob(20)));
    assert_eq!(store.oci_tags("ns/a").await.unwrap(), ["v1", "v2"]);
    assert_eq!(
        store.oci_referrers("ns/a", &blob(20)).await.unwrap(),
        [signature]
    );
    store.oci_add_blob("ns/B", &blob(11)).await.unwrap();
    assert_eq!(store.oci_repositories().await.unwrap(), ["ns/B", "ns/a"]);
    assert!(store.oci_repository_exists("ns/B").await.unwrap());
    // A tag moves; deleting a manifest takes its tags with it.
    store
        .oci_put_manifest(&manifest("ns/a", 22, None), &["v2"])
        .await
        .unwrap();
    assert_eq!(store.oci_tag("ns/a", "v2").await.unwrap(), Some(blob(22)));
    assert!(store.oci_delete_manifest("ns/a", &blob(20)).await.unwrap());
    assert!(!store.oci_delete_manifest("ns/a", &blob(20)).await.unwrap());
    assert_eq!(store.oci_tag("ns/a", "v1").await.unwrap(), None);
    assert!(store.oci_delete_tag("ns/a", "v2").await.unwrap());
    assert!(store.oci_tags("ns/a").await.unwrap().is_empty());
    assert!(store.oci_remove_blob("ns/B", &blob(11)).await.unwrap());
    assert!(!store.oci_repository_exists("ns/B").await.unwrap());
}

async fn publisher_accounts_are_added_found_by_token_and_revoked(under: Under) {
    let store = under.open().await;
    assert!(!store.any_active_publisher().await.unwrap());
    let scopes: Vec<PublisherScope> = vec!["example".parse().unwrap()];
    let account = |name: &'static str, token: &'static str| NewPublisher {
        name,
        token_sha256: token,
        public_key: "ecdsa-p256:key",
        scopes: &[],
        created: 100,
    };
    store
        .add_publisher(&NewPublisher {
            scopes: &scopes,
            ..account("ci", "aa")
        })
        .await
        .unwrap();
    store.add_publisher(&account("alice", "bb")).await.unwrap();
    let taken = store.add_publisher(&account("ci", "cc")).await;
    assert!(
        matches!(taken, Err(StoreError::PublisherExists(ref name)) if name == "ci"),
        "{taken:?}"
    );
    let names: Vec<String> = store
        .publishers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alice", "ci"]);
    let ci = store.publisher_by_token("aa").await.unwrap().unwrap();
    assert_eq!((ci.name.as_str(), ci.scopes), ("ci", scopes));
    assert!(store.any_active_publisher().await.unwrap());
    assert!(store.revoke_publisher("ci", 200).await.unwrap());
    assert!(!store.revoke_publisher("ci", 300).await.unwrap());
    assert_eq!(store.publisher_by_token("aa").await.unwrap(), None);
    assert_eq!(
        store.publisher("ci").await.unwrap().unwrap().revoked,
        Some(200)
    );
}

async fn figures_count_pending_records_and_kept_content(under: Under) {
    let store = under.open().await;
    store.ping().await.unwrap();
    let name: PackageName = "example:figures".parse().unwrap();
    for n in 1..=3 {
        store
            .insert_record(insert(&name, record_id(n), b"e", &[]))
            .await
            .unwrap();
    }
    assert_eq!(store.pending_count().await.unwrap(), 3);
    // Two files sharing blob 1: 60 bytes of distinct blobs for 200 bytes of files.
    store
        .put_content(&content_row(b"one", &[(&blob(1), 10), (&blob(2), 20)]))
        .await
        .unwrap();
    store
        .put_content(&content_row(b"two", &[(&blob(1), 10), (&blob(3), 30)]))
        .await
        .unwrap();
    let totals = store.content_totals().await.unwrap();
    assert_eq!(
        (totals.contents, totals.content_bytes, totals.blob_bytes),
        (2, 400, 60)
    );
}

fn signed_checkpoint(length: u64) -> cairn_protocol::SignedCheckpoint {
    TimestampedCheckpoint::new(
        Checkpoint {
            log_root: Digest::of(&length.to_le_bytes()),
            log_length: length,
            map_root: Digest::of(b"map"),
        },
        1_800_000_000 + length,
    )
    .sign(&PrivateKey::generate().unwrap())
}

async fn a_round_decided_against_an_old_log_commits_nothing(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:fenced".parse().unwrap();
    for n in 1..=3 {
        store
            .insert_record(insert(&name, record_id(n), b"e", &[]))
            .await
            .unwrap();
    }
    let pending = store.pending(10).await.unwrap();
    // One sequencer commits the first record at length 1.
    store
        .commit(&CommitBatch {
            log_length_before: Some(0),
            validated: vec![validate(&pending[0], 0)],
            rejected: vec![],
            checkpoint: Some(signed_checkpoint(1)),
        })
        .await
        .unwrap();
    // A former sequencer that decided against the empty log: its leaf, its rejection and
    // its checkpoint all stay out, even at a length no one has used.
    let stale = store
        .commit(&CommitBatch {
            log_length_before: Some(0),
            validated: vec![validate(&pending[1], 0)],
            rejected: vec![rejected(&pending[2], "decided on an old log")],
            checkpoint: Some(signed_checkpoint(5)),
        })
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Fenced {
                expected: 0,
                found: 1
            })
        ),
        "{stale:?}"
    );
    // A round with only rejections is fenced too.
    let stale = store
        .commit(&CommitBatch {
            log_length_before: Some(0),
            validated: vec![],
            rejected: vec![rejected(&pending[2], "decided on an old log")],
            checkpoint: None,
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    assert_eq!(store.pending(10).await.unwrap().len(), 2);
    let lengths: Vec<u64> = store
        .checkpoints()
        .await
        .unwrap()
        .iter()
        .map(|c| c.contents.log_length)
        .collect();
    assert_eq!(lengths, [1]);
    // The sequencer that is up to date goes on.
    store
        .commit(&CommitBatch {
            log_length_before: Some(1),
            validated: vec![validate(&pending[1], 1)],
            rejected: vec![rejected(&pending[2], "no")],
            checkpoint: Some(signed_checkpoint(2)),
        })
        .await
        .unwrap();
    assert!(store.pending(10).await.unwrap().is_empty());
}

async fn one_sequencer_lease_at_a_time(under: Under) {
    let first = under.open().await;
    let lease = first
        .sequencer_lease()
        .await
        .unwrap()
        .expect("a free lease");
    assert!(lease.held().await);
    if !first.shared() {
        // One process has a SQLite file open: its lease is always its own.
        return;
    }
    // Another node (another store on the same database) cannot take it while it is held,
    // and takes it once it is let go.
    let second = under.open().await;
    assert!(second.sequencer_lease().await.unwrap().is_none());
    drop(lease);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let taken = loop {
        if let Some(lease) = second.sequencer_lease().await.unwrap() {
            break lease;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(taken.held().await);
    assert!(first.sequencer_lease().await.unwrap().is_none());
}

async fn committed_records_and_checkpoints_are_read_from_any_length(under: Under) {
    let store = under.open().await;
    let name: PackageName = "example:ranges".parse().unwrap();
    for n in 1..=4 {
        store
            .insert_record(insert(&name, record_id(n), b"e", &[]))
            .await
            .unwrap();
    }
    let pending = store.pending(10).await.unwrap();
    for (length, row) in (1..=4u64).zip(&pending) {
        store
            .commit(&CommitBatch {
                log_length_before: Some(length - 1),
                validated: vec![validate(row, length - 1)],
                rejected: vec![],
                checkpoint: Some(signed_checkpoint(length)),
            })
            .await
            .unwrap();
    }
    let range = store.validated_range(1, 3).await.unwrap();
    assert_eq!(ids(range), [record_id(2), record_id(3)]);
    let lengths: Vec<u64> = store
        .checkpoints_after(2)
        .await
        .unwrap()
        .iter()
        .map(|c| c.contents.log_length)
        .collect();
    assert_eq!(lengths, [3, 4]);
    assert!(store.checkpoints_after(4).await.unwrap().is_empty());
}
