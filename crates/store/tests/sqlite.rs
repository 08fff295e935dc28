//! What only the SQLite store does, on a real database file: the record ids it keeps in
//! memory, its group commit's failed batches and two writing connections, upgrades of
//! earlier versions' files, and its WAL. What every store does is in `contract.rs`.

use std::path::PathBuf;

use cairn_protocol::{
    Checkpoint, Digest, PackageName, PrivateKey, RecordId, TimestampedCheckpoint,
};
use cairn_store::{
    CommitBatch, ContentRow, InsertOutcome, NewRecord, RecordRow, RecordStore, SequencedRecord,
    SqliteStore,
};

fn database(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("cairn.db")
}

fn ids(rows: Vec<RecordRow>) -> Vec<RecordId> {
    rows.iter().map(|row| row.record_id).collect()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_id_is_known_again_after_reopening() {
    // More records than the store reads back in one page when it opens.
    const RECORDS: u32 = 10_050;
    let path = database("many");
    let store = SqliteStore::open(&path).await.unwrap();
    let name: PackageName = "example:many".parse().unwrap();
    let mut tasks = Vec::new();
    for task in 0..50u32 {
        let (store, name) = (store.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            for n in (task..RECORDS).step_by(50) {
                store
                    .insert_record(insert(&name, record_id(n), b"e", &[]))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    store.close().await;
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    for n in 0..RECORDS {
        let row = store.record(&record_id(n)).await.unwrap();
        assert_eq!(row.map(|row| row.record_id), Some(record_id(n)));
    }
    for n in [0, 1, RECORDS / 2, RECORDS - 1] {
        let again = store
            .insert_record(insert(&name, record_id(n), b"other", &[]))
            .await
            .unwrap();
        assert!(
            matches!(&again, InsertOutcome::AlreadyThere(row) if row.record_id == record_id(n)),
            "{again:?}"
        );
    }
    let new = store
        .insert_record(insert(&name, record_id(RECORDS), b"e", &[]))
        .await
        .unwrap();
    assert!(
        matches!(&new, InsertOutcome::Inserted(row) if row.seq == i64::from(RECORDS) + 1),
        "{new:?}"
    );
}

/// A batch whose one `INSERT` commits and then fails (here a trigger drops one of its rows,
/// so fewer rows come back than were sent): the rows it did commit are read back before its
/// records are retried one by one, so none of them is stored twice, and each is answered.
#[tokio::test]
async fn the_committed_part_of_a_failed_batch_is_not_stored_again() {
    let path = database("failed-batch");
    let store = SqliteStore::open(&path).await.unwrap();
    let name: PackageName = "example:batch".parse().unwrap();
    // The log exists first, so that the batch below is one `INSERT` committing on its own.
    store
        .insert_record(insert(&name, record_id(0), b"e", &[]))
        .await
        .unwrap();
    let dropped = record_id(25);
    {
        use sqlx::Connection as _;
        let mut connection =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
        sqlx::query(&format!(
            "CREATE TRIGGER drop_one BEFORE INSERT ON records \
             WHEN NEW.record_id = '{dropped}' BEGIN SELECT RAISE(IGNORE); END"
        ))
        .execute(&mut connection)
        .await
        .unwrap();
        connection.close().await.unwrap();
    }
    // This runtime has one thread: the group commit runs only after every task below has
    // sent its record, so they share one batch.
    let tasks: Vec<_> = (1..50u32)
        .map(|n| {
            let (store, name) = (store.clone(), name.clone());
            tokio::spawn(async move {
                store
                    .insert_record(insert(&name, record_id(n), b"e", &[]))
                    .await
            })
        })
        .collect();
    let mut caught_up = 0;
    for (n, task) in (1..50u32).zip(tasks) {
        let outcome = task.await.unwrap();
        if n == 25 {
            assert!(outcome.is_err(), "{outcome:?}");
            continue;
        }
        match outcome {
            Ok(InsertOutcome::Inserted(row)) => assert_eq!(row.record_id, record_id(n)),
            // Committed by the failed batch, found again by the retry.
            Ok(InsertOutcome::AlreadyThere(row)) => {
                assert_eq!(row.record_id, record_id(n));
                caught_up += 1;
            }
            Err(error) => panic!("record {n}: {error}"),
        }
    }
    assert!(caught_up > 0, "the batch never failed: nothing was tested");
    store.close().await;
    let mut connection = {
        use sqlx::Connection as _;
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    };
    let (rows, ids): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT record_id) FROM records")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!((rows, ids), (49, 49));
}

#[tokio::test]
async fn a_database_of_the_earlier_version_is_upgraded_in_place() {
    // The earlier version indexed every unsequenced record by log, and record ids in a
    // unique index: its waiting records are kept as possible inits when the first goes, and
    // every record is kept, still once, when the table is rebuilt without the second.
    let path = database("upgrade");
    let name: PackageName = "example:old".parse().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let connect = || {
        use sqlx::ConnectOptions as _;
        options.connect()
    };
    {
        let mut old = connect().await.unwrap();
        let statements = [
            "CREATE TABLE logs (log_id TEXT PRIMARY KEY, name TEXT, name_lower TEXT UNIQUE)",
            "CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
             record_id TEXT NOT NULL UNIQUE, log_id TEXT NOT NULL REFERENCES logs (log_id), \
             envelope BLOB NOT NULL, status TEXT NOT NULL, reason TEXT, \
             registry_index BIGINT UNIQUE)",
            "CREATE INDEX records_unsequenced_by_log ON records (log_id, seq) \
             WHERE status IN ('pending', 'sourcing')",
        ];
        for statement in statements {
            sqlx::query(statement).execute(&mut old).await.unwrap();
        }
        sqlx::query("INSERT INTO logs VALUES ($1, $2, $2)")
            .bind(name.log_id().to_string())
            .bind(name.to_string())
            .execute(&mut old)
            .await
            .unwrap();
        for (n, status, index) in [(1, "validated", Some(0)), (2, "pending", None)] {
            sqlx::query(
                "INSERT INTO records (record_id, log_id, envelope, status, registry_index) \
                 VALUES ($1, $2, x'00', $3, $4)",
            )
            .bind(record_id(n).to_string())
            .bind(name.log_id().to_string())
            .bind(status)
            .bind(index)
            .execute(&mut old)
            .await
            .unwrap();
        }
    }
    for _ in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        let waiting = store.unsequenced_inits(&name.log_id()).await.unwrap();
        assert_eq!(ids(waiting), [record_id(2)]);
        let validated = store.validated_range(0, u64::MAX).await.unwrap();
        assert_eq!(ids(validated.clone()), [record_id(1)]);
        assert_eq!(validated[0].registry_index, Some(0));
        let again = store
            .insert_record(insert(&name, record_id(2), b"other", &[]))
            .await
            .unwrap();
        assert!(
            matches!(&again, InsertOutcome::AlreadyThere(row) if row.seq == 2 && row.envelope == [0]),
            "{again:?}"
        );
        // New records continue the sequence.
        let n = 2 + store.pending(10).await.unwrap().len() as u32;
        let new = store
            .insert_record(insert(&name, record_id(n), b"new", &[]))
            .await
            .unwrap();
        assert!(
            matches!(&new, InsertOutcome::Inserted(row) if row.seq == i64::from(n)),
            "{new:?}"
        );
        store.close().await;
    }
    let mut check = connect().await.unwrap();
    let gone: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name = 'records_unsequenced_by_log' \
         OR (name = 'records' AND (sql LIKE '%UNIQUE%' OR sql LIKE '%AUTOINCREMENT%'))",
    )
    .fetch_all(&mut check)
    .await
    .unwrap();
    assert!(gone.is_empty(), "{gone:?}");
}

