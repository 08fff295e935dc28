//! Text forms, names, protobuf round trips and the API's JSON shapes.

use cairn_protocol::api::{
    ErrorBody, ErrorId, FetchLogsRequest, FetchLogsResponse, PackageRecordResponse, ProofFailure,
    RecordState,
};
use cairn_protocol::{
    Digest, HashAlgorithm, OperatorEntry, PackageEntry, PackageName, PackagePermission, PrivateKey,
    Record, Timestamp,
};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn digests_have_exactly_one_text_form() {
    let text = "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476";
    assert_eq!(text.parse::<Digest>().unwrap().to_string(), text);
    for bad in [
        "sha256:93A44BBB96C751218E4C00D479E4C14358122A389ACCA16205B1E4D0DC5F9476",
        "sha512:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476",
        "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476",
        "sha256:93a4",
        "sha256::93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f947",
        "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f947g",
        "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f94/",
        "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9é",
        "",
    ] {
        assert!(bad.parse::<Digest>().is_err(), "{bad:?} was accepted");
    }
}

proptest! {
    #[test]
    fn every_digest_prints_as_lowercase_hex_and_parses_back(bytes in any::<[u8; 32]>()) {
        let digest = Digest::from_bytes(bytes);
        let text = digest.to_string();
        prop_assert_eq!(&text, &format!("sha256:{}", hex::encode(bytes)));
        prop_assert_eq!(text.parse::<Digest>().unwrap(), digest);
    }
}

