//! The RFC 6962 inclusion and consistency vectors of transparency-dev/merkle (copied into
//! `tests/vectors/merkle/`): each must verify, or be rejected, exactly as its `wantErr` says.

use std::path::{Path, PathBuf};

use base64::Engine;
mod common;

use cairn_log::{audit_path, Hash, RegistryLog};
use common::rfc6962_test_leaves;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    /// `null` in some vectors: no proof at all, which verifiers read as an empty one.
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    /// `null` in some vectors: no proof at all, which verifiers read as an empty one.
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn vectors_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/merkle")
        .join(kind)
}

fn json_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(json_files_under(&path));
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A base64 hash as the verifier would receive it: anything but 32 bytes is a rejection.
fn decode_hash(base64_text: &str) -> Result<Hash, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text)
        .map_err(|error| error.to_string())?;
    Hash::from_slice(&bytes).map_err(|error| error.to_string())
}

/// A root as the typed API takes it. Some vectors put short placeholders ("don't care") where
/// the root's value must not matter; a root of the wrong length cannot even be passed to a
/// verifier that takes 32-byte hashes, so a placeholder stands for a distinct 32-byte value
/// derived from it: equal placeholders stay equal, different ones stay different. Proof elements
/// and leaf hashes get no such leniency: a wrong length there is a rejection, as on the wire.
fn decode_root(base64_text: &str) -> Result<Hash, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text)
        .map_err(|error| error.to_string())?;
    Ok(Hash::from_slice(&bytes)
        .unwrap_or_else(|_| Hash::sha256(&[b"placeholder root: ".as_slice(), &bytes].concat())))
}

fn decode_proof(proof: &Option<Vec<String>>) -> Result<Vec<Hash>, String> {
    proof
        .iter()
        .flatten()
        .map(|hash| decode_hash(hash))
        .collect()
}

fn check_inclusion_vector(vector: &InclusionVector) -> Result<(), String> {
    let root = decode_root(&vector.root)?;
    let leaf_hash = decode_hash(&vector.leaf_hash)?;
    let proof = decode_proof(&vector.proof)?;
    audit_path::verify_inclusion(vector.leaf_idx, vector.tree_size, &leaf_hash, &proof, &root)
        .map_err(|error| error.to_string())
}

fn check_consistency_vector(vector: &ConsistencyVector) -> Result<(), String> {
    let root1 = decode_root(&vector.root1)?;
    let root2 = decode_root(&vector.root2)?;
    let proof = decode_proof(&vector.proof)?;
    audit_path::verify_consistency(vector.size1, vector.size2, &root1, &root2, &proof)
        .map_err(|error| error.to_string())
}

/// Runs every vector and lists those whose outcome differs from `wantErr`.
fn disagreements<V: for<'de> Deserialize<'de>>(
    files: &[PathBuf],
    expectation: impl Fn(&V) -> (bool, &str),
    check: impl Fn(&V) -> Result<(), String>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let vector: V = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let outcome = check(&vector);
        let (want_err, description) = expectation(&vector);
        if outcome.is_err() != want_err {
            wrong.push(format!(
                "{} ({description}): got {outcome:?}",
                file.display()
            ));
        }
    }
    wrong
}

#[test]
fn every_inclusion_vector_verifies_or_fails_as_it_says() {
    let files = json_files_under(&vectors_dir("inclusion"));
    assert_eq!(files.len(), 98, "the inclusion vector set changed");
    let wrong = disagreements(
        &files,
        |vector: &InclusionVector| (vector.want_err, &vector.desc),
        check_inclusion_vector,
    );
    assert!(
        wrong.is_empty(),
        "vectors not honoured:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_consistency_vector_verifies_or_fails_as_it_says() {
    let files = json_files_under(&vectors_dir("consistency"));
    assert_eq!(files.len(), 98, "the consistency vector set changed");
    let wrong = disagreements(
        &files,
        |vector: &ConsistencyVector| (vector.want_err, &vector.desc),
        check_consistency_vector,
    );
    assert!(
        wrong.is_empty(),
        "vectors not honoured:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn both_vector_sets_contain_proofs_that_must_verify() {
    // Guards the test above against a vector set where everything is expected to fail.
    for kind in ["inclusion", "consistency"] {
        let accepted = json_files_under(&vectors_dir(kind))
            .into_iter()
            .filter(|file| {
                let text = std::fs::read_to_string(file).unwrap();
                text.contains("\"wantErr\": false")
            })
            .count();
        assert!(accepted >= 5, "{kind}: only {accepted} accepted vectors");
    }
}

fn read_vector<V: for<'de> Deserialize<'de>>(path: &Path) -> V {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The numbered vector folders prove against the RFC 6962 test tree, so a log of its leaves
/// must produce their happy-path proofs hash for hash.
#[test]
fn proofs_generated_from_the_rfc6962_test_tree_equal_the_happy_path_vectors() {
    let mut log = RegistryLog::new();
    for leaf in rfc6962_test_leaves() {
        log.append(&leaf);
    }
    for case in 0..5 {
        let inclusion: InclusionVector =
            read_vector(&vectors_dir("inclusion").join(format!("{case}/happy-path.json")));
        let generated = log
            .inclusion_proof(inclusion.leaf_idx, inclusion.tree_size)
            .unwrap();
        assert_eq!(
            generated,
            decode_proof(&inclusion.proof).unwrap(),
            "inclusion {case}"
        );
        assert_eq!(
            log.root_at(inclusion.tree_size).unwrap(),
            decode_hash(&inclusion.root).unwrap()
        );

        let consistency: ConsistencyVector =
            read_vector(&vectors_dir("consistency").join(format!("{case}/happy-path.json")));
        let generated = log
            .consistency_proof(consistency.size1, consistency.size2)
            .unwrap();
        assert_eq!(
            generated,
            decode_proof(&consistency.proof).unwrap(),
            "consistency {case}"
        );
        assert_eq!(
            log.root_at(consistency.size2).unwrap(),
            decode_hash(&consistency.root2).unwrap()
        );
    }
}
