//! Progress bars for uploads and downloads, on stderr, only when it is a terminal (and the
//! command was not asked for `--json`): labelled with what moves (`namespace:name@version`) and
//! which way, advancing as the bytes stream, as wide as the terminal, with the rate and the
//! time left.

use std::sync::Mutex;

use cairn_client::Transfer;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows each transfer the client reports as a byte progress bar.
#[derive(Default)]
pub struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl cairn_client::Progress for TerminalProgress {
    fn start(&self, direction: Transfer, what: &str, total_bytes: u64) {
        // The label takes the width the rest leaves (and is cut short on a narrow terminal);
        // everything else has a fixed width.
        let style = ProgressStyle::with_template(
            "{prefix} {wide_msg} [{bar:12}] {bytes}/{total_bytes} {bytes_per_sec} {eta} left",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        let arrow = match direction {
            Transfer::Upload => "↑",
            Transfer::Download => "↓",
        };
        let bar = ProgressBar::new(total_bytes)
            .with_style(style)
            .with_prefix(arrow)
            .with_message(what.to_owned());
        *self.bar.lock().expect("progress lock") = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &*self.bar.lock().expect("progress lock") {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
