//! Small pieces of output shared by commands: sizes for people, JSON for scripts.

use serde::Serialize;

/// A byte count for people: exact bytes, plus KiB or MiB when that helps.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.1} MiB ({bytes} B)", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB ({bytes} B)", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// Prints a line on standard output, returning the error of a failed write (a reader that
/// went away: `cairn log NS:NAME | head -1`) where `println!` would panic; `main` ends such
/// a command quietly.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `count` followed by `noun`, with an `s` unless the count is one.
pub fn count(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