#[tokio::test]
async fn a_database_of_this_version_is_opened_as_it_is() {
    let path = database("current");
    let root_page = || async {
        use sqlx::ConnectOptions as _;
        let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>("SELECT rootpage FROM sqlite_master WHERE name = 'records'")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    };
    let name: PackageName = "example:current".parse().unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .insert_record(insert(&name, record_id(1), b"e", &[]))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let before = root_page().await;
    let store = SqliteStore::open(&path).await.unwrap();
    store.close().await;
    // The records table was not rebuilt (a rebuilt table starts at another page).
    assert_eq!(root_page().await, before);
}

/// Both writing connections at once: the group commit inserting records (new logs, and
/// records waiting for content) while sequencer commits, content arrivals and content rows
/// go through the other. None fails with `SQLITE_BUSY`, and every record ends validated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_writers_never_fail_each_other() {
    let path = database("two-writers");
    let store = SqliteStore::open(&path).await.unwrap();
    let key = PrivateKey::generate().unwrap();
    let content = Digest::of(b"shared content");
    const RECORDS: u32 = 1200;
    let mut inserters = Vec::new();
    for client in 0..8u32 {
        let store = store.clone();
        inserters.push(tokio::spawn(async move {
            for n in (client..RECORDS).step_by(8) {
                let name: PackageName = format!("example:two-n{}", n % 60).parse().unwrap();
                // Every tenth record waits for content, until it arrives.
                let missing = if n % 10 == 0 { vec![content] } else { vec![] };
                store
                    .insert_record(insert(&name, record_id(n), b"e", &missing))
                    .await
                    .unwrap();
            }
        }));
    }
    let mut index = 0u64;
    let mut rounds = 0;
    while index < u64::from(RECORDS) {
        rounds += 1;
        assert!(rounds < 10_000, "records never became pending");
        if rounds == 20 {
            store
                .put_content(&ContentRow {
                    digest: content,
                    size: 14,
                    tree_digest: "tree".into(),
                    manifest: "{}".into(),
                })
                .await
                .unwrap();
        }
        if rounds >= 20 {
            // Records inserted after the content arrived still wait for it (the row is not
            // consulted here), so mark it arrived in every round from then on.
            store.content_arrived(&content).await.unwrap();
        }
        let pending = store.pending(500).await.unwrap();
        if pending.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            continue;
        }
        let before = index;
        let validated = pending
            .iter()
            .map(|row| {
                let sequenced = SequencedRecord {
                    seq: row.seq,
                    record_id: row.record_id,
                    registry_index: index,
                };
                index += 1;
                sequenced
            })
            .collect();
        let checkpoint = TimestampedCheckpoint::new(
            Checkpoint {
                log_root: Digest::of(&index.to_le_bytes()),
                log_length: index,
                map_root: Digest::of(b"map"),
            },
            1_800_000_000 + index,
        )
        .sign(&key);
        store
            .commit(&CommitBatch {
                log_length_before: Some(before),
                validated,
                rejected: vec![],
                checkpoint: Some(checkpoint),
            })
            .await
            .unwrap();
    }
    for inserter in inserters {
        inserter.await.unwrap();
    }
    let validated = store.validated_range(0, u64::MAX).await.unwrap();
    assert_eq!(validated.len(), RECORDS as usize);
    let indices: Vec<u64> = validated.iter().filter_map(|r| r.registry_index).collect();
    assert_eq!(indices, (0..u64::from(RECORDS)).collect::<Vec<_>>());
    assert!(store.pending(10).await.unwrap().is_empty());
}

