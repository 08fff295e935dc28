//! One module per subcommand.

pub mod admin;
pub mod audit;
pub mod client;
pub mod config;
pub mod dedup;
pub mod fetch;
pub mod hash;
pub mod info;
pub mod inspect;
pub mod join;
pub mod key;
pub mod log;
pub mod login;
pub mod publish;
pub mod publisher;
pub mod reset;
pub mod serve;
pub mod split;
pub mod update;

use std::path::Path;

use anyhow::Context;
use clap::Args;

/// Reads a whole input file (`-`: standard input), naming it in the error.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .context("cannot read standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Splits `bytes` read from `path`, naming the file in the error.
pub fn split_file<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<cairn_split::Split<'a>> {
    cairn_split::split(bytes).with_context(|| format!("cannot split {}", path.display()))
}

/// Holds the data directory's lock file for as long as it lives, so that offline
/// administration never runs beside a serving registry.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!(
                "{} is in use by a running `cairn serve`; stop it first",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The `--data DIR` argument of the commands that work on a registry's data directory.
#[derive(Args)]
pub struct DataDir {
    /// The data directory.
    #[arg(
        long,
        env = "CAIRN_DATA",
        default_value = "cairn-data",
        value_name = "DIR"
    )]
    pub data: std::path::PathBuf,
}
