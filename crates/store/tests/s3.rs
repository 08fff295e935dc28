//! The S3 content store against a real S3 server (`s3s-fs`, started on loopback by the test):
//! every kind of blob round trips byte for byte, compressible blobs are kept as zstd frames
//! and served as they are kept, a blob is written once, and a store that cannot reach its
//! bucket says so. Skipped, with a note, without `s3s-fs`, except in CI.

use cairn_store::{BlobDigest, BlobStore, S3ContentStore, S3Location};
use cairn_test_servers::S3Server;

fn store(server: &S3Server, location: &str) -> S3ContentStore {
    let env = server.env();
    let settings: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    S3ContentStore::with_settings(location.parse::<S3Location>().unwrap(), &settings).unwrap()
}

fn digest(bytes: &[u8]) -> BlobDigest {
    BlobDigest::Sha256(sha2_digest(bytes))
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn read_all(mut reader: Box<dyn std::io::Read + Send>) -> Vec<u8> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn blobs_round_trip_through_s3_and_are_written_once() {
    let Some(server) = S3Server::start("round-trip", &["blobs"]) else {
        return;
    };
    let store = store(&server, "s3://blobs/cairn/content");
    store.ping().unwrap();
    // Compressible (a module's worth of repeated code), and random bytes that do not shrink.
    let compressible: Vec<u8> = b"\0asm\x01\0\0\0"
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024)
        .collect();
    let mut random = vec![0u8; 8192];
    let mut x = 0x2545F4914F6CDD1Du64;
    for byte in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    for bytes in [&compressible, &random, &Vec::new()] {
        let id = digest(bytes);
        assert!(!store.has(&id).unwrap());
        assert_eq!(store.size(&id).unwrap(), None);
        store.put(&id, bytes).unwrap();
        assert!(store.has(&id).unwrap());
        assert_eq!(store.size(&id).unwrap(), Some(bytes.len() as u64));
        assert_eq!(read_all(store.open(&id).unwrap()), *bytes);
        assert_eq!(
            read_all(store.open_at(&id, 3.min(bytes.len() as u64)).unwrap()),
            bytes[3.min(bytes.len())..]
        );
    }
    // The compressible blob is kept as a frame, which is served as it is kept.
    let id = digest(&compressible);
    let (frame, length) = store.open_zstd(&id).unwrap().expect("kept compressed");
    let frame = read_all(frame);
    assert_eq!(frame.len() as u64, length);
    assert!(length < compressible.len() as u64 / 10);
    assert_eq!(zstd::decode_all(&frame[..]).unwrap(), compressible);
    assert!(store.open_zstd(&digest(&random)).unwrap().is_none());
    // Under its prefix, named by its digest.
    let hex: String = sha2_digest(&compressible)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let object = server
        .root()
        .join(format!("blobs/cairn/content/sha256/{hex}.zst"));
    assert!(object.is_file(), "{} missing", object.display());
    // Written once: a second put of the same blob leaves the object as it is.
    let before = std::fs::metadata(&object).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    store.put(&id, &compressible).unwrap();
    assert_eq!(
        std::fs::metadata(&object).unwrap().modified().unwrap(),
        before
    );
    // Deleted (OCI scratch repositories delete blobs).
    store.delete(&id).unwrap();
    assert!(!store.has(&id).unwrap());
    store.delete(&id).unwrap();
}

#[test]
fn a_bucket_out_of_reach_is_an_error_at_once() {
    let Some(server) = S3Server::start("missing-bucket", &["blobs"]) else {
        return;
    };
    let store = store(&server, "s3://no-such-bucket");
    let error = store.ping().unwrap_err();
    assert!(!error.to_string().is_empty());
    drop(server);
    let gone = store_at_dead_port();
    assert!(gone.ping().is_err());
}

fn store_at_dead_port() -> S3ContentStore {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    S3ContentStore::with_settings(
        "s3://blobs".parse().unwrap(),
        &[
            ("AWS_ENDPOINT", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
        ],
    )
    .unwrap()
}
