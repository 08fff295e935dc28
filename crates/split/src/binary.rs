//! Reading the framing of WebAssembly binaries: preambles, LEB128 sizes and sections.
//!
//! This module only reads what the split needs: the 8-byte preamble and the `id size payload`
//! frame of each section. It never interprets a section's contents (that is `wasmparser`'s
//! job in the server), never allocates, and reports every problem with the absolute offset
//! at which it was found.

use crate::error::SplitError;

/// The four bytes every WebAssembly binary starts with.
pub const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// Version and layer of a core module (version 1, layer 0).
pub const MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Version and layer of a component (version 0x0d, layer 1).
pub const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
/// Length of the preamble (magic, version, layer).
pub const PREAMBLE_LEN: usize = 8;

/// Section id of a core module nested in a component.
pub const CORE_MODULE_SECTION: u8 = 1;
/// Section id of a component nested in a component.
pub const COMPONENT_SECTION: u8 = 4;
/// Section id of a custom section (in modules and components alike).
pub const CUSTOM_SECTION: u8 = 0;

/// What a binary's preamble says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A core WebAssembly module.
    Module,
    /// A component of the component model.
    Component,
}

impl BinaryKind {
    /// A lowercase word for messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryKind::Module => "module",
            BinaryKind::Component => "component",
        }
    }
}

/// Reads the preamble of `bytes`, found at absolute `offset` of the outermost input.
pub fn binary_kind(bytes: &[u8], offset: usize) -> Result<BinaryKind, SplitError> {
    if bytes.is_empty() {
        return Err(SplitError::Empty { offset });
    }
    let magic_len = bytes.len().min(4);
    if bytes[..magic_len] != WASM_MAGIC[..magic_len] {
        return Err(SplitError::BadMagic { offset });
    }
    if bytes.len() < PREAMBLE_LEN {
        return Err(SplitError::Truncated {
            offset: offset + bytes.len(),
            what: "preamble",
        });
    }
    let version: [u8; 4] = bytes[4..8].try_into().expect("length checked above");
    match version {
        MODULE_VERSION => Ok(BinaryKind::Module),
        COMPONENT_VERSION => Ok(BinaryKind::Component),
        _ => Err(SplitError::UnsupportedVersion {
            offset: offset + 4,
            version,
        }),
    }
}

/// Reads an unsigned LEB128 integer of at most 32 bits, as the Wasm binary format encodes
/// sizes: at most 5 bytes, non-minimal encodings allowed, no bits past the 32nd.
/// Returns the value and the number of bytes it took.
pub fn read_u32_leb(bytes: &[u8], offset: usize) -> Result<(u32, usize), SplitError> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let Some(&byte) = bytes.get(i) else {
            return Err(SplitError::Truncated {
                offset: offset + i,
                what: "LEB128 integer",
            });
        };
        if i == 4 && byte & 0xf0 != 0 {
            return Err(SplitError::BadLeb128 { offset: offset + i });
        }
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    unreachable!("the fifth byte either ends the integer or is rejected above")
}

/// One section of a binary, located in the outermost input.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// The section id byte.
    pub id: u8,
    /// Absolute offset of the id byte.
    pub start: usize,
    /// Absolute offset of the first payload byte (after the id and the size as encoded).
    pub payload_start: usize,
    /// The payload.
    pub payload: &'a [u8],
}

impl Section<'_> {
    /// Absolute offset just past the payload.
    pub fn end(&self) -> usize {
        self.payload_start + self.payload.len()
    }
}

/// Iterates the sections of one binary, after its preamble.
///
/// `bytes` is the whole binary (preamble included) and `offset` its absolute offset. The
/// iterator stops at the first framing error, which it yields.
pub struct Sections<'a> {
    bytes: &'a [u8],
    pos: usize,
    offset: usize,
    failed: bool,
}

impl<'a> Sections<'a> {
    /// Sections of `bytes`, whose preamble the caller has already checked.
    pub fn new(bytes: &'a [u8], offset: usize) -> Self {
        Sections {
            bytes,
            pos: PREAMBLE_LEN.min(bytes.len()),
            offset,
            failed: false,
        }
    }

    fn read_section(&mut self) -> Result<Section<'a>, SplitError> {
        let start = self.pos;
        let id = self.bytes[start];
        let (size, leb_len) = read_u32_leb(&self.bytes[start + 1..], self.offset + start + 1)?;
        let payload_start = start + 1 + leb_len;
        let available = self.bytes.len() - payload_start;
        if size as usize > available {
            return Err(SplitError::SectionPastEnd {
                offset: self.offset + start,
                declared: size,
                available: available as u64,
            });
        }
        let payload_end = payload_start + size as usize;
        self.pos = payload_end;
        Ok(Section {
            id,
            start: self.offset + start,
            payload_start: self.offset + payload_start,
            payload: &self.bytes[payload_start..payload_end],
        })
    }
}

impl<'a> Iterator for Sections<'a> {
    type Item = Result<Section<'a>, SplitError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let section = self.read_section();
        self.failed = section.is_err();
        Some(section)
    }
}

/// Checks the framing of a core module: its preamble and that every section fits.
pub fn check_module_framing(bytes: &[u8], offset: usize) -> Result<(), SplitError> {
    match binary_kind(bytes, offset)? {
        BinaryKind::Module => {}
        BinaryKind::Component => return Err(SplitError::ComponentWhereModuleExpected { offset }),
    }
    for section in Sections::new(bytes, offset) {
        section?;
    }
    Ok(())
}

/// A custom section of a core module or component: its name and whole size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSection {
    /// The section's name (lossily decoded if it is not UTF-8).
    pub name: String,
    /// Bytes the section takes in the binary, header included.
    pub size: u64,
}

/// Lists the custom sections at the top level of a binary, in order.
pub fn custom_sections(bytes: &[u8]) -> Result<Vec<CustomSection>, SplitError> {
    binary_kind(bytes, 0)?;
    let mut found = Vec::new();
    for section in Sections::new(bytes, 0) {
        let section = section?;
        if section.id != CUSTOM_SECTION {
            continue;
        }
        let name = match read_u32_leb(section.payload, section.payload_start) {
            Ok((len, leb_len)) => section
                .payload
                .get(leb_len..leb_len + len as usize)
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .unwrap_or_else(|| "<malformed name>".to_owned()),
            Err(_) => "<malformed name>".to_owned(),
        };
        found.push(CustomSection {
            name,
            size: (section.end() - section.start) as u64,
        });
    }
    Ok(found)
}
