//! Any bytes: the split never panics, and whatever it accepts joins back byte for byte.
//! The same bytes read as a skeleton or a manifest never panic either.
//!
//! Inputs starting with 0x00 are used as they are; any other first byte selects a
//! component or module preamble to put in front of the rest, so the fuzzer spends its time
//! past the preamble.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input: Vec<u8> = match data.first() {
        None | Some(0x00) => data.to_vec(),
        Some(&selector) => {
            let preamble: &[u8] = if selector & 1 == 0 {
                b"\0asm\x0d\0\x01\0"
            } else {
                b"\0asm\x01\0\0\0"
            };
            [preamble, &data[1..]].concat()
        }
    };
    let _ = cairn_split::skeleton::Skeleton::decode(data);
    let _ = cairn_split::Manifest::from_json(data);
    if let Ok(split) = cairn_split::split(&input) {
        let mut joined = Vec::with_capacity(input.len());
        let mut source = split.clone();
        cairn_split::join(split.manifest(), &mut source, &mut joined).expect("join of a split");
        assert_eq!(joined, input, "join(split(x)) != x");
        // A second split gives the same manifest.
        assert_eq!(cairn_split::split(&input).unwrap().manifest(), split.manifest());
    }
});
