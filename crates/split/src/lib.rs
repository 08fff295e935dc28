//! The canonical split of WebAssembly binaries.
//!
//! A component is stored and shipped as *blobs*: each core module it contains, anywhere in
//! its tree of nested components, becomes a fragment named by the SHA-256 of its bytes, and
//! each component becomes a *skeleton* (its bytes with every nested module and component
//! replaced by a reference). The same module always yields the same fragment, so modules
//! shared by many components (language runtimes, libc, adapters) are stored and fetched once.
//! A plain core module is a single blob: itself.
//!
//! * [`split()`] takes the bytes of a module or component and returns its [`Split`]: the
//!   distinct blobs in join order and the [`Manifest`] listing them.
//! * [`Manifest::tree_digest`] names the whole tree; it commits to every byte and is
//!   domain-separated from plain file digests.
//! * [`join()`] rebuilds the original bytes from any [`BlobSource`], streaming, and verifies
//!   every blob's size and digest as it goes.
//!
//! `join(split(x)) == x` for every input `split` accepts, byte for byte. The result of a
//! split depends on the input alone: there are no thresholds or settings. This crate does no
//! I/O of its own and never panics on input; errors carry the offset of the problem. The
//! format is specified in `docs/split-format.md`.

#![forbid(unsafe_code)]

pub mod binary;
mod digest;
mod error;
pub mod join;
pub mod limits;
pub mod manifest;
pub mod skeleton;
mod split;

pub use binary::BinaryKind;
pub use digest::{BlobId, CidError, DigestParseError, TreeDigest};
pub use error::SplitError;
pub use join::{join, BlobSource, JoinError, JoinSummary};
pub use manifest::{BlobEntry, BlobKind, Manifest, ManifestError};
pub use split::{split, Blob, Split};
