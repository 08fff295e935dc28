//! `join(split(x)) == x` for generated binaries: deep nesting, repeated modules, custom and
//! empty sections anywhere, non-minimal LEB128 sizes, and random trees of all of these.

mod support;

use cairn_split::{split, BlobId, BlobKind};
use proptest::prelude::*;
use support::*;
use wasm_encoder::{
    CodeSection, Component, CustomSection, ExportKind, ExportSection, Function, FunctionSection,
    Instruction, Module, ModuleSection, NestedComponentSection, TypeSection,
};

fn encoder_module(value: i32) -> Module {
    let mut types = TypeSection::new();
    types.ty().function([], [wasm_encoder::ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut exports = ExportSection::new();
    exports.export("answer", ExportKind::Func, 0);
    let mut code = CodeSection::new();
    let mut body = Function::new([]);
    body.instruction(&Instruction::I32Const(value));
    body.instruction(&Instruction::End);
    code.function(&body);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&exports)
        .section(&CustomSection {
            name: "note".into(),
            data: b"in a module".as_slice().into(),
        })
        .section(&code);
    module
}

/// A valid component `depth` levels deep: each level holds a module and the next level.
fn nested_encoder_component(depth: usize) -> Component {
    let mut component = Component::new();
    component.section(&CustomSection {
        name: "level".into(),
        data: vec![depth as u8].into(),
    });
    component.section(&ModuleSection(&encoder_module(depth as i32)));
    if depth > 0 {
        component.section(&NestedComponentSection(&nested_encoder_component(
            depth - 1,
        )));
    }
    component.section(&ModuleSection(&encoder_module(1000)));
    component
}

#[test]
fn valid_components_nested_several_levels_deep_round_trip() {
    for depth in 0..6 {
        let bytes = nested_encoder_component(depth).finish();
        wasmparser::Validator::new()
            .validate_all(&bytes)
            .expect("the generated component is valid");
        let split = assert_round_trip(&bytes);
        let skeletons = split
            .blobs()
            .iter()
            .filter(|b| b.kind == BlobKind::Skeleton)
            .count();
        assert_eq!(skeletons, depth + 1, "one skeleton per component level");
        // Modules 0..=depth plus the module repeated at every level, stored once.
        let modules = split
            .blobs()
            .iter()
            .filter(|b| b.kind == BlobKind::Module)
            .count();
        assert_eq!(modules, depth + 2);
    }
}

#[test]
fn the_same_module_anywhere_is_one_fragment_with_the_module_file_digest() {
    let m = small_module(7);
    let inner = component(&[module_section(&m)]);
    let outer = component(&[
        module_section(&m),
        component_section(&inner),
        module_section(&m),
        component_section(&inner),
    ]);
    let split = assert_round_trip(&outer);
    let module_blobs: Vec<_> = split
        .blobs()
        .iter()
        .filter(|b| b.kind == BlobKind::Module)
        .collect();
    assert_eq!(module_blobs.len(), 1);
    assert_eq!(module_blobs[0].digest, BlobId::of(&m));
    // The same nested component is one skeleton too.
    assert_eq!(split.blobs().len(), 3);
    // And the plain module splits to exactly that fragment.
    let alone = split_ok(&m);
    assert_eq!(alone.blobs().len(), 1);
    assert_eq!(alone.blobs()[0].digest, BlobId::of(&m));
}

fn split_ok(bytes: &[u8]) -> cairn_split::Split<'_> {
    split(bytes).expect("split")
}

#[test]
fn manifest_lists_blobs_in_join_order_each_once() {
    let (a, b, c) = (small_module(1), small_module(2), small_module(3));
    let inner = component(&[module_section(&b), module_section(&a)]);
    let outer = component(&[
        module_section(&a),
        component_section(&inner),
        module_section(&c),
    ]);
    let split = assert_round_trip(&outer);
    let inner_skeleton = split_ok(&inner).manifest().root().digest;
    let order: Vec<BlobId> = split.manifest().blobs().iter().map(|b| b.digest).collect();
    assert_eq!(
        order,
        vec![
            split.manifest().root().digest,
            BlobId::of(&a),
            inner_skeleton,
            BlobId::of(&b),
            BlobId::of(&c),
        ]
    );
}

#[test]
fn custom_sections_anywhere_stay_in_place() {
    let m = module(&[
        custom("first", b"before everything"),
        section(1, &[0x01, 0x60, 0x00, 0x00]),
        custom("middle", b""),
        section(3, &[0x01, 0x00]),
        section(10, &[0x01, 0x02, 0x00, 0x0b]),
        custom("name", &[0u8; 300]),
    ]);
    let outer = component(&[
        custom("component-first", b"x"),
        module_section(&m),
        custom("between", b"y"),
        module_section(&small_module(9)),
        custom("last", &[0xff; 1000]),
    ]);
    assert_round_trip(&m);
    assert_round_trip(&outer);
}

