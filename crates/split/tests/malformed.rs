//! Malformed input gives a typed error with the offset of the problem, never a panic, and
//! never makes the split allocate more than the input's size.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cairn_split::limits::{MAX_FRAGMENTS, MAX_NESTING_DEPTH};
use cairn_split::{split, SplitError};
use support::*;

/// Counts the bytes this thread has allocated and not freed, and the peak of that count.
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            live.set(live.get() + layout.size() as isize);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
        });
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Splits `bytes`, expecting an error, and checks the split allocated at most the input's
/// size at any time.
fn split_err(bytes: &[u8]) -> SplitError {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let result = split(bytes);
    let peak = PEAK.with(Cell::get) - base;
    let error = result.expect_err("malformed input must be refused");
    assert!(
        peak <= bytes.len() as isize,
        "split allocated {peak} bytes for a {}-byte input",
        bytes.len()
    );
    error
}

#[test]
fn zero_bytes_is_an_empty_input() {
    assert_eq!(split_err(&[]), SplitError::Empty { offset: 0 });
}

#[test]
fn wrong_magic_is_refused() {
    assert_eq!(
        split_err(b"\0asn\x01\0\0\0"),
        SplitError::BadMagic { offset: 0 }
    );
    assert_eq!(split_err(b"PK\x03\x04"), SplitError::BadMagic { offset: 0 });
    assert_eq!(split_err(b"x"), SplitError::BadMagic { offset: 0 });
}

#[test]
fn wrong_version_is_refused() {
    assert_eq!(
        split_err(b"\0asm\x02\0\0\0"),
        SplitError::UnsupportedVersion {
            offset: 4,
            version: [2, 0, 0, 0]
        }
    );
    // The pre-release component encoding.
    assert_eq!(
        split_err(b"\0asm\x0a\0\x01\0"),
        SplitError::UnsupportedVersion {
            offset: 4,
            version: [0x0a, 0, 1, 0]
        }
    );
}

#[test]
fn truncation_anywhere_is_refused() {
    let inner = component(&[module_section(&small_module(1)), custom("c", b"data")]);
    let whole = component(&[
        custom("first", b"hello"),
        module_section(&small_module(2)),
        component_section(&inner),
        section_with_width(7, &[1, 2, 3], 5),
    ]);
    assert!(split(&whole).is_ok());
    // Cutting at a section boundary leaves a shorter valid binary; cutting anywhere else
    // must be refused, with an offset inside the input.
    let boundaries = section_boundaries(&whole);
    for len in 0..whole.len() {
        let cut = &whole[..len];
        match split(cut) {
            Ok(_) => assert!(boundaries.contains(&len), "a cut at {len} was accepted"),
            Err(error) => {
                let _ = split_err(cut);
                assert!(
                    offset_of(&error) <= len,
                    "{error} points past the end ({len})"
                );
            }
        }
    }
}

fn section_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut boundaries = vec![8];
    for section in cairn_split::binary::Sections::new(bytes, 0) {
        boundaries.push(section.unwrap().end());
    }
    boundaries
}

fn offset_of(error: &SplitError) -> usize {
    match *error {
        SplitError::Empty { offset }
        | SplitError::BadMagic { offset }
        | SplitError::UnsupportedVersion { offset, .. }
        | SplitError::Truncated { offset, .. }
        | SplitError::BadLeb128 { offset }
        | SplitError::SectionPastEnd { offset, .. }
        | SplitError::ComponentWhereModuleExpected { offset }
        | SplitError::ModuleWhereComponentExpected { offset }
        | SplitError::NestingTooDeep { offset, .. }
        | SplitError::TooManyFragments { offset, .. } => offset,
        SplitError::TooLarge { .. } => 0,
    }
}

#[test]
fn a_section_size_past_the_end_is_refused() {
    let mut bytes = module(&[]);
    bytes.extend([1, 10, 0, 0]); // declares 10 bytes, 2 remain
    assert_eq!(
        split_err(&bytes),
        SplitError::SectionPastEnd {
            offset: 8,
            declared: 10,
            available: 2
        }
    );
}

