//! Builds WebAssembly binaries byte by byte, including encodings real toolchains rarely
//! emit (non-minimal LEB128 sizes, empty and custom sections anywhere), for tests.
#![allow(dead_code)]

pub const MODULE_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
pub const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// `value` as unsigned LEB128 in exactly `width` bytes (at least the minimal width, at most 5).
pub fn leb(value: u32, width: usize) -> Vec<u8> {
    let minimal = minimal_width(value);
    let width = width.clamp(minimal, 5);
    let mut out = Vec::with_capacity(width);
    let mut rest = value;
    for i in 0..width {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        out.push(if i + 1 < width { byte | 0x80 } else { byte });
    }
    out
}

pub fn minimal_width(value: u32) -> usize {
    let mut width = 1;
    let mut rest = value >> 7;
    while rest != 0 {
        width += 1;
        rest >>= 7;
    }
    width
}

/// One section: id, size in `width` LEB128 bytes, payload.
pub fn section_with_width(id: u8, payload: &[u8], width: usize) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(leb(payload.len() as u32, width));
    out.extend_from_slice(payload);
    out
}

pub fn section(id: u8, payload: &[u8]) -> Vec<u8> {
    section_with_width(id, payload, 1)
}

/// The payload of a custom section.
pub fn custom_payload(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = leb(name.len() as u32, 1);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    out
}

pub fn custom(name: &str, data: &[u8]) -> Vec<u8> {
    section(0, &custom_payload(name, data))
}

pub fn module(sections: &[Vec<u8>]) -> Vec<u8> {
    let mut out = MODULE_PREAMBLE.to_vec();
    for s in sections {
        out.extend_from_slice(s);
    }
    out
}

pub fn component(sections: &[Vec<u8>]) -> Vec<u8> {
    let mut out = COMPONENT_PREAMBLE.to_vec();
    for s in sections {
        out.extend_from_slice(s);
    }
    out
}

/// A component section holding `module`.
pub fn module_section(module: &[u8]) -> Vec<u8> {
    section(1, module)
}

/// A component section holding the component `inner`.
pub fn component_section(inner: &[u8]) -> Vec<u8> {
    section(4, inner)
}

/// A small module with a type, a function and a body: distinct for each `n`.
pub fn small_module(n: u8) -> Vec<u8> {
    module(&[
        section(1, &[0x01, 0x60, 0x00, 0x01, 0x7f]), // type: () -> i32
        section(3, &[0x01, 0x00]),                   // one function of type 0
        section(10, &[0x01, 0x04, 0x00, 0x41, n & 0x3f, 0x0b]), // body: i32.const n
    ])
}

/// Splits, joins, and checks the result is the input.
pub fn assert_round_trip(bytes: &[u8]) -> cairn_split::Split<'_> {
    let split = cairn_split::split(bytes).expect("split");
    let mut joined = Vec::new();
    let mut source = split.clone();
    cairn_split::join(split.manifest(), &mut source, &mut joined).expect("join");
    assert!(joined == bytes, "join(split(x)) != x");
    // The manifest survives JSON.
    let json = split.manifest().to_json();
    assert_eq!(
        &cairn_split::Manifest::from_json(json.as_bytes()).unwrap(),
        split.manifest()
    );
    split
}
