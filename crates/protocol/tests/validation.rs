//! Each rule of the log validators (warg-v1 section 3), one test per error case; a record
//! that fails leaves the state unchanged.

use cairn_protocol::{
    Envelope, HashAlgorithm, OperatorEntry, OperatorLogState, OperatorPermission, PackageEntry,
    PackageLogState, PackagePermission, PrivateKey, Record, RecordId, Signature, Timestamp,
    ValidationError,
};

fn alice() -> PrivateKey {
    "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk="
        .parse()
        .unwrap()
}

fn bob() -> PrivateKey {
    "ecdsa-p256:2CV1EpLaSYEn4In4OAEDAj5O4Hzu8AFAxgHXuG310Ew="
        .parse()
        .unwrap()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

fn record<E>(prev: Option<RecordId>, seconds: i64, entries: Vec<E>) -> Record<E> {
    Record {
        prev,
        version: 0,
        time: at(seconds),
        entries,
    }
}

fn init(key: &PrivateKey) -> PackageEntry {
    PackageEntry::Init {
        key: key.public_key().clone(),
        hash_algorithm: HashAlgorithm::Sha256,
    }
}

fn release(version: &str) -> PackageEntry {
    PackageEntry::Release {
        version: version.parse().unwrap(),
        content: cairn_protocol::Digest::of(version.as_bytes()),
    }
}

fn yank(version: &str) -> PackageEntry {
    PackageEntry::Yank {
        version: version.parse().unwrap(),
    }
}

/// A package log initialised by Alice at t=10, plus the id of its head.
fn started() -> (PackageLogState, RecordId) {
    let mut state = PackageLogState::new();
    let first = Envelope::signed(record(None, 10, vec![init(&alice())]), &alice());
    state.validate(&first).unwrap();
    (state, *first.record_id())
}

/// Validates a record that must fail with `expected`, and checks the state did not change.
fn refuse(
    state: &mut PackageLogState,
    envelope: &Envelope<PackageEntry>,
    expected: ValidationError,
) {
    let before = state.clone();
    assert_eq!(state.validate(envelope), Err(expected));
    assert_eq!(*state, before, "a refused record changed the state");
}

#[test]
fn the_first_record_must_not_have_a_prev() {
    let mut state = PackageLogState::new();
    let other = RecordId::package_record(b"x");
    let envelope = Envelope::signed(record(Some(other), 1, vec![init(&alice())]), &alice());
    refuse(
        &mut state,
        &envelope,
        ValidationError::PreviousHashOnFirstRecord,
    );
}

#[test]
fn a_later_record_must_have_a_prev() {
    let (mut state, _) = started();
    let envelope = Envelope::signed(record(None, 11, vec![release("1.0.0")]), &alice());
    refuse(
        &mut state,
        &envelope,
        ValidationError::NoPreviousHashAfterInit,
    );
}

#[test]
fn prev_must_be_the_head() {
    let (mut state, head) = started();
    let wrong = RecordId::package_record(b"not the head");
    let envelope = Envelope::signed(record(Some(wrong), 11, vec![release("1.0.0")]), &alice());
    refuse(
        &mut state,
        &envelope,
        ValidationError::RecordHashDoesNotMatch {
            expected: head,
            found: wrong,
        },
    );
}

#[test]
fn only_protocol_version_zero_is_allowed() {
    let (mut state, head) = started();
    let mut r = record(Some(head), 11, vec![release("1.0.0")]);
    r.version = 1;
    refuse(
        &mut state,
        &Envelope::signed(r, &alice()),
        ValidationError::ProtocolVersionNotAllowed(1),
    );
}

#[test]
fn time_must_not_go_backwards_but_may_stand_still() {
    let (mut state, head) = started();
    let earlier = Envelope::signed(record(Some(head), 9, vec![release("1.0.0")]), &alice());
    refuse(
        &mut state,
        &earlier,
        ValidationError::TimestampLowerThanPrevious,
    );
    let same = Envelope::signed(record(Some(head), 10, vec![release("1.0.0")]), &alice());
    state.validate(&same).unwrap();
}

#[test]
fn the_first_entry_must_be_an_init() {
    let mut state = PackageLogState::new();
    let envelope = Envelope::signed(record(None, 1, vec![release("1.0.0")]), &alice());
    refuse(&mut state, &envelope, ValidationError::FirstEntryIsNotInit);
}

#[test]
fn an_init_after_the_beginning_is_refused() {
    let (mut state, head) = started();
    let envelope = Envelope::signed(record(Some(head), 11, vec![init(&alice())]), &alice());
    refuse(
        &mut state,
        &envelope,
        ValidationError::InitialEntryAfterBeginning,
    );
}

#[test]
fn a_package_init_must_be_signed_by_its_own_key() {
    let mut state = PackageLogState::new();
    let envelope = Envelope::signed(record(None, 1, vec![init(&bob())]), &alice());
    refuse(
        &mut state,
        &envelope,
        ValidationError::InitKeyMismatch {
            init_key: bob().public_key().fingerprint(),
            signer: alice().public_key().fingerprint(),
        },
    );
}

#[test]
fn a_first_record_without_entries_does_not_initialise() {
    let mut state = PackageLogState::new();
    let envelope = Envelope::signed(record::<PackageEntry>(None, 1, vec![]), &alice());
    refuse(
        &mut state,
        &envelope,
        ValidationError::InitialRecordDoesNotInit,
    );
}

#[test]
fn an_empty_record_after_init_only_advances_the_head() {
    let (mut state, head) = started();
    let envelope = Envelope::signed(record::<PackageEntry>(Some(head), 11, vec![]), &alice());
    state.validate(&envelope).unwrap();
    assert_eq!(state.head().unwrap().record_id, *envelope.record_id());
}

#[test]
fn the_signer_must_be_a_known_key() {
    let (mut state, head) = started();
    let envelope = Envelope::signed(record::<PackageEntry>(Some(head), 11, vec![]), &bob());
    refuse(
        &mut state,
        &envelope,
        ValidationError::KeyIdNotRecognized(bob().public_key().fingerprint()),
    );
}

#[test]
fn the_signature_must_verify() {
    let (mut state, head) = started();
    let good = Envelope::signed(record(Some(head), 11, vec![release("1.0.0")]), &alice());
    let forged_signature: Signature =
        alice().sign(cairn_protocol::SigningDomain::PackageRecord, b"other bytes");
    let forged = Envelope::<PackageEntry>::from_parts(
        good.content_bytes().to_vec(),
        *good.key_id(),
        forged_signature,
    )
    .unwrap();
    refuse(
        &mut state,
        &forged,
        ValidationError::SignatureVerificationFailed(alice().public_key().fingerprint()),
    );
    // A signature over the same bytes in the operator domain does not verify either.
    let cross = alice().sign(
        cairn_protocol::SigningDomain::OperatorRecord,
        good.content_bytes(),
    );
    let cross =
        Envelope::<PackageEntry>::from_parts(good.content_bytes().to_vec(), *good.key_id(), cross)
            .unwrap();
    refuse(
        &mut state,
        &cross,
        ValidationError::SignatureVerificationFailed(alice().public_key().fingerprint()),
    );
}

#[test]
fn release_needs_the_release_permission() {
    let (mut state, head) = started();
    let grant_yank = Envelope::signed(
        record(
            Some(head),
            11,
            vec![PackageEntry::Grant {
                key: bob().public_key().clone(),
                permissions: vec![PackagePermission::Yank],
            }],
        ),
        &alice(),
    );
    state.validate(&grant_yank).unwrap();
    let envelope = Envelope::signed(
        record(Some(*grant_yank.record_id()), 12, vec![release("1.0.0")]),
        &bob(),
    );
    refuse(
        &mut state,
        &envelope,
        ValidationError::Unauthorized {
            key_id: bob().public_key().fingerprint(),
            permission: "release".into(),
        },
    );
}

#[test]
fn a_grant_needs_the_granted_permissions() {
    let (mut state, head) = started();
    let grant = Envelope::signed(
        record(
            Some(head),
            11,
            vec![PackageEntry::Grant {
                key: bob().public_key().clone(),
                permissions: vec![PackagePermission::Release],
            }],
        ),
        &alice(),
    );
    state.validate(&grant).unwrap();
    // Bob holds release only, so he cannot grant yank.
    let carol = PrivateKey::generate().unwrap();
    let envelope = Envelope::signed(
        record(
            Some(*grant.record_id()),
            12,
            vec![PackageEntry::Grant {
                key: carol.public_key().clone(),
                permissions: vec![PackagePermission::Yank],
            }],
        ),
        &bob(),
    );
    refuse(
        &mut state,
        &envelope,
        ValidationError::Unauthorized {
            key_id: bob().public_key().fingerprint(),
            permission: "yank".into(),
        },
    );
}

#[test]
fn a_revoke_of_a_permission_not_held_is_refused() {
    let (mut state, head) = started();
    let bob_id = bob().public_key().fingerprint();
    let envelope = Envelope::signed(
        record(
            Some(head),
            11,
            vec![PackageEntry::Revoke {
                key_id: bob_id,
                permissions: vec![PackagePermission::Release],
            }],
        ),
        &alice(),
    );
    refuse(
        &mut state,
        &envelope,
        ValidationError::PermissionNotFoundToRevoke {
            key_id: bob_id,
            permission: "release".into(),
        },
    );
}

#[test]
fn a_revoked_key_can_no_longer_release() {
    let (mut state, head) = started();
    let bob_id = bob().public_key().fingerprint();
    let grant = Envelope::signed(
        record(
            Some(head),
            11,
            vec![PackageEntry::Grant {
                key: bob().public_key().clone(),
                permissions: vec![PackagePermission::Release],
            }],
        ),
        &alice(),
    );
    state.validate(&grant).unwrap();
    let by_bob = Envelope::signed(
        record(Some(*grant.record_id()), 12, vec![release("1.0.0")]),
        &bob(),
    );
    state.validate(&by_bob).unwrap();
    let revoke = Envelope::signed(
        record(
            Some(*by_bob.record_id()),
            13,
            vec![PackageEntry::Revoke {
                key_id: bob_id,
                permissions: vec![PackagePermission::Release],
            }],
        ),
        &alice(),
    );
    state.validate(&revoke).unwrap();
    assert!(state.permissions(&bob_id).is_empty());
    let again = Envelope::signed(
        record(Some(*revoke.record_id()), 14, vec![release("2.0.0")]),
        &bob(),
    );
    refuse(
        &mut state,
        &again,
        ValidationError::Unauthorized {
            key_id: bob_id,
            permission: "release".into(),
        },
    );
}

#[test]
fn a_version_is_released_once_even_after_a_yank() {
    let (mut state, head) = started();
    let first = Envelope::signed(
        record(Some(head), 11, vec![release("1.0.0"), yank("1.0.0")]),
        &alice(),
    );
    state.validate(&first).unwrap();
    let again = Envelope::signed(
        record(Some(*first.record_id()), 12, vec![release("1.0.0")]),
        &alice(),
    );
    refuse(
        &mut state,
        &again,
        ValidationError::ReleaseOfReleased("1.0.0".parse().unwrap()),
    );
    // Build metadata makes another version.
    let other = Envelope::signed(
        record(Some(*first.record_id()), 12, vec![release("1.0.0+build")]),
        &alice(),
    );
    state.validate(&other).unwrap();
}

#[test]
fn a_yank_needs_a_released_version_not_yet_yanked() {
    let (mut state, head) = started();
    let unreleased = Envelope::signed(record(Some(head), 11, vec![yank("9.9.9")]), &alice());
    refuse(
        &mut state,
        &unreleased,
        ValidationError::YankOfUnreleased("9.9.9".parse().unwrap()),
    );
    let twice = Envelope::signed(
        record(
            Some(head),
            11,
            vec![release("1.0.0"), yank("1.0.0"), yank("1.0.0")],
        ),
        &alice(),
    );
    refuse(
        &mut state,
        &twice,
        ValidationError::YankOfYanked("1.0.0".parse().unwrap()),
    );
}

#[test]
fn a_failing_entry_rolls_back_the_whole_record() {
    let (mut state, head) = started();
    let envelope = Envelope::signed(
        record(Some(head), 11, vec![release("1.0.0"), yank("2.0.0")]),
        &alice(),
    );
    refuse(
        &mut state,
        &envelope,
        ValidationError::YankOfUnreleased("2.0.0".parse().unwrap()),
    );
    assert!(state.releases().is_empty());
}

#[test]
fn a_failing_entry_restores_earlier_yanks_and_releases() {
    let (mut state, head) = started();
    let first = Envelope::signed(
        record(Some(head), 11, vec![release("1.0.0"), release("2.0.0")]),
        &alice(),
    );
    state.validate(&first).unwrap();
    // A yank, a new release, then a release of a version already there: all undone.
    let envelope = Envelope::signed(
        record(
            Some(*first.record_id()),
            12,
            vec![yank("1.0.0"), release("3.0.0"), release("2.0.0")],
        ),
        &alice(),
    );
    refuse(
        &mut state,
        &envelope,
        ValidationError::ReleaseOfReleased("2.0.0".parse().unwrap()),
    );
    assert_eq!(state.releases().len(), 2);
    assert!(matches!(
        state.release(&"1.0.0".parse().unwrap()).unwrap().state,
        cairn_protocol::ReleaseState::Released { .. }
    ));
}

#[test]
fn a_proof_of_verification_covers_only_its_own_envelope() {
    let (mut state, head) = started();
    let good = Envelope::signed(record(Some(head), 11, vec![release("1.0.0")]), &alice());
    let proof = good.verify_signature(alice().public_key()).unwrap();
    // The same content with another (bad) signature: the proof does not cover it.
    let forged = Envelope::<PackageEntry>::from_parts(
        good.content_bytes().to_vec(),
        *good.key_id(),
        alice().sign(cairn_protocol::SigningDomain::PackageRecord, b"other bytes"),
    )
    .unwrap();
    assert!(!proof.covers(&forged));
    let before = state.clone();
    assert_eq!(
        state.validate_verified(&forged, Some(&proof)),
        Err(ValidationError::SignatureVerificationFailed(
            alice().public_key().fingerprint()
        ))
    );
    assert_eq!(state, before);
    // A proof for a record by another key covers nothing here either.
    let by_bob = Envelope::signed(record(Some(head), 11, vec![release("1.0.0")]), &bob());
    let bob_proof = by_bob.verify_signature(bob().public_key()).unwrap();
    assert!(!bob_proof.covers(&good));
    // Its own envelope: validated with the proof, to the same state as without it.
    let mut checked = state.clone();
    checked.validate(&good).unwrap();
    assert!(proof.covers(&good));
    state.validate_verified(&good, Some(&proof)).unwrap();
    assert_eq!(state, checked);
    // A proof made with a key other than the one the id names covers nothing.
    assert!(good.verify_signature(bob().public_key()).is_err());
}

fn operator_started() -> (OperatorLogState, RecordId) {
    let mut state = OperatorLogState::new();
    let first = Envelope::signed(
        record(
            None,
            10,
            vec![OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: alice().public_key().clone(),
            }],
        ),
        &alice(),
    );
    state.validate(&first).unwrap();
    (state, *first.record_id())
}

