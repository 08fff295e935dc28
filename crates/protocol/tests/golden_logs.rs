//! The golden package and operator logs of `vectors/warg/` (from the reference's tests)
//! reproduce their record ids and final states, and the fixed values of the specification's
//! Appendix A come out.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_protocol::{
    Envelope, HashAlgorithm, LogId, OperatorEntry, OperatorLogState, PackageEntry, PackageLogState,
    PackageName, PrivateKey, PublicKey, Record, RecordId, ReleaseState, Timestamp,
};
use serde_json::Value;

const ALICE_PRIVATE: &str = "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=";
const ALICE_PUBLIC: &str = "ecdsa-p256:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF";
const BOB_PRIVATE: &str = "ecdsa-p256:2CV1EpLaSYEn4In4OAEDAj5O4Hzu8AFAxgHXuG310Ew=";
const BOB_PUBLIC: &str = "ecdsa-p256:A5qc6uBi070EBb4GihGzpx6Cm5+oZnv4dWpBhhuZVagu";

fn vectors() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/warg"))
}

fn read_json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors().join(path)).unwrap()).unwrap()
}

/// Parses `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00`.
fn parse_time(text: &str) -> Timestamp {
    let (date, rest) = text.split_once('T').unwrap();
    let rest = rest.trim_end_matches("+00:00").trim_end_matches('Z');
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (clock, fraction) = rest.split_once('.').unwrap_or((rest, "0"));
    let t: Vec<i64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let nanos: i32 = format!("{fraction:0<9}")[..9].parse().unwrap();
    Timestamp {
        seconds: days * 86400 + t[0] * 3600 + t[1] * 60 + t[2],
        nanos,
    }
}

fn field<'a>(value: &'a Value, names: &[&str]) -> &'a Value {
    names
        .iter()
        .find_map(|n| value.get(*n))
        .unwrap_or_else(|| panic!("none of {names:?} in {value}"))
}

fn package_entry(entry: &Value) -> PackageEntry {
    let (kind, body) = entry.as_object().unwrap().iter().next().unwrap();
    let perms = |b: &Value| {
        b["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match p.as_str().unwrap() {
                "PACKAGE_PERMISSION_RELEASE" => cairn_protocol::PackagePermission::Release,
                "PACKAGE_PERMISSION_YANK" => cairn_protocol::PackagePermission::Yank,
                other => panic!("{other}"),
            })
            .collect()
    };
    match kind.as_str() {
        "init" => PackageEntry::Init {
            key: body["key"].as_str().unwrap().parse().unwrap(),
            hash_algorithm: HashAlgorithm::Sha256,
        },
        "grantFlat" => PackageEntry::Grant {
            key: body["key"].as_str().unwrap().parse().unwrap(),
            permissions: perms(body),
        },
        "revokeFlat" => PackageEntry::Revoke {
            key_id: field(body, &["keyId", "key_id"])
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            permissions: perms(body),
        },
        "release" => PackageEntry::Release {
            version: body["version"].as_str().unwrap().parse().unwrap(),
            content: field(body, &["contentHash", "content_hash"])
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        },
        "yank" => PackageEntry::Yank {
            version: body["version"].as_str().unwrap().parse().unwrap(),
        },
        other => panic!("unknown entry {other}"),
    }
}

fn operator_entry(entry: &Value) -> OperatorEntry {
    let (kind, body) = entry.as_object().unwrap().iter().next().unwrap();
    let perms = |b: &Value| {
        b["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match p.as_str().unwrap() {
                "OPERATOR_PERMISSION_COMMIT" => cairn_protocol::OperatorPermission::Commit,
                "OPERATOR_PERMISSION_DEFINE_NAMESPACE" => {
                    cairn_protocol::OperatorPermission::DefineNamespace
                }
                "OPERATOR_PERMISSION_IMPORT_NAMESPACE" => {
                    cairn_protocol::OperatorPermission::ImportNamespace
                }
                other => panic!("{other}"),
            })
            .collect()
    };
    match kind.as_str() {
        "init" => OperatorEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: body["key"].as_str().unwrap().parse().unwrap(),
        },
        "grantFlat" => OperatorEntry::Grant {
            key: body["key"].as_str().unwrap().parse().unwrap(),
            permissions: perms(body),
        },
        "revokeFlat" => OperatorEntry::Revoke {
            key_id: field(body, &["keyId", "key_id"])
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            permissions: perms(body),
        },
        other => panic!("unknown entry {other}"),
    }
}

