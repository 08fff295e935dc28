//! Any bytes as the JSON body of every route that takes one: `fetch/logs`, `fetch/names`,
//! publishing a record, `proof/inclusion`, `proof/consistency`, `verify/checkpoint`, and
//! cairn's `blobs/missing` and split manifest upload. Deserialising never panics, and what
//! deserialises serialises to JSON that deserialises to the same value.
//!
//! A publish request's record is decoded as the server decodes it, which never panics, and
//! the envelope keeps the request's bytes, key id and signature.

#![no_main]

use std::fmt::Debug;

use cairn_protocol::api::{
    ConsistencyRequest, EnvelopeBody, FetchLogsRequest, FetchNamesRequest, InclusionRequest,
    PublishRecordRequest,
};
use cairn_protocol::{PackageEntry, SignedCheckpoint};
use cairn_split::{BlobEntry, Manifest};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/cairn/blobs/missing`: a copy of the server's private type.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MissingBlobsRequest {
    digests: Vec<cairn_split::Digest>,
}

/// The listing inside a split manifest, without its media type and tree digest.
#[derive(Deserialize)]
struct Listing {
    size: u64,
    blobs: Vec<BlobEntry>,
}

/// Deserialises `data` as `T` and checks that it survives a JSON round trip.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    match serde_json::from_slice::<T>(data) {
        Ok(value) => {
            let json = serde_json::to_vec(&value).expect("a request serialises");
            let again: T = serde_json::from_slice(&json).expect("its JSON deserialises");
            assert_eq!(again, value, "JSON round trip changed the request");
            Some(value)
        }
        // The server answers with the error's category and text.
        Err(error) => {
            let _ = (error.classify(), error.to_string());
            None
        }
    }
}

fn manifest_round_trip(manifest: &Manifest) {
    let again = Manifest::from_json(manifest.to_json().as_bytes()).expect("to_json parses");
    assert_eq!(&again, manifest, "Manifest JSON round trip changed it");
}

fuzz_target!(|data: &[u8]| {
    round_trip::<FetchLogsRequest>(data);
    round_trip::<FetchNamesRequest>(data);
    round_trip::<InclusionRequest>(data);
    round_trip::<ConsistencyRequest>(data);
    round_trip::<MissingBlobsRequest>(data);
    if let Some(checkpoint) = round_trip::<SignedCheckpoint>(data) {
        let _ = (
            checkpoint.contents.signed_payload(),
            checkpoint.contents.checkpoint().id(),
        );
    }
    if let Some(request) = round_trip::<PublishRecordRequest>(data) {
        let _ = request.package_name.log_id();
        match request.record.to_envelope::<PackageEntry>() {
            Ok(envelope) => {
                assert_eq!(EnvelopeBody::from(&envelope), request.record);
                let time = envelope.record().time;
                if time.fits_rfc3339() {
                    let _ = time.to_rfc3339();
                }
            }
            Err(error) => drop(error.to_string()),
        }
    }
    match Manifest::from_json(data) {
        Ok(manifest) => manifest_round_trip(&manifest),
        Err(error) => drop(error.to_string()),
    }
    // A stated tree digest is rarely right by chance: check the round trip of every listing
    // that makes a manifest, whatever digest it states.
    if let Ok(listing) = serde_json::from_slice::<Listing>(data) {
        if let Ok(manifest) = Manifest::new(listing.size, listing.blobs) {
            manifest_round_trip(&manifest);
        }
    }
});