#[test]
fn operator_namespaces_are_defined_once() {
    let (mut state, head) = operator_started();
    let define = Envelope::signed(
        record(
            Some(head),
            11,
            vec![OperatorEntry::DefineNamespace {
                namespace: "example".parse().unwrap(),
            }],
        ),
        &alice(),
    );
    state.validate(&define).unwrap();
    assert_eq!(
        state.namespace("example"),
        Some(&cairn_protocol::NamespaceState::Defined)
    );
    let before = state.clone();
    let again = Envelope::signed(
        record(
            Some(*define.record_id()),
            12,
            vec![OperatorEntry::ImportNamespace {
                namespace: "example".parse().unwrap(),
                registry: "other.example.com".into(),
            }],
        ),
        &alice(),
    );
    assert_eq!(
        state.validate(&again),
        Err(ValidationError::NamespaceAlreadyDefined(
            "example".parse().unwrap()
        ))
    );
    assert_eq!(state, before);
}

#[test]
fn operator_grants_need_commit_and_checkpoint_signers_need_commit() {
    let (mut state, head) = operator_started();
    let bob_id = bob().public_key().fingerprint();
    let grant = Envelope::signed(
        record(
            Some(head),
            11,
            vec![OperatorEntry::Grant {
                key: bob().public_key().clone(),
                permissions: vec![OperatorPermission::DefineNamespace],
            }],
        ),
        &alice(),
    );
    state.validate(&grant).unwrap();
    assert!(state.can_commit(&alice().public_key().fingerprint()));
    assert!(!state.can_commit(&bob_id));
    let by_bob = Envelope::signed(
        record(
            Some(*grant.record_id()),
            12,
            vec![OperatorEntry::Grant {
                key: bob().public_key().clone(),
                permissions: vec![OperatorPermission::Commit],
            }],
        ),
        &bob(),
    );
    let before = state.clone();
    assert_eq!(
        state.validate(&by_bob),
        Err(ValidationError::Unauthorized {
            key_id: bob_id,
            permission: "commit".into()
        })
    );
    assert_eq!(state, before);
}
