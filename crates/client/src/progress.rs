//! Reporting how uploads and downloads advance, for progress bars. The client calls a
//! [`Progress`] if one is configured; it never depends on one.

use std::fmt;
use std::sync::Arc;

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// To the registry.
    Upload,
    /// From the registry.
    Download,
}

/// Something that shows a transfer advancing, such as a progress bar.
pub trait Progress: Send + Sync {
    /// A transfer of `total_bytes` (as far as known) starts; `what` names what moves
    /// (`namespace:name@version`).
    fn start(&self, direction: Transfer, what: &str, total_bytes: u64);
    /// `bytes` more bytes arrived or left.
    fn advance(&self, bytes: u64);
    /// The transfer ended (successfully or not).
    fn finish(&self);
}

/// An optional [`Progress`], cheap to clone.
#[derive(Clone, Default)]
pub struct ProgressSink(Option<Arc<dyn Progress>>);

impl ProgressSink {
    /// Reports to `progress`.
    pub fn new(progress: Arc<dyn Progress>) -> Self {
        ProgressSink(Some(progress))
    }

    pub(crate) fn start(&self, direction: Transfer, what: &str, total_bytes: u64) {
        if let Some(p) = &self.0 {
            p.start(direction, what, total_bytes);
        }
    }

    pub(crate) fn advance(&self, bytes: u64) {
        if let Some(p) = &self.0 {
            p.advance(bytes);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(p) = &self.0 {
            p.finish();
        }
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(on)"
        } else {
            "ProgressSink(off)"
        })
    }
}
