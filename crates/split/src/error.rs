//! Why an input could not be split.

/// Why an input could not be split. Every variant carries the absolute offset in the input
/// at which the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// There are no bytes where a binary should start (an empty file, or an empty nested
    /// module or component).
    #[error("no bytes at offset {offset} where a WebAssembly binary should start")]
    Empty {
        /// Where the binary should have started.
        offset: usize,
    },
    /// The bytes do not start with `\0asm`.
    #[error("not a WebAssembly binary: the magic bytes at offset {offset} are not `\\0asm`")]
    BadMagic {
        /// Where the magic should have been.
        offset: usize,
    },
    /// The version and layer are neither a core module's nor a component's.
    #[error(
        "unsupported WebAssembly version {version:02x?} at offset {offset} \
         (a core module has [01, 00, 00, 00], a component [0d, 00, 01, 00])"
    )]
    UnsupportedVersion {
        /// Offset of the version field.
        offset: usize,
        /// The four version and layer bytes found.
        version: [u8; 4],
    },
    /// The input ends in the middle of something.
    #[error("truncated input: it ends at offset {offset} inside a {what}")]
    Truncated {
        /// Where the input ended.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A LEB128 integer is longer than 5 bytes or has bits past the 32nd.
    #[error("malformed LEB128 integer at offset {offset}")]
    BadLeb128 {
        /// Offset of the offending byte.
        offset: usize,
    },
    /// A section declares more bytes than its binary has left.
    #[error(
        "the section at offset {offset} declares {declared} bytes but only {available} remain"
    )]
    SectionPastEnd {
        /// Offset of the section's id byte.
        offset: usize,
        /// The size the section declares.
        declared: u32,
        /// The bytes left in the enclosing binary after the section header.
        available: u64,
    },
    /// A core module section of a component holds a component.
    #[error("a core module section holds a component at offset {offset}")]
    ComponentWhereModuleExpected {
        /// Offset of the nested binary.
        offset: usize,
    },
    /// A component section of a component holds a core module.
    #[error("a component section holds a core module at offset {offset}")]
    ModuleWhereComponentExpected {
        /// Offset of the nested binary.
        offset: usize,
    },
    /// Components are nested deeper than [`crate::limits::MAX_NESTING_DEPTH`].
    #[error("components are nested more than {max} levels deep at offset {offset}")]
    NestingTooDeep {
        /// Offset of the component that is one level too deep.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// The split would have more fragments than [`crate::limits::MAX_FRAGMENTS`].
    #[error("more than {max} fragments (core modules and nested components), at offset {offset}")]
    TooManyFragments {
        /// Offset of the fragment past the limit.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// The input is larger than [`crate::limits::MAX_INPUT_SIZE`].
    #[error("the input has {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// The input's size.
        size: u64,
        /// The limit.
        max: u64,
    },
}