/// Signs each input record in turn, linking it to the previous one, and returns the
/// envelopes.
fn build<E: cairn_protocol::LogKind>(inputs: &Value, entry: fn(&Value) -> E) -> Vec<Envelope<E>> {
    let mut envelopes: Vec<Envelope<E>> = Vec::new();
    for input in inputs.as_array().unwrap() {
        let key: PrivateKey = input["key"].as_str().unwrap().parse().unwrap();
        let contents = &input["contents"];
        let record = Record {
            prev: envelopes.last().map(|e| *e.record_id()),
            version: contents["version"].as_u64().unwrap() as u32,
            time: parse_time(contents["time"].as_str().unwrap()),
            entries: contents["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(entry)
                .collect(),
        };
        let envelope = Envelope::signed(record, &key);
        // The bytes decode back to the same record.
        let decoded = Envelope::<E>::from_parts(
            envelope.content_bytes().to_vec(),
            *envelope.key_id(),
            envelope.signature().clone(),
        )
        .unwrap();
        assert_eq!(decoded, envelope);
        envelopes.push(envelope);
    }
    envelopes
}

fn expected_permissions(state: &Value) -> BTreeMap<String, Vec<String>> {
    state["permissions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn check_package_log(name: &str) {
    let envelopes = build(
        &read_json(&format!("package-logs/{name}.json")),
        package_entry,
    );
    let mut state = PackageLogState::new();
    for envelope in &envelopes {
        state.validate(envelope).unwrap();
    }
    let expected = &read_json(&format!("package-logs/output/{name}.json"))["Valid"];
    let head = state.head().unwrap();
    assert_eq!(
        head.record_id.to_string(),
        expected["head"]["digest"].as_str().unwrap()
    );
    assert_eq!(
        head.timestamp.to_string(),
        expected["head"]["timestamp"].as_str().unwrap()
    );
    for (key_id, perms) in expected_permissions(expected) {
        let got: Vec<String> = state
            .permissions(&key_id.parse().unwrap())
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, perms, "permissions of {key_id}");
    }
    let keys: BTreeMap<String, String> = state
        .keys()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let want_keys: BTreeMap<String, String> =
        serde_json::from_value(expected["keys"].clone()).unwrap();
    assert_eq!(keys, want_keys);
    let releases = expected
        .get("releases")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    assert_eq!(state.releases().len(), releases.len());
    for (version, want) in releases {
        let release = state.release(&version.parse().unwrap()).unwrap();
        assert_eq!(
            release.record_id.to_string(),
            want["recordId"].as_str().unwrap()
        );
        assert_eq!(release.by.to_string(), want["by"].as_str().unwrap());
        assert_eq!(
            release.timestamp.to_string(),
            want["timestamp"].as_str().unwrap()
        );
        match (&release.state, want["state"]["status"].as_str().unwrap()) {
            (ReleaseState::Released { content }, "released") => {
                assert_eq!(
                    content.to_string(),
                    want["state"]["content"].as_str().unwrap()
                )
            }
            (ReleaseState::Yanked { by, timestamp }, "yanked") => {
                assert_eq!(by.to_string(), want["state"]["by"].as_str().unwrap());
                assert_eq!(
                    timestamp.to_string(),
                    want["state"]["timestamp"].as_str().unwrap()
                );
            }
            (got, want) => panic!("release state {got:?}, expected {want}"),
        }
    }
}

fn check_operator_log(name: &str) {
    let envelopes = build(
        &read_json(&format!("operator-logs/{name}.json")),
        operator_entry,
    );
    let mut state = OperatorLogState::new();
    for envelope in &envelopes {
        state.validate(envelope).unwrap();
    }
    let expected = &read_json(&format!("operator-logs/output/{name}.json"))["Valid"];
    let head = state.head().unwrap();
    assert_eq!(
        head.record_id.to_string(),
        expected["head"]["digest"].as_str().unwrap()
    );
    assert_eq!(
        head.timestamp.to_string(),
        expected["head"]["timestamp"].as_str().unwrap()
    );
    for (key_id, perms) in expected_permissions(expected) {
        let got: Vec<String> = state
            .permissions(&key_id.parse().unwrap())
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, perms, "permissions of {key_id}");
    }
    let keys: BTreeMap<String, String> = state
        .keys()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let want_keys: BTreeMap<String, String> =
        serde_json::from_value(expected["keys"].clone()).unwrap();
    assert_eq!(keys, want_keys);
}