#[test]
fn package_names_follow_the_kebab_rules() {
    for good in ["example:hello", "a:b", "wasi:http-types", "my-ns:pkg2-x9"] {
        let name: PackageName = good.parse().unwrap();
        assert_eq!(name.to_string(), good);
    }
    let name: PackageName = "my-ns:pkg2-x9".parse().unwrap();
    assert_eq!((name.namespace(), name.name()), ("my-ns", "pkg2-x9"));
    for bad in [
        "example",
        "Example:hello",
        "example:Hello",
        "example:py-interop-1795954939",
        "example:hello-",
        "example:-hello",
        "example:hel--lo",
        "example:",
        ":hello",
        "ex ample:hello",
        "example:héllo",
        "1ex:hello",
        // Split at the last colon, the namespace `a:b` is not kebab-case.
        "a:b:c-d",
    ] {
        assert!(bad.parse::<PackageName>().is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn keys_and_signatures_refuse_bad_text() {
    assert!("ecdsa-p256:".parse::<cairn_protocol::PublicKey>().is_err());
    assert!("ed25519:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF"
        .parse::<cairn_protocol::PublicKey>()
        .is_err());
    assert!("ecdsa-p256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .parse::<cairn_protocol::PublicKey>()
        .is_err());
    assert!("ecdsa-p256:not base64!"
        .parse::<cairn_protocol::Signature>()
        .is_err());
    let huge = format!("ecdsa-p256:{}", "A".repeat(10_000));
    assert!(huge.parse::<cairn_protocol::Signature>().is_err());
}

#[test]
fn a_generated_key_signs_and_verifies() {
    let key = PrivateKey::generate().unwrap();
    let signature = key.sign(cairn_protocol::SigningDomain::Checkpoint, b"payload");
    key.public_key()
        .verify(
            cairn_protocol::SigningDomain::Checkpoint,
            b"payload",
            &signature,
        )
        .unwrap();
    assert!(key
        .public_key()
        .verify(
            cairn_protocol::SigningDomain::Checkpoint,
            b"payloaD",
            &signature
        )
        .is_err());
    let reparsed: PrivateKey = key.to_secret_text().parse().unwrap();
    assert_eq!(reparsed.public_key(), key.public_key());
}

#[test]
fn decoding_refuses_what_the_model_refuses() {
    use cairn_protocol::protobuf::Writer;
    let entry = |write: &dyn Fn(&mut Writer)| {
        let mut record = Writer::new();
        record.message_field(3, |w| w.varint_field(1, 5));
        record.message_field(4, |w| write(w));
        record.finish()
    };
    let decode = |bytes: &[u8]| Record::<PackageEntry>::decode(bytes);
    // No timestamp.
    assert!(matches!(
        decode(&[]),
        Err(cairn_protocol::DecodeError::MissingTime)
    ));
    // An entry without contents.
    assert!(matches!(
        decode(&entry(&|_| {})),
        Err(cairn_protocol::DecodeError::EmptyEntry)
    ));
    // An unknown or unspecified permission.
    let key = PrivateKey::generate().unwrap().public_key().to_string();
    for code in [0u32, 3, 99] {
        let bytes = entry(&|w| {
            w.message_field(2, |w| {
                w.bytes_field(1, key.as_bytes());
                w.packed_u32_field(2, &[code]);
            })
        });
        assert!(
            matches!(decode(&bytes), Err(cairn_protocol::DecodeError::Permission(c)) if c == code)
        );
    }
    // Another hash algorithm.
    let bytes = entry(&|w| {
        w.message_field(1, |w| {
            w.bytes_field(1, key.as_bytes());
            w.bytes_field(2, b"sha512");
        })
    });
    assert!(matches!(
        decode(&bytes),
        Err(cairn_protocol::DecodeError::HashAlgorithm(_))
    ));
    // A version that is not semver.
    let bytes = entry(&|w| w.message_field(5, |w| w.bytes_field(1, b"1.0")));
    assert!(matches!(
        decode(&bytes),
        Err(cairn_protocol::DecodeError::Version { .. })
    ));
}

#[test]
fn unpacked_repeated_permissions_are_read_too() {
    use cairn_protocol::protobuf::Writer;
    let key = PrivateKey::generate().unwrap();
    let mut record = Writer::new();
    record.message_field(3, |w| w.varint_field(1, 5));
    record.message_field(4, |w| {
        w.message_field(2, |w| {
            w.bytes_field(1, key.public_key().to_string().as_bytes());
            w.varint_field(2, 1);
            w.varint_field(2, 2);
        })
    });
    let decoded = Record::<PackageEntry>::decode(&record.finish()).unwrap();
    assert_eq!(
        decoded.entries,
        vec![PackageEntry::Grant {
            key: key.public_key().clone(),
            permissions: vec![PackagePermission::Release, PackagePermission::Yank]
        }]
    );
}

fn keys() -> Vec<PrivateKey> {
    [
        "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=",
        "ecdsa-p256:2CV1EpLaSYEn4In4OAEDAj5O4Hzu8AFAxgHXuG310Ew=",
    ]
    .iter()
    .map(|k| k.parse().unwrap())
    .collect()
}

fn package_entry() -> impl Strategy<Value = PackageEntry> {
    let key = (0usize..2).prop_map(|i| keys()[i].public_key().clone());
    let perms = prop::collection::vec(
        prop_oneof![
            Just(PackagePermission::Release),
            Just(PackagePermission::Yank)
        ],
        0..3,
    );
    let version = (
        0u64..100,
        0u64..100,
        0u64..100,
        prop::option::of("[a-z][a-z0-9]{0,5}"),
    )
        .prop_map(|(a, b, c, pre)| match pre {
            Some(pre) => format!("{a}.{b}.{c}-{pre}").parse().unwrap(),
            None => format!("{a}.{b}.{c}").parse().unwrap(),
        });
    prop_oneof![
        key.clone().prop_map(|key| PackageEntry::Init {
            key,
            hash_algorithm: HashAlgorithm::Sha256
        }),
        (key.clone(), perms.clone())
            .prop_map(|(key, permissions)| PackageEntry::Grant { key, permissions }),
        (key, perms).prop_map(|(key, permissions)| PackageEntry::Revoke {
            key_id: key.fingerprint(),
            permissions
        }),
        (version.clone(), any::<[u8; 32]>()).prop_map(|(version, bytes)| PackageEntry::Release {
            version,
            content: Digest::from_bytes(bytes)
        }),
        version.prop_map(|version| PackageEntry::Yank { version }),
    ]
}

fn operator_entry() -> impl Strategy<Value = OperatorEntry> {
    let key = (0usize..2).prop_map(|i| keys()[i].public_key().clone());
    prop_oneof![
        key.clone().prop_map(|key| OperatorEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key
        }),
        "[a-z][a-z0-9]{0,8}(-[a-z][a-z0-9]{0,4}){0,2}".prop_map(|ns| {
            OperatorEntry::DefineNamespace {
                namespace: ns.parse().unwrap(),
            }
        }),
        ("[a-z]{1,8}", "[a-z.]{0,20}").prop_map(|(ns, registry)| OperatorEntry::ImportNamespace {
            namespace: ns.parse().unwrap(),
            registry
        }),
    ]
}

fn record_of<E: std::fmt::Debug + Clone>(
    entry: impl Strategy<Value = E>,
) -> impl Strategy<Value = Record<E>> {
    (
        prop::option::of(any::<[u8; 32]>()),
        0u32..3,
        0i64..4_000_000_000,
        0i32..1_000_000_000,
        prop::collection::vec(entry, 0..5),
    )
        .prop_map(|(prev, version, seconds, nanos, entries)| Record {
            prev: prev.map(|b| cairn_protocol::RecordId(Digest::from_bytes(b))),
            version,
            time: Timestamp { seconds, nanos },
            entries,
        })
}

proptest! {
    #[test]
    fn package_records_round_trip(record in record_of(package_entry())) {
        let bytes = record.encode();
        prop_assert_eq!(Record::<PackageEntry>::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn operator_records_round_trip(record in record_of(operator_entry())) {
        let bytes = record.encode();
        prop_assert_eq!(Record::<OperatorEntry>::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Record::<PackageEntry>::decode(&bytes);
        let _ = Record::<OperatorEntry>::decode(&bytes);
        let _ = cairn_protocol::PackageEnvelope::from_protobuf(&bytes);
    }
}

#[test]
fn api_json_shapes_match_the_reference() {
    let request: FetchLogsRequest = serde_json::from_value(
        json!({"logLength": 5, "limit": 1, "operator": null, "packages": {}}),
    )
    .unwrap();
    assert_eq!(request.log_length, 5);
    assert!(
        serde_json::from_value::<FetchLogsRequest>(json!({"logLength": 5, "extra": 1})).is_err()
    );

    let response = FetchLogsResponse {
        more: true,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"more": true})
    );

    let record_id: cairn_protocol::RecordId =
        "sha256:bf035e68620247a120f5b69333e1e763eaee32ce56a4e05cad00b121a9f3477e"
            .parse()
            .unwrap();
    let published = PackageRecordResponse {
        record_id,
        state: RecordState::Published { registry_index: 3 },
    };
    assert_eq!(
        serde_json::to_value(&published).unwrap(),
        json!({"recordId": record_id.to_string(), "state": "published", "registryIndex": 3})
    );
    let rejected = PackageRecordResponse {
        record_id,
        state: RecordState::Rejected {
            reason: "no".into(),
        },
    };
    assert_eq!(
        serde_json::to_value(&rejected).unwrap(),
        json!({"recordId": record_id.to_string(), "state": "rejected", "reason": "no"})
    );
    let processing: PackageRecordResponse =
        serde_json::from_value(json!({"recordId": record_id.to_string(), "state": "processing"}))
            .unwrap();
    assert_eq!(processing.state, RecordState::Processing);

    let typed = ErrorBody::Typed {
        status: 404,
        kind: "logLength".into(),
        id: ErrorId::Number(7),
    };
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        json!({"status": 404, "type": "logLength", "id": 7})
    );
    let proof: ErrorBody =
        serde_json::from_value(json!({"status": 422, "reason": "failure", "message": "from > to"}))
            .unwrap();
    assert_eq!(
        proof,
        ErrorBody::Proof {
            status: 422,
            failure: ProofFailure::Failure {
                message: "from > to".into()
            }
        }
    );
    let not_included = ErrorBody::Proof {
        status: 422,
        failure: ProofFailure::PackageNotIncluded {
            log_id: cairn_protocol::LogId::operator_log(),
        },
    };
    assert_eq!(
        serde_json::to_value(&not_included).unwrap(),
        json!({"status": 422, "reason": "packageNotIncluded", "log_id": cairn_protocol::LogId::operator_log().to_string()})
    );
    let message: ErrorBody =
        serde_json::from_value(json!({"status": 400, "message": "bad"})).unwrap();
    assert_eq!(
        message,
        ErrorBody::Message {
            status: 400,
            message: "bad".into()
        }
    );
}

#[test]
fn rfc3339_bounds_are_the_first_and_last_writable_seconds() {
    let at = |seconds, nanos| Timestamp { seconds, nanos };
    let earliest = at(Timestamp::EARLIEST_RFC3339, 0);
    let latest = at(Timestamp::LATEST_RFC3339, 999_999_999);
    assert_eq!(earliest.to_rfc3339(), "0000-01-01T00:00:00Z");
    assert_eq!(latest.to_rfc3339(), "9999-12-31T23:59:59.999999999Z");
    assert!(earliest.fits_rfc3339() && latest.fits_rfc3339());
    assert!(!at(Timestamp::EARLIEST_RFC3339 - 1, 0).fits_rfc3339());
    assert!(!at(Timestamp::LATEST_RFC3339 + 1, 0).fits_rfc3339());
    assert!(!at(0, -1).fits_rfc3339());
    assert!(!at(0, 1_000_000_000).fits_rfc3339());
    assert!(!at(i64::MAX, 0).fits_rfc3339());
}