#[test]
fn billions_sized_declared_lengths_are_refused_without_allocating() {
    // Sizes of 4 GiB - 1 in a module, a nested module and a nested component.
    let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut in_module = module(&[]);
    in_module.push(10);
    in_module.extend(huge);
    assert!(matches!(
        split_err(&in_module),
        SplitError::SectionPastEnd {
            declared: u32::MAX,
            ..
        }
    ));

    for id in [1u8, 4, 0, 7] {
        let mut in_component = component(&[]);
        in_component.push(id);
        in_component.extend(huge);
        in_component.extend(MODULE_PREAMBLE);
        assert!(matches!(
            split_err(&in_component),
            SplitError::SectionPastEnd {
                offset: 8,
                declared: u32::MAX,
                ..
            }
        ));
    }

    // A nested module whose own section is huge.
    let mut inner = module(&[]);
    inner.push(1);
    inner.extend(huge);
    let outer = component(&[module_section(&inner)]);
    assert!(matches!(
        split_err(&outer),
        SplitError::SectionPastEnd { offset: 18, .. }
    ));
}

#[test]
fn leb128_sizes_longer_than_five_bytes_or_past_32_bits_are_refused() {
    let mut too_long = module(&[]);
    too_long.extend([1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(split_err(&too_long), SplitError::BadLeb128 { offset: 13 });
    let mut too_wide = module(&[]);
    too_wide.extend([1, 0xff, 0xff, 0xff, 0xff, 0x1f]);
    assert_eq!(split_err(&too_wide), SplitError::BadLeb128 { offset: 13 });
}

#[test]
fn absurd_nesting_depth_is_refused() {
    let mut bytes = component(&[]);
    for _ in 0..(MAX_NESTING_DEPTH + 1) {
        bytes = component(&[component_section(&bytes)]);
    }
    assert!(matches!(
        split_err(&bytes),
        SplitError::NestingTooDeep { .. }
    ));
    // The deepest allowed nesting still splits.
    let mut ok = component(&[]);
    for _ in 0..MAX_NESTING_DEPTH {
        ok = component(&[component_section(&ok)]);
    }
    support::assert_round_trip(&ok);
}

#[test]
fn far_deeper_nesting_is_refused_without_exhausting_the_stack() {
    // 100,000 levels, written outside in: each level is a preamble and a section header
    // whose 5-byte size covers all the levels inside it.
    let levels = 100_000usize;
    let per_level = 8 + 1 + 5;
    let mut bytes = Vec::with_capacity(levels * per_level + 8);
    for level in 0..levels {
        bytes.extend(COMPONENT_PREAMBLE);
        bytes.push(4);
        let inside = (levels - level - 1) * per_level + 8;
        bytes.extend(leb(inside as u32, 5));
    }
    bytes.extend(COMPONENT_PREAMBLE);
    assert!(matches!(
        split_err(&bytes),
        SplitError::NestingTooDeep { .. }
    ));
}

#[test]
fn too_many_fragments_are_refused() {
    let empty = module_section(&module(&[]));
    let sections = vec![empty; MAX_FRAGMENTS + 1];
    let bytes = component(&sections);
    assert!(matches!(
        split(&bytes),
        Err(SplitError::TooManyFragments { .. })
    ));
}

#[test]
fn a_module_section_holding_a_component_is_refused_and_vice_versa() {
    let wrong_module = component(&[module_section(&component(&[]))]);
    assert_eq!(
        split_err(&wrong_module),
        SplitError::ComponentWhereModuleExpected { offset: 10 }
    );
    let wrong_component = component(&[component_section(&module(&[]))]);
    assert_eq!(
        split_err(&wrong_component),
        SplitError::ModuleWhereComponentExpected { offset: 10 }
    );
    let empty_module = component(&[module_section(&[])]);
    assert_eq!(split_err(&empty_module), SplitError::Empty { offset: 10 });
}

#[test]
fn errors_read_well() {
    let error = split_err(b"\0asm\x01\0\0\0\x01\x0a\0\0");
    assert_eq!(
        error.to_string(),
        "the section at offset 8 declares 10 bytes but only 2 remain"
    );
}