#[test]
fn minimal_package_log_reproduces_its_record_id_and_state() {
    check_package_log("minimal");
}

#[test]
fn longer_package_log_reproduces_its_head_and_state() {
    check_package_log("longer");
}

#[test]
fn minimal_operator_log_reproduces_its_record_id_and_state() {
    check_operator_log("minimal");
}

#[test]
fn longer_operator_log_reproduces_its_head_and_state() {
    check_operator_log("longer");
}

#[test]
fn appendix_a_fixed_values() {
    assert_eq!(
        LogId::operator_log().to_string(),
        "sha256:0db9178aabc877b42f03a038bf453ee53f08e3c8c55fab916043428078596bfb"
    );
    let name: PackageName = "test:component".parse().unwrap();
    assert_eq!(
        name.log_id().to_string(),
        "sha256:9f9d9b178a40a81622705389a859c60b844e5a561eb05613058b1131ccd31bb2"
    );
    let name: PackageName = "example:hello".parse().unwrap();
    assert_eq!(
        name.log_id().to_string(),
        "sha256:071fda594d2219ee6a4b8fb7deb6e10f01a6dcf4890f2c120c973e5b0fe134d3"
    );
    assert_eq!(
        cairn_protocol::Digest::from(cairn_log::empty_map_root()).to_string(),
        "sha256:c6689f10812a0980976d9533d83875282166159567ec35155716c1413af53d6a"
    );
    assert_eq!(
        cairn_protocol::Digest::from(cairn_log::empty_log_root()).to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        cairn_protocol::Digest::of(b"\0asm\x01\0\0\0").to_string(),
        "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
    );
}

#[test]
fn appendix_a_keys_and_key_ids() {
    let alice: PrivateKey = ALICE_PRIVATE.parse().unwrap();
    assert_eq!(alice.public_key().to_string(), ALICE_PUBLIC);
    assert_eq!(
        alice.public_key().fingerprint().to_string(),
        "sha256:d6d9b4cd077a829c0275233bf3843c8294e250dfcc82b8ea15745e92982a820d"
    );
    assert_eq!(alice.to_secret_text(), ALICE_PRIVATE);
    let bob: PrivateKey = BOB_PRIVATE.parse().unwrap();
    assert_eq!(bob.public_key().to_string(), BOB_PUBLIC);
    assert_eq!(
        bob.public_key().fingerprint().to_string(),
        "sha256:8ed824821ce75c381458f8097996ab77780550ba7fb9c240e4799bb781941abb"
    );
    // A private key never prints itself.
    assert!(!format!("{alice:?}").contains("I+Ul"));
    // An uncompressed public key parses and prints compressed (same key id).
    let uncompressed = p256_uncompressed(&alice.public_key().to_string());
    let reparsed: PublicKey = uncompressed.parse().unwrap();
    assert_eq!(reparsed.to_string(), ALICE_PUBLIC);
}

fn p256_uncompressed(compressed_text: &str) -> String {
    use base64::Engine as _;
    let key: PublicKey = compressed_text.parse().unwrap();
    let point = key.to_p256().to_encoded_point(false);
    format!(
        "ecdsa-p256:{}",
        base64::engine::general_purpose::STANDARD.encode(point.as_bytes())
    )
}

