//! Proof bundles in protobuf (placeholder until the log crate settles).
