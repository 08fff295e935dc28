//! One module per subcommand.

pub mod dedup;
pub mod hash;
pub mod inspect;
pub mod join;
pub mod split;

use std::path::Path;

use anyhow::Context;

/// Reads a whole input file, naming it in the error.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Splits `bytes` read from `path`, naming the file in the error.
pub fn split_file<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<cairn_split::Split<'a>> {
    cairn_split::split(bytes).with_context(|| format!("cannot split {}", path.display()))
}
