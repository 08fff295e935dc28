//! Replacing the operator key, in one home: the rotation (one operator record, signed by the
//! old key, that grants every operator permission to a new key and revokes the old key's;
//! the checkpoint covering it signed by the new key), and its completion at the next start
//! when it stopped half-way.
//!
//! The new key is on disk (`operator.key.new`) before the log names it; once the record is
//! sequenced, the old key file becomes `operator.key.old` and the new one `operator.key`. A
//! start that finds `operator.key.new` finishes or forgets the rotation, as the log says.

use std::path::{Path, PathBuf};

use cairn_protocol::{Envelope, OperatorEntry, OperatorPermission, PrivateKey, Record, Timestamp};
use cairn_store::RecordStatus;

use crate::state::RegistryState;
use crate::{io_error, Registry, ServerError, OPERATOR_KEY_FILE};

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct KeyRotation {
    /// The key that signs checkpoints now.
    pub new_key: PrivateKey,
    /// The key it replaced.
    pub old_key: PrivateKey,
    /// Where the old key is kept.
    pub old_key_file: PathBuf,
}

/// Appends one operator record of `entries`, signed by `key` and linked to the operator
/// log's head, and sequences it; the covering checkpoint is signed by `checkpoint_key` if
/// given (a rotation), else by the operator key. Fails with the validator's reason if the
/// log refuses the record.
pub async fn append_operator_record(
    registry: &mut Registry,
    entries: Vec<OperatorEntry>,
    key: &PrivateKey,
    checkpoint_key: Option<PrivateKey>,
) -> Result<(), ServerError> {
    let head = registry
        .state()
        .read()
        .expect("state lock")
        .operator()
        .head()
        .map(|h| h.record_id);
    let record = Record {
        prev: head,
        version: 0,
        time: Timestamp::now(),
        entries,
    };
    let envelope = Envelope::signed(record, key);
    let record_id = *envelope.record_id();
    registry.queue_operator_record(envelope).await?;
    if let Some(checkpoint_key) = checkpoint_key {
        registry.set_operator_key(checkpoint_key);
    }
    registry.sequence_pending().await?;
    let row = registry
        .store()
        .record(&record_id)
        .await?
        .ok_or_else(|| ServerError::Operator("the operator record was not stored".into()))?;
    match row.status {
        RecordStatus::Validated => Ok(()),
        _ => Err(ServerError::Operator(row.reason.unwrap_or_default())),
    }
}

/// Rotates the operator key of the stopped registry in `dir`, opened as `registry`.
pub async fn rotate(dir: &Path, registry: &mut Registry) -> Result<KeyRotation, ServerError> {
    let old = registry.operator_key().clone();
    let new = PrivateKey::generate().map_err(|e| ServerError::Operator(e.to_string()))?;
    let new_file = dir.join(NEW_OPERATOR_KEY_FILE);
    let _ = std::fs::remove_file(&new_file);
    crate::write_secret(&new_file, &new.to_secret_text())
        .map_err(io_error("cannot write", &new_file))?;
    let all = OperatorPermission::ALL.to_vec();
    let entries = vec![
        OperatorEntry::Grant {
            key: new.public_key().clone(),
            permissions: all.clone(),
        },
        OperatorEntry::Revoke {
            key_id: old.public_key().fingerprint(),
            permissions: all,
        },
    ];
    // The old key signs the record; the checkpoint that covers it must be signed by the new
    // key, the only one that holds `commit` once the record applies.
    if let Err(error) = append_operator_record(registry, entries, &old, Some(new.clone())).await {
        let _ = std::fs::remove_file(&new_file);
        return Err(error);
    }
    let old_key_file = replace_key_files(dir)?;
    Ok(KeyRotation {
        new_key: new,
        old_key: old,
        old_key_file,
    })
}

/// Moves `operator.key` to `operator.key.old` and `operator.key.new` to `operator.key`;
/// returns where the old key went.
fn replace_key_files(dir: &Path) -> Result<PathBuf, ServerError> {
    let key_path = dir.join(OPERATOR_KEY_FILE);
    let old_path = dir.join(format!("{OPERATOR_KEY_FILE}.old"));
    let new_path = dir.join(NEW_OPERATOR_KEY_FILE);
    std::fs::rename(&key_path, &old_path).map_err(io_error("cannot move", &key_path))?;
    std::fs::rename(&new_path, &key_path).map_err(io_error("cannot move", &new_path))?;
    Ok(old_path)
}

/// The name of a new operator key during a rotation.
pub const NEW_OPERATOR_KEY_FILE: &str = "operator.key.new";

/// Completes a key rotation that stopped half-way: if the operator log no longer lets the
/// current key sign checkpoints but lets the new key do so, the new key file replaces it.
pub(crate) fn finish(
    dir: &Path,
    current: PrivateKey,
    state: &RegistryState,
) -> Result<PrivateKey, ServerError> {
    let new_path = dir.join(NEW_OPERATOR_KEY_FILE);
    if !new_path.is_file() {
        return Ok(current);
    }
    let text = std::fs::read_to_string(&new_path).map_err(io_error("cannot read", &new_path))?;
    let new: PrivateKey = text.trim().parse().map_err(|source| ServerError::BadKey {
        path: new_path.clone(),
        source,
    })?;
    let operator = state.operator();
    if operator.head().is_none() || operator.can_commit(&current.public_key().fingerprint()) {
        // The rotation never reached the log: drop the new key.
        std::fs::remove_file(&new_path).map_err(io_error("cannot remove", &new_path))?;
        return Ok(current);
    }
    if !operator.can_commit(&new.public_key().fingerprint()) {
        return Ok(current);
    }
    replace_key_files(dir)?;
    tracing::info!(key_id = %new.public_key().fingerprint(), "finished rotating the operator key");
    Ok(new)
}
