//! The servers tests start for themselves, on loopback, and stop by their PID: a PostgreSQL
//! cluster ([`postgres::Cluster`]) and an S3 server ([`s3::S3Server`]). Each is found
//! installed or the test skips with a note, except in CI, where a missing one is a failure.

#![forbid(unsafe_code)]

pub mod postgres;
pub mod s3;

pub use postgres::Cluster;
pub use s3::S3Server;
