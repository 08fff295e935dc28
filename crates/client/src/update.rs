//! Updating the trusted state: the checkpoint, the operator log and the followed packages'
//! logs, with every check of warg-v1 section 4.5 plus the ones the reference client skips
//! (the checkpoint signer's `commit` permission, records placed below the checkpoint).
//!
//! The next state is built on a copy; the current one is replaced, and saved, only when
//! every record, signature and proof has been verified.

use cairn_log::{leaf_hash, KeyPath, TreeHead};
use cairn_protocol::api::{
    ConsistencyRequest, ConsistencyResponse, FetchLogsRequest, FetchLogsResponse, InclusionRequest,
    InclusionResponse,
};
use cairn_protocol::proofs::{decode_log_bundle, decode_map_bundle};
use cairn_protocol::{
    prefix, LogId, OperatorEntry, PackageName, RecordId, SignedCheckpoint, TimestampedCheckpoint,
};

use crate::error::{ClientError, SecurityError};
use crate::state::{PackageLog, TrustState};
use crate::Client;

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSummary {
    /// The checkpoint now trusted.
    pub checkpoint: TimestampedCheckpoint,
    /// The checkpoint trusted before, if any.
    pub previous: Option<TimestampedCheckpoint>,
    /// New operator records verified.
    pub operator_records: usize,
    /// New package records verified.
    pub package_records: usize,
}

const OPERATOR_LOG: &str = "the operator log";

fn package_label(name: &PackageName) -> String {
    format!("package `{name}`")
}

/// Whether an update refuses a checkpoint older than the client's `max_checkpoint_age`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckpointAge {
    /// Refused: what the update learns is only as new as the checkpoint.
    Checked,
    /// Accepted: the update a publish makes to learn its package's head. A registry makes a
    /// checkpoint only when something changes, so after a quiet spell every checkpoint is old,
    /// and refusing it would keep the publisher from making the change that brings a new one.
    /// An old checkpoint cannot mislead a publish: its record names the head the publisher
    /// saw, so it extends the log only right after that head, and the update that follows
    /// the publish is checked.
    NotChecked,
}

impl Client {
    /// Updates the checkpoint, the operator log and every followed package.
    pub async fn update(&mut self) -> Result<UpdateSummary, ClientError> {
        self.update_packages(&[]).await
    }

    /// Updates as [`Client::update`] does, and starts following `names` (fetching their logs
    /// from the start). A package the registry does not know fails the update with
    /// [`ClientError::PackageNotFound`].
    pub async fn update_packages(
        &mut self,
        names: &[PackageName],
    ) -> Result<UpdateSummary, ClientError> {
        self.update_with(names, CheckpointAge::Checked).await
    }