#[test]
fn the_servers_operator_init_record_encodes_byte_for_byte() {
    use base64::Engine as _;
    // Captured from a live reference server: time{1795954935, 379818446},
    // init{sha256, Alice}, defineNamespace{example}.
    let captured = base64::engine::general_purpose::STANDARD
        .decode("GgwI97Gw2AYQzqOOtQEiQwpBCgZzaGEyNTYSN2VjZHNhLXAyNTY6QTFPZlp6NVk5Tnk3VktQVndyb0NUUVBBcjl0bWxJNFUvVVRZSFpIQTg3QUYiCyIJCgdleGFtcGxl")
        .unwrap();
    // (The specification calls it 66 bytes; the captured bytes are 96: 14 of time, 69 and 13 of entries.)
    assert_eq!(captured.len(), 96);
    let record = Record {
        prev: None,
        version: 0,
        time: Timestamp {
            seconds: 1795954935,
            nanos: 379818446,
        },
        entries: vec![
            OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: ALICE_PUBLIC.parse().unwrap(),
            },
            OperatorEntry::DefineNamespace {
                namespace: "example".parse().unwrap(),
            },
        ],
    };
    assert_eq!(record.encode(), captured);
    assert_eq!(Record::<OperatorEntry>::decode(&captured).unwrap(), record);
    assert_eq!(
        RecordId::operator_record(&captured).to_string(),
        "sha256:bf035e68620247a120f5b69333e1e763eaee32ce56a4e05cad00b121a9f3477e"
    );
}

#[test]
fn the_servers_captured_checkpoint_signature_verifies() {
    let json = r#"{"contents":{"logRoot":"sha256:bc03e1cbeaa90afcd314926bd5bc021523d563dd037756f8c65481ea88991f12","logLength":1,
 "mapRoot":"sha256:f090287209aec768753217b46a2c73fb4645c31b5db1d56a2a53a51f53951f05","timestamp":1795954935},
 "keyId":"sha256:d6d9b4cd077a829c0275233bf3843c8294e250dfcc82b8ea15745e92982a820d",
 "signature":"ecdsa-p256:MEUCIEHzeFBfd2qjykNJFDLi3s+4txKrLcAwJ1fZpqk68z99AiEAlcFsf/UNxMiRKGC+dNNSXr5EYpD1jNDKjVdgHD03WDA="}"#;
    let signed: cairn_protocol::SignedCheckpoint = serde_json::from_str(json).unwrap();
    let alice: PublicKey = ALICE_PUBLIC.parse().unwrap();
    let verified = signed.verify(&alice).unwrap();
    assert_eq!(verified.contents().log_length, 1);
    // The same checkpoint with another timestamp does not verify.
    let mut moved = signed.clone();
    moved.contents.timestamp += 1;
    assert!(moved.verify(&alice).is_err());
    // Re-serialising gives the same JSON fields.
    let back: Value = serde_json::to_value(&signed).unwrap();
    let original: Value = serde_json::from_str(json).unwrap();
    assert_eq!(back, original);
    // And the map root of that one-leaf checkpoint is the map holding the operator log's head.
    let head: RecordId = "sha256:bf035e68620247a120f5b69333e1e763eaee32ce56a4e05cad00b121a9f3477e"
        .parse()
        .unwrap();
    let map = cairn_log::Map::new().insert(
        cairn_log::KeyPath::of_key(LogId::operator_log().digest().as_bytes()),
        cairn_log::MapValue::new(&cairn_protocol::prefix::map_leaf(&head)).unwrap(),
    );
    assert_eq!(
        cairn_protocol::Digest::from(map.root()),
        signed.contents.map_root
    );
    let mut log = cairn_log::RegistryLog::new();
    log.append(&cairn_protocol::prefix::log_leaf(
        &LogId::operator_log(),
        &head,
    ));
    assert_eq!(
        cairn_protocol::Digest::from(log.root()),
        signed.contents.log_root
    );
}