#[test]
fn non_minimal_leb128_section_sizes_are_kept_byte_for_byte() {
    let m = module(&[
        section_with_width(1, &[0x01, 0x60, 0x00, 0x00], 5),
        section_with_width(3, &[0x01, 0x00], 3),
        section_with_width(10, &[0x01, 0x02, 0x00, 0x0b], 2),
    ]);
    let inner = component(&[section_with_width(1, &m, 4)]);
    let outer = component(&[
        section_with_width(1, &m, 5),
        section_with_width(4, &inner, 5),
        section_with_width(0, &custom_payload("c", b"z"), 2),
        section_with_width(7, &[], 5),
    ]);
    let split = assert_round_trip(&outer);
    // Same module bytes, whatever the width of the size in front of them.
    assert_eq!(
        split
            .blobs()
            .iter()
            .filter(|b| b.kind == BlobKind::Module)
            .count(),
        1
    );
    // A different size encoding is a different binary, so a different tree.
    let minimal = component(&[module_section(&m), component_section(&inner)]);
    assert_ne!(split_ok(&minimal).tree_digest(), split.tree_digest());
}

#[test]
fn empty_sections_and_empty_binaries_round_trip() {
    assert_round_trip(&module(&[]));
    assert_round_trip(&component(&[]));
    assert_round_trip(&module(&[
        section(1, &[]),
        section(0, &custom_payload("", &[])),
    ]));
    assert_round_trip(&component(&[
        section(7, &[]),
        module_section(&module(&[])),
        component_section(&component(&[])),
        section(11, &[]),
    ]));
}

#[test]
fn the_tree_digest_never_equals_the_file_digest() {
    for bytes in [
        small_module(1),
        component(&[module_section(&small_module(1))]),
    ] {
        let split = split_ok(&bytes);
        assert_ne!(
            split.tree_digest().as_bytes(),
            BlobId::of(&bytes).as_bytes()
        );
    }
}

#[test]
fn a_one_byte_change_anywhere_changes_the_tree_digest() {
    let inner = component(&[module_section(&small_module(4)), custom("c", b"abc")]);
    let outer = component(&[module_section(&small_module(5)), component_section(&inner)]);
    let original = split_ok(&outer).tree_digest();
    // Flip the last payload byte of every section-free position that keeps the binary
    // well framed: the custom section's data and the constants of the module bodies.
    let mut changed = 0;
    for i in 0..outer.len() {
        let mut copy = outer.clone();
        copy[i] ^= 0x01;
        if let Ok(split) = split(&copy) {
            assert_ne!(
                split.tree_digest(),
                original,
                "flipping byte {i} kept the tree digest"
            );
            changed += 1;
        }
    }
    assert!(
        changed > outer.len() / 4,
        "too few changes kept the framing ({changed})"
    );
}

/// A random binary tree: what the property test below builds.
#[derive(Debug, Clone)]
enum Item {
    /// Any non-nesting section: custom, type, import, ... with arbitrary bytes.
    Opaque {
        id: u8,
        payload: Vec<u8>,
        width: usize,
    },
    Module {
        sections: Vec<(u8, Vec<u8>, usize)>,
        width: usize,
    },
    Component {
        items: Vec<Item>,
        width: usize,
    },
}

fn encode_items(items: &[Item]) -> Vec<u8> {
    let sections: Vec<Vec<u8>> = items
        .iter()
        .map(|item| match item {
            Item::Opaque { id, payload, width } => section_with_width(*id, payload, *width),
            Item::Module { sections, width } => {
                let m = module(
                    &sections
                        .iter()
                        .map(|(id, payload, w)| section_with_width(*id, payload, *w))
                        .collect::<Vec<_>>(),
                );
                section_with_width(1, &m, *width)
            }
            Item::Component { items, width } => section_with_width(4, &encode_items(items), *width),
        })
        .collect();
    component(&sections)
}

fn item_strategy() -> impl Strategy<Value = Item> {
    let width = 1usize..=5;
    let opaque_id = prop_oneof![Just(0u8), 2u8..=3, 5u8..=12];
    let leaf = prop_oneof![
        (
            opaque_id,
            prop::collection::vec(any::<u8>(), 0..40),
            width.clone()
        )
            .prop_map(|(id, payload, width)| Item::Opaque { id, payload, width }),
        (
            prop::collection::vec(
                (
                    0u8..=12,
                    prop::collection::vec(any::<u8>(), 0..30),
                    1usize..=5
                ),
                0..5
            ),
            width.clone()
        )
            .prop_map(|(sections, width)| Item::Module { sections, width }),
        // A small pool of fixed modules so that repeats happen often.
        (0u8..3, width.clone()).prop_map(|(n, width)| Item::Module {
            sections: vec![(10, vec![n], 1)],
            width
        }),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        (prop::collection::vec(inner, 0..6), 1usize..=5)
            .prop_map(|(items, width)| Item::Component { items, width })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_trees_round_trip(items in prop::collection::vec(item_strategy(), 0..8)) {
        let bytes = encode_items(&items);
        let split = assert_round_trip(&bytes);
        // Every distinct module digest is listed once.
        let mut digests: Vec<_> = split.blobs().iter().map(|b| b.digest).collect();
        digests.sort();
        digests.dedup();
        prop_assert_eq!(digests.len(), split.blobs().len());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = split(&bytes);
        let _ = cairn_split::skeleton::Skeleton::decode(&bytes);
        let _ = cairn_split::Manifest::from_json(&bytes);
    }
}