    /// Updates as [`Client::update_packages`] does; `age` says whether a checkpoint older than
    /// `max_checkpoint_age` is refused.
    pub(crate) async fn update_with(
        &mut self,
        names: &[PackageName],
        age: CheckpointAge,
    ) -> Result<UpdateSummary, ClientError> {
        match self.verify_update(names, age).await {
            Ok(summary) => Ok(summary),
            // A refusal may mean that the registry's whole history is another one (a registry
            // reset, or another registry at the same address): say that instead, once.
            Err(error @ (ClientError::Security(_) | ClientError::Registry { .. })) => {
                match self.first_operator_record().await {
                    Some(first) if Some(first) != self.trusted_first_operator_record() => {
                        Err(ClientError::DifferentHistory {
                            registry: self.config.registry_url.clone(),
                        })
                    }
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// A checkpoint request answered with something other than a warg error or checkpoint
    /// (a web page, a 404 of a server that is no registry) becomes
    /// [`ClientError::NotARegistry`].
    fn not_a_registry(&self, error: ClientError) -> ClientError {
        let url = self.config.registry_url.clone();
        match error {
            ClientError::Registry {
                status, kind: None, ..
            } if matches!(status, 404 | 405 | 400) => ClientError::NotARegistry {
                url,
                reason: format!("GET /v1/fetch/checkpoint answered HTTP {status}"),
            },
            ClientError::BadResponse { .. } => ClientError::NotARegistry {
                url,
                reason: "GET /v1/fetch/checkpoint did not answer with a checkpoint".into(),
            },
            other => other,
        }
    }

    /// The id of the first record of the operator log the client trusts.
    fn trusted_first_operator_record(&self) -> Option<RecordId> {
        self.state
            .operator
            .records()
            .first()
            .map(|record| *record.envelope.record_id())
    }

    /// The id of the first record of the registry's operator log now, if the client trusts an
    /// operator log at all and the registry answers (no answer: `None`).
    async fn first_operator_record(&self) -> Option<RecordId> {
        self.trusted_first_operator_record()?;
        let signed: SignedCheckpoint = self
            .http
            .get_json("v1/fetch/checkpoint", "the checkpoint request")
            .await
            .ok()?;
        let request = FetchLogsRequest {
            log_length: signed.contents.log_length,
            limit: Some(1),
            operator: None,
            packages: None,
        };
        let response: FetchLogsResponse = self
            .http
            .post_json("v1/fetch/logs", &request, "the log fetch")
            .await
            .ok()?;
        let first = response.operator.first()?;
        let envelope = first.envelope.to_envelope::<OperatorEntry>().ok()?;
        Some(*envelope.record_id())
    }

    /// [`Client::update_with`], without the diagnosis of a refusal.
    async fn verify_update(
        &mut self,
        names: &[PackageName],
        age: CheckpointAge,
    ) -> Result<UpdateSummary, ClientError> {
        let signed: SignedCheckpoint = self
            .http
            .get_json("v1/fetch/checkpoint", "the checkpoint request")
            .await
            .map_err(|error| self.not_a_registry(error))?;
        let previous = self.state.checkpoint.as_ref().map(|c| c.contents);
        check_against_trusted(previous.as_ref(), &signed.contents)?;
        if age == CheckpointAge::Checked {
            self.check_freshness(&signed.contents)?;
        }

        let mut next = self.state.clone();
        for name in names {
            next.packages
                .entry(name.log_id())
                .or_insert_with(|| PackageLog::new(name.clone()));
        }
        let (operator_records, package_records) = self.fetch_logs(&mut next, &signed).await?;
        if let Some(missing) = next.packages.values().find(|p| p.records().is_empty()) {
            return Err(ClientError::PackageNotFound(missing.name().clone()));
        }

        let operator = next.operator.state();
        let key = operator
            .keys()
            .get(&signed.key_id)
            .ok_or(SecurityError::UnknownCheckpointSigner(signed.key_id))?;
        signed
            .verify(key)
            .map_err(|_| SecurityError::BadCheckpointSignature(signed.key_id))?;
        if !operator.can_commit(&signed.key_id) {
            return Err(SecurityError::CheckpointSignerWithoutCommit(signed.key_id).into());
        }

        if let Some(previous) = &previous {
            if previous.log_length < signed.contents.log_length {
                self.prove_consistency(previous, &signed.contents).await?;
            }
        }
        self.prove_heads(&next, &signed.contents).await?;

        next.checkpoint = Some(signed.clone());
        self.store.save(&next)?;
        self.state = next;
        Ok(UpdateSummary {
            checkpoint: signed.contents,
            previous,
            operator_records,
            package_records,
        })
    }

    fn check_freshness(&self, checkpoint: &TimestampedCheckpoint) -> Result<(), SecurityError> {
        let Some(max) = self.config.max_checkpoint_age else {
            return Ok(());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let age = now.saturating_sub(checkpoint.timestamp);
        // Compared as durations, so that a limit under a second is not rounded down to none.
        if std::time::Duration::from_secs(age) > max {
            return Err(SecurityError::StaleCheckpoint {
                age_seconds: age,
                max_seconds: max.as_secs(),
            });
        }
        Ok(())
    }

    /// Fetches and validates every new record below the checkpoint, paging while the
    /// registry says there is more. Returns the numbers of operator and package records.
    async fn fetch_logs(
        &self,
        next: &mut TrustState,
        signed: &SignedCheckpoint,
    ) -> Result<(usize, usize), ClientError> {
        let log_length = signed.contents.log_length;
        let (mut operator_count, mut package_count) = (0, 0);
        loop {
            let token = |id: Option<&RecordId>| id.map(|id| id.to_string());
            let request = FetchLogsRequest {
                log_length,
                limit: None,
                operator: token(next.operator.head().map(|h| h.envelope.record_id())),
                packages: Some(
                    next.packages
                        .iter()
                        .map(|(log_id, package)| {
                            (
                                *log_id,
                                token(package.log().head().map(|h| h.envelope.record_id())),
                            )
                        })
                        .collect(),
                ),
            };
            let response: FetchLogsResponse = match self
                .http
                .post_json("v1/fetch/logs", &request, "the log fetch")
                .await
            {
                Ok(response) => response,
                Err(ClientError::Registry {
                    status: 404,
                    kind: Some(kind),
                    message,
                    ..
                }) if kind == "log" => {
                    let name = next
                        .packages
                        .values()
                        .find(|p| message.contains(&p.name().log_id().to_string()))
                        .or_else(|| next.packages.values().find(|p| p.records().is_empty()));
                    return Err(match name {
                        Some(package) => ClientError::PackageNotFound(package.name().clone()),
                        None => ClientError::Registry {
                            what: "the log fetch".into(),
                            status: 404,
                            kind: Some(kind),
                            message,
                        },
                    });
                }
                Err(error) => return Err(error),
            };
            let mut received = 0;
            for record in &response.operator {
                next.operator.apply(OPERATOR_LOG, record, log_length)?;
                received += 1;
                operator_count += 1;
            }
            for (log_id, records) in &response.packages {
                let package = next
                    .packages
                    .get_mut(log_id)
                    .ok_or(SecurityError::UnrequestedLog(*log_id))?;
                let label = package_label(package.name());
                for record in records {
                    package.log_mut().apply(&label, record, log_length)?;
                    received += 1;
                    package_count += 1;
                }
            }
            if !response.more {
                return Ok((operator_count, package_count));
            }
            if received == 0 {
                return Err(SecurityError::InconsistentResponse {
                    what: "the log fetch".into(),
                    reason: "it promised more records but sent none".into(),
                }
                .into());
            }
        }
    }

    /// Proves that the log at the trusted checkpoint is a prefix of the log at the new one.
    async fn prove_consistency(
        &self,
        old: &TimestampedCheckpoint,
        new: &TimestampedCheckpoint,
    ) -> Result<(), ClientError> {
        let bad = |reason: String| SecurityError::BadConsistencyProof {
            from: old.log_length,
            to: new.log_length,
            reason,
        };
        let response: ConsistencyResponse = self
            .http
            .post_json(
                "v1/proof/consistency",
                &ConsistencyRequest {
                    from: old.log_length,
                    to: new.log_length,
                },
                "the consistency proof request",
            )
            .await?;
        let bundle = decode_log_bundle(&response.proof).map_err(|e| bad(e.to_string()))?;
        bundle
            .verify_consistency(
                &TreeHead {
                    length: old.log_length,
                    root: old.log_root.to_hash(),
                },
                &TreeHead {
                    length: new.log_length,
                    root: new.log_root.to_hash(),
                },
            )
            .map_err(|e| bad(e.to_string()))?;
        Ok(())
    }

    /// Proves that each log's head is in the registry log and is the map's value for the log.
    async fn prove_heads(
        &self,
        next: &TrustState,
        checkpoint: &TimestampedCheckpoint,
    ) -> Result<(), ClientError> {
        let mut heads: Vec<(String, LogId, RecordId, u64)> = Vec::new();
        let operator_head =
            next.operator
                .head()
                .ok_or_else(|| SecurityError::InconsistentResponse {
                    what: "the log fetch".into(),
                    reason: "the registry has no operator log".into(),
                })?;
        heads.push((
            OPERATOR_LOG.to_owned(),
            LogId::operator_log(),
            *operator_head.envelope.record_id(),
            operator_head.registry_index,
        ));
        for (log_id, package) in &next.packages {
            if let Some(head) = package.log().head() {
                heads.push((
                    package_label(package.name()),
                    *log_id,
                    *head.envelope.record_id(),
                    head.registry_index,
                ));
            }
        }
        let response: InclusionResponse = self
            .http
            .post_json(
                "v1/proof/inclusion",
                &InclusionRequest {
                    log_length: checkpoint.log_length,
                    leafs: heads.iter().map(|h| h.3).collect(),
                },
                "the inclusion proof request",
            )
            .await
            .map_err(|error| match error {
                // The registry cannot prove heads of logs it served: its answers contradict
                // each other.
                ClientError::Registry {
                    status: 422,
                    message,
                    ..
                } => SecurityError::InconsistentResponse {
                    what: "the inclusion proof request".into(),
                    reason: message,
                }
                .into(),
                other => other,
            })?;
        let log_head = TreeHead {
            length: checkpoint.log_length,
            root: checkpoint.log_root.to_hash(),
        };
        let log_bundle =
            decode_log_bundle(&response.log).map_err(|e| SecurityError::BadInclusionProof {
                log: heads[0].0.clone(),
                record: heads[0].2,
                reason: e.to_string(),
            })?;
        let map_proofs =
            decode_map_bundle(&response.map).map_err(|_| SecurityError::StaleMapHead {
                log: heads[0].0.clone(),
                record: heads[0].2,
            })?;
        if map_proofs.len() != heads.len() {
            return Err(SecurityError::InconsistentResponse {
                what: "the inclusion proof request".into(),
                reason: format!("{} map proofs for {} heads", map_proofs.len(), heads.len()),
            }
            .into());
        }
        let map_root = checkpoint.map_root.to_hash();
        for ((label, log_id, record_id, index), map_proof) in heads.iter().zip(&map_proofs) {
            log_bundle
                .verify_inclusion(
                    &log_head,
                    *index,
                    &leaf_hash(&prefix::log_leaf(log_id, record_id)),
                )
                .map_err(|e| SecurityError::BadInclusionProof {
                    log: label.clone(),
                    record: *record_id,
                    reason: e.to_string(),
                })?;
            map_proof
                .verify_inclusion(
                    &map_root,
                    &KeyPath::of_key(log_id.digest().as_bytes()),
                    &prefix::map_leaf(record_id),
                )
                .map_err(|_| SecurityError::StaleMapHead {
                    log: label.clone(),
                    record: *record_id,
                })?;
        }
        Ok(())
    }
}

/// Refuses a checkpoint shorter than the trusted one, or of the same length with other roots.
fn check_against_trusted(
    trusted: Option<&TimestampedCheckpoint>,
    offered: &TimestampedCheckpoint,
) -> Result<(), SecurityError> {
    let Some(trusted) = trusted else {
        return Ok(());
    };
    if offered.log_length < trusted.log_length {
        return Err(SecurityError::RewoundCheckpoint {
            trusted: trusted.log_length,
            offered: offered.log_length,
        });
    }
    if offered.log_length == trusted.log_length && offered.checkpoint() != trusted.checkpoint() {
        return Err(SecurityError::ForkedCheckpoint {
            log_length: offered.log_length,
        });
    }
    Ok(())
}
