//! The fixed limits of the split format.
//!
//! They bound the work and memory that any input can cause. They are part of the format, not
//! settings: an input within them always splits the same way, and one past them is refused.

/// The largest input, in bytes: every size in a skeleton is a `u32`.
pub const MAX_INPUT_SIZE: u64 = u32::MAX as u64;

/// The deepest nesting of components inside a component. The outermost component is at
/// depth 0, so a component may contain components nested this many levels deep.
pub const MAX_NESTING_DEPTH: usize = 64;

/// The most fragments (core module and nested component occurrences) one input may hold.
pub const MAX_FRAGMENTS: usize = 100_000;

/// The most blobs a manifest may list.
pub const MAX_BLOBS: usize = MAX_FRAGMENTS + 1;
