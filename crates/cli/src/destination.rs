//! Where a command writes a file it makes (`fetch`, `join`): standard output, a regular file
//! replaced atomically, or a path that is not a regular file (a FIFO, a device), written into.
//!
//! `-o -` is standard output; `-o DIR` writes `DIR/NAME.wasm`; an existing regular file with
//! other bytes is replaced only with `--force` (the same bytes are left alone); a FIFO or a
//! device such as `/dev/null` is opened and written, never renamed over.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use atomic_write_file::AtomicWriteFile;

/// Where the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output (`-o -`).
    Stdout,
    /// A regular file, existing or not: written beside it, then renamed into place.
    File(PathBuf),
    /// An existing path that is not a regular file (a FIFO, a character device): opened for
    /// writing as it is.
    Special(PathBuf),
}

impl Destination {
    /// The destination for `-o output` (or its absence) of a file whose own name is
    /// `file_name` (`hello.wasm`): the current folder when there is no `-o`, inside `output`
    /// when it is a directory.
    pub fn resolve(output: Option<&Path>, file_name: &str) -> Destination {
        let Some(output) = output else {
            return Destination::File(PathBuf::from(file_name));
        };
        if output == Path::new("-") {
            return Destination::Stdout;
        }
        match fs::metadata(output) {
            Ok(meta) if meta.is_dir() => Destination::File(output.join(file_name)),
            Ok(meta) if !meta.is_file() => Destination::Special(output.to_owned()),
            _ => Destination::File(output.to_owned()),
        }
    }

    /// Whether the bytes go to standard output (so a report must not).
    pub fn is_stdout(&self) -> bool {
        matches!(self, Destination::Stdout)
    }

    /// How the destination is named in reports.
    pub fn display(&self) -> String {
        match self {
            Destination::Stdout => "standard output".to_owned(),
            Destination::File(path) | Destination::Special(path) => path.display().to_string(),
        }
    }

    /// Writes `bytes`. An existing regular file with other bytes is replaced only if `force`.
    pub fn write(&self, bytes: &[u8], force: bool) -> anyhow::Result<()> {
        self.write_with(force, |out| Ok(out.write_all(bytes)?))
    }

    /// Writes what `write` produces. To a regular file, it goes to a temporary file beside it
    /// first, which replaces the file only if `write` succeeds (and, when the file exists with
    /// other bytes, only if `force`).
    pub fn write_with<T>(
        &self,
        force: bool,
        write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match self {
            Destination::Stdout => {
                let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
                let value = write(&mut out)?;
                out.flush().context("cannot write to standard output")?;
                Ok(value)
            }
            Destination::Special(path) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {} for writing", path.display()))?;
                let mut out = BufWriter::with_capacity(64 << 10, file);
                let value = write(&mut out)?;
                out.flush()
                    .with_context(|| format!("cannot write to {}", path.display()))?;
                Ok(value)
            }
            Destination::File(path) => write_file(path, force, write),
        }
    }
}

/// Writes a regular file through a temporary one beside it (`atomic-write-file`: synced,
/// renamed over the file, the directory synced), unless the file holds other bytes and
/// `force` is not given.
fn write_file<T>(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let cannot = || format!("cannot write {}", path.display());
    let mut options = AtomicWriteFile::options();
    options.read(true);
    let file = options.open(path).with_context(cannot)?;
    let mut out = BufWriter::with_capacity(64 << 10, file);
    let value = write(&mut out)?;
    let mut file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(cannot)?;
    if !force && fs::symlink_metadata(path).is_ok() && !same_bytes(file.as_file_mut(), path)? {
        // Dropped without a commit, the temporary file goes.
        bail!(
            "{} exists and holds other bytes; `--force` replaces it",
            path.display()
        );
    }
    file.commit().with_context(cannot)?;
    Ok(value)
}

/// Whether `written` (read from its start) and the file at `b` hold the same bytes.
fn same_bytes(written: &mut File, b: &Path) -> anyhow::Result<bool> {
    use std::io::Seek as _;
    written.rewind()?;
    let a_file = written;
    let mut b_file = File::open(b).with_context(|| format!("cannot read {}", b.display()))?;
    if a_file.metadata()?.len() != b_file.metadata()?.len() {
        return Ok(false);
    }
    let (mut a_buffer, mut b_buffer) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let read = a_file.read(&mut a_buffer)?;
        if read == 0 {
            return Ok(true);
        }
        b_file.read_exact(&mut b_buffer[..read])?;
        if a_buffer[..read] != b_buffer[..read] {
            return Ok(false);
        }
    }
}

/// Writes `bytes` to the regular file `path` through a temporary file beside it, replacing
/// whatever is there.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_file(path, true, |out| Ok(out.write_all(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cairn-destination-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_dash_is_standard_output_and_a_directory_gets_the_file_name() {
        let dir = dir("resolve");
        assert_eq!(
            Destination::resolve(Some(Path::new("-")), "a.wasm"),
            Destination::Stdout
        );
        assert_eq!(
            Destination::resolve(Some(&dir), "a.wasm"),
            Destination::File(dir.join("a.wasm"))
        );
        assert_eq!(
            Destination::resolve(None, "a.wasm"),
            Destination::File(PathBuf::from("a.wasm"))
        );
        assert_eq!(
            Destination::resolve(Some(Path::new("/dev/null")), "a.wasm"),
            Destination::Special(PathBuf::from("/dev/null"))
        );
    }

    #[test]
    fn another_file_is_replaced_only_with_force_and_the_same_bytes_are_fine() {
        let dir = dir("force");
        let path = dir.join("out.wasm");
        fs::write(&path, b"old").unwrap();
        let destination = Destination::File(path.clone());
        let error = destination.write(b"new", false).unwrap_err().to_string();
        assert!(
            error.contains("exists and holds other bytes; `--force`"),
            "{error}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old");
        destination.write(b"old", false).unwrap();
        destination.write(b"new", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_file_as_it_was() {
        let dir = dir("failed");
        let path = dir.join("out.wasm");
        fs::write(&path, b"old").unwrap();
        let error = Destination::File(path.clone())
            .write_with(true, |out| -> anyhow::Result<()> {
                out.write_all(b"partial")?;
                bail!("the join failed")
            })
            .unwrap_err();
        assert_eq!(error.to_string(), "the join failed");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }
}
