//! Signed records: the exact protobuf bytes, the signer's key id, the signature, and the
//! record decoded from those bytes.
//!
//! A record's id is computed from the bytes as received and never from a re-encoding, so a
//! record signed by any encoder keeps its id.

use crate::crypto::{BadSignature, PrivateKey, PublicKey, Signature, SigningDomain};
use crate::digest::{KeyId, RecordId};
use crate::protobuf::{Reader, Writer};
use crate::record::{DecodeError, Entry, OperatorEntry, PackageEntry, Record};

/// What differs between package and operator records: their domains.
pub trait LogKind: Entry {
    /// The domain of signatures over these records.
    const SIGNING_DOMAIN: SigningDomain;
    /// The id of a record with these bytes.
    fn record_id(content_bytes: &[u8]) -> RecordId;
}

impl LogKind for PackageEntry {
    const SIGNING_DOMAIN: SigningDomain = SigningDomain::PackageRecord;
    fn record_id(content_bytes: &[u8]) -> RecordId {
        RecordId::package_record(content_bytes)
    }
}

impl LogKind for OperatorEntry {
    const SIGNING_DOMAIN: SigningDomain = SigningDomain::OperatorRecord;
    fn record_id(content_bytes: &[u8]) -> RecordId {
        RecordId::operator_record(content_bytes)
    }
}

/// Proof that an envelope's signature verified with the key whose id it names. Only
/// [`Envelope::verify_signature`] makes one, so holding one means the check was done.
/// It covers exactly one envelope: the same record id (the content bytes), key id and
/// signature; a validator given it for any other envelope verifies as usual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    record_id: RecordId,
    key_id: KeyId,
    signature: Signature,
}

impl VerifiedSignature {
    /// The record whose signature verified.
    pub fn record_id(&self) -> &RecordId {
        &self.record_id
    }

    /// Whether this proves `envelope`'s signature.
    pub fn covers<E: LogKind>(&self, envelope: &Envelope<E>) -> bool {
        self.record_id == envelope.record_id
            && self.key_id == envelope.key_id
            && self.signature == envelope.signature
    }
}

/// A signed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<E> {
    content_bytes: Vec<u8>,
    key_id: KeyId,
    signature: Signature,
    record: Record<E>,
    record_id: RecordId,
}

/// A signed package record.
pub type PackageEnvelope = Envelope<PackageEntry>;
/// A signed operator record.
pub type OperatorEnvelope = Envelope<OperatorEntry>;

impl<E: LogKind> Envelope<E> {
    /// An envelope from received parts: the record is decoded from `content_bytes`, whose
    /// signature is not checked here (the log validators check it against the log's keys).
    pub fn from_parts(
        content_bytes: Vec<u8>,
        key_id: KeyId,
        signature: Signature,
    ) -> Result<Self, DecodeError> {
        let record = Record::decode(&content_bytes)?;
        let record_id = E::record_id(&content_bytes);
        Ok(Envelope {
            content_bytes,
            key_id,
            signature,
            record,
            record_id,
        })
    }

    /// Encodes and signs a record.
    pub fn signed(record: Record<E>, key: &PrivateKey) -> Self {
        let content_bytes = record.encode();
        let signature = key.sign(E::SIGNING_DOMAIN, &content_bytes);
        let record_id = E::record_id(&content_bytes);
        Envelope {
            content_bytes,
            key_id: key.public_key().fingerprint(),
            signature,
            record,
            record_id,
        }
    }

    /// Checks the signature against `key`. The proof it returns lets a validator skip
    /// checking this same signature again (see [`VerifiedSignature`]).
    pub fn verify_signature(&self, key: &PublicKey) -> Result<VerifiedSignature, BadSignature> {
        key.verify(E::SIGNING_DOMAIN, &self.content_bytes, &self.signature)?;
        Ok(VerifiedSignature {
            record_id: self.record_id,
            key_id: key.fingerprint(),
            signature: self.signature.clone(),
        })
    }

    /// The exact protobuf bytes that were signed.
    pub fn content_bytes(&self) -> &[u8] {
        &self.content_bytes
    }

    /// The signer's key id.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The decoded record.
    pub fn record(&self) -> &Record<E> {
        &self.record
    }

    /// The record's id (its fetch token).
    pub fn record_id(&self) -> &RecordId {
        &self.record_id
    }

    /// The storage form: `Envelope { bytes contents = 1; string key_id = 2; string signature = 3; }`.
    pub fn to_protobuf(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes_field(1, &self.content_bytes);
        w.bytes_field(2, self.key_id.to_string().as_bytes());
        w.bytes_field(3, self.signature.to_string().as_bytes());
        w.finish()
    }

    /// Reads the storage form.
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut contents, mut key_id, mut signature) = (&[][..], "", "");
        let mut reader = Reader::new(bytes);
        while let Some((field, value)) = reader.next_field()? {
            match field {
                1 => contents = value.bytes(field)?,
                2 => key_id = value.string(field)?,
                3 => signature = value.string(field)?,
                _ => {}
            }
        }
        let signature = signature.parse().map_err(DecodeError::Key)?;
        Self::from_parts(contents.to_vec(), key_id.parse()?, signature)
    }
}
