//! One module per subcommand.

pub mod admin;
pub mod audit;
pub mod client;
pub mod completions;
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

/// An input file's bytes: a regular file mapped into memory (nothing copied, the pages read
/// straight from the page cache), or what was read from standard input or a pipe.
pub enum InputBytes {
    /// A regular file, mapped.
    Mapped(memmap2::Mmap),
    /// Bytes read.
    Read(Vec<u8>),
}

impl std::ops::Deref for InputBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            InputBytes::Mapped(map) => map,
            InputBytes::Read(bytes) => bytes,
        }
    }
}

/// Reads a whole input file (`-`: standard input), naming it in the error.
#[allow(unsafe_code)] // The memory map; see the SAFETY note.
pub fn read_input(path: &Path) -> anyhow::Result<InputBytes> {
    use std::io::Read as _;
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        return Ok(InputBytes::Read(bytes));
    }
    let cannot = || format!("cannot read {}", path.display());
    let mut file = std::fs::File::open(path).with_context(cannot)?;
    let meta = file.metadata().with_context(cannot)?;
    if !meta.is_file() || meta.len() == 0 {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).with_context(cannot)?;
        return Ok(InputBytes::Read(bytes));
    }
    // SAFETY: the map is only read. Were another process to change the file meanwhile, the
    // bytes read could be a mix of old and new, which the digests computed from them would
    // show, as with a file read while it is written (the trade ripgrep makes too).
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.with_context(cannot)?;
    Ok(InputBytes::Mapped(map))
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

/// The `--data DIR` and `--database URL` arguments of the commands that work on a
/// registry's data directory.
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
    /// The registry's database, when it is not the SQLite file in the data directory:
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB` (every node of a registry names the same).
    // Parsed by `DataDir::database`, not by clap, whose errors would echo a password.
    #[arg(long = "database", env = "CAIRN_DATABASE", value_name = "URL")]
    pub database_url: Option<String>,
}

impl DataDir {
    /// The database `--database` names, if any.
    pub fn database(&self) -> anyhow::Result<Option<cairn_store::Database>> {
        self.database_url
            .as_deref()
            .map(cairn_store::Database::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid --database: {e}"))
    }
}