/// The sequencer's commit fsyncs the WAL file by SQLite's own name for it: opened through a
/// symbolic link, the store syncs the WAL beside the real file (a path built from the link
/// would name a file that does not exist, and the commit would fail).
#[cfg(unix)]
#[tokio::test]
async fn a_store_opened_through_a_symbolic_link_syncs_its_real_wal() {
    let real = database("symlink-real");
    let link = database("symlink-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    // The database file must exist for the link to resolve.
    drop(SqliteStore::open(&real).await.unwrap());
    let store = SqliteStore::open(&link).await.unwrap();
    let name: PackageName = "example:linked".parse().unwrap();
    store
        .insert_record(insert(&name, record_id(1), b"e", &[]))
        .await
        .unwrap();
    let pending = store.pending(10).await.unwrap();
    let key = PrivateKey::generate().unwrap();
    let checkpoint = TimestampedCheckpoint::new(
        Checkpoint {
            log_root: Digest::of(b"root"),
            log_length: 1,
            map_root: Digest::of(b"map"),
        },
        1_800_000_000,
    )
    .sign(&key);
    store
        .commit(&CommitBatch {
            log_length_before: Some(0),
            validated: vec![SequencedRecord {
                seq: pending[0].seq,
                record_id: pending[0].record_id,
                registry_index: 0,
            }],
            rejected: vec![],
            checkpoint: Some(checkpoint),
        })
        .await
        .unwrap();
    assert!(!link.with_file_name("cairn.db-wal").exists());
    assert!(real.with_file_name("cairn.db-wal").exists());
}
