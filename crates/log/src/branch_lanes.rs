//! Several independent branch hashes computed at once, for the map's batched updates.
//!
//! One SHA-256 compression is a chain of dependent rounds, so a single hash leaves most of the
//! CPU's SHA unit idle; interleaving the rounds of four independent messages fills it and
//! computes four branch hashes in about the time of 1.6. On x86-64 CPUs with the SHA extensions
//! this module does that with intrinsics; everywhere else it falls back to one hash at a time.
//! Results are always identical to [`branch_hash`]: this module may only change speed.
//! It is the crate's one module with unsafe code (the intrinsics).
#![allow(unsafe_code)]

use crate::hash::{branch_hash, Hash};

/// `branch_hash(left, right)` for each pair.
pub(crate) fn branch_hashes<const LANES: usize>(pairs: [(&Hash, &Hash); LANES]) -> [Hash; LANES] {
    #[cfg(target_arch = "x86_64")]
    {
        if sha_ni::is_available() {
            // SAFETY: the CPU supports the features the kernel is compiled for.
            return unsafe { sha_ni::branch_hashes(pairs) };
        }
    }
    pairs.map(|(left, right)| branch_hash(left, right))
}

#[cfg(target_arch = "x86_64")]
mod sha_ni {
    //! The SHA-256 compression function with the x86 SHA extensions (SHA-NI), for `LANES`
    //! independent messages whose instructions are interleaved. The state is kept in the
    //! (ABEF, CDGH) register layout the `sha256rnds2` instruction works on.

    use std::arch::x86_64::*;

    use crate::hash::{Hash, HASH_LEN};

    pub(super) fn is_available() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    }

    /// SHA-256 round constants (FIPS 180-4 section 4.2.2).
    const ROUND_CONSTANTS: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// SHA-256 initial hash value (FIPS 180-4 section 5.3.3).
    const INITIAL_STATE: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    const BLOCK_LEN: usize = 64;

    /// The two state registers: (A, B, E, F) and (C, D, G, H).
    type State = [__m128i; 2];

    /// Byte shuffle that turns each little-endian 32-bit lane big-endian.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn byte_swap_words() -> __m128i {
        _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203)
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn initial_state() -> State {
        // SAFETY: INITIAL_STATE holds 8 words; each load reads 4 of them.
        let (dcba, hgfe) = unsafe {
            (
                _mm_loadu_si128(INITIAL_STATE.as_ptr().cast()),
                _mm_loadu_si128(INITIAL_STATE.as_ptr().add(4).cast()),
            )
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        [
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        ]
    }

    /// The digest bytes of a final state.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn digest(state: State) -> Hash {
        let feba = _mm_shuffle_epi32(state[0], 0x1B);
        let dchg = _mm_shuffle_epi32(state[1], 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgfe = _mm_alignr_epi8(dchg, feba, 8);
        let swap = byte_swap_words();
        let mut bytes = [0u8; HASH_LEN];
        // SAFETY: `bytes` has room for two 16-byte stores.
        unsafe {
            _mm_storeu_si128(bytes.as_mut_ptr().cast(), _mm_shuffle_epi8(dcba, swap));
            _mm_storeu_si128(
                bytes.as_mut_ptr().add(16).cast(),
                _mm_shuffle_epi8(hgfe, swap),
            );
        }
        Hash::from_bytes(bytes)
    }

    /// One compression per lane, the lanes' instructions interleaved.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress<const LANES: usize>(
        states: &mut [State; LANES],
        blocks: &[[u8; BLOCK_LEN]; LANES],
    ) {
        let swap = byte_swap_words();
        let saved = *states;
        // The message schedule, four words per register, in a ring of four registers.
        let mut schedule = [[_mm_setzero_si128(); 4]; LANES];
        for group in 0..16 {
            let slot = group % 4;
            // SAFETY: group < 16, so the 16-byte read of four constants stays in the array.
            let constants =
                unsafe { _mm_loadu_si128(ROUND_CONSTANTS.as_ptr().add(4 * group).cast()) };
            for lane in 0..LANES {
                let words = &mut schedule[lane];
                words[slot] = if group < 4 {
                    // SAFETY: group < 4, so the 16-byte read stays in the 64-byte block.
                    let raw =
                        unsafe { _mm_loadu_si128(blocks[lane].as_ptr().add(16 * group).cast()) };
                    _mm_shuffle_epi8(raw, swap)
                } else {
                    // W[t] = σ1(W[t−2]) + W[t−7] + σ0(W[t−15]) + W[t−16], four words at a time.
                    let oldest = _mm_sha256msg1_epu32(words[slot], words[(group + 1) % 4]);
                    let w_minus_7 =
                        _mm_alignr_epi8(words[(group + 3) % 4], words[(group + 2) % 4], 4);
                    _mm_sha256msg2_epu32(_mm_add_epi32(oldest, w_minus_7), words[(group + 3) % 4])
                };
                let words_plus_constants = _mm_add_epi32(words[slot], constants);
                let state = &mut states[lane];
                state[1] = _mm_sha256rnds2_epu32(state[1], state[0], words_plus_constants);
                state[0] = _mm_sha256rnds2_epu32(
                    state[0],
                    state[1],
                    _mm_shuffle_epi32(words_plus_constants, 0x0E),
                );
            }
        }
        for lane in 0..LANES {
            states[lane][0] = _mm_add_epi32(states[lane][0], saved[lane][0]);
            states[lane][1] = _mm_add_epi32(states[lane][1], saved[lane][1]);
        }
    }

    /// `SHA256(0x01 ‖ left ‖ right)` for each pair: 65 bytes, so two blocks each.
    ///
    /// # Safety
    /// The CPU must support SHA, SSE2, SSSE3 and SSE4.1 ([`is_available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn branch_hashes<const LANES: usize>(
        pairs: [(&Hash, &Hash); LANES],
    ) -> [Hash; LANES] {
        let mut first_blocks = [[0u8; BLOCK_LEN]; LANES];
        let mut second_blocks = [[0u8; BLOCK_LEN]; LANES];
        for (lane, (left, right)) in pairs.iter().enumerate() {
            let (left, right) = (left.as_bytes(), right.as_bytes());
            let first = &mut first_blocks[lane];
            first[0] = 0x01;
            first[1..33].copy_from_slice(left);
            first[33..].copy_from_slice(&right[..31]);
            // The last byte of `right`, the 0x80 end marker, zeros, and the bit length 520.
            let second = &mut second_blocks[lane];
            second[0] = right[31];
            second[1] = 0x80;
            second[BLOCK_LEN - 2..].copy_from_slice(&520u16.to_be_bytes());
        }
        let mut states = [unsafe { initial_state() }; LANES];
        unsafe {
            compress(&mut states, &first_blocks);
            compress(&mut states, &second_blocks);
        }
        states.map(|state| unsafe { digest(state) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_hash(seed: u8) -> Hash {
        Hash::sha256(&[seed])
    }

    #[test]
    fn lanes_give_the_same_hashes_as_one_at_a_time() {
        let inputs: Vec<Hash> = (0..8).map(sample_hash).collect();
        let pairs: [(&Hash, &Hash); 4] =
            std::array::from_fn(|lane| (&inputs[2 * lane], &inputs[2 * lane + 1]));
        let expected = pairs.map(|(left, right)| branch_hash(left, right));
        assert_eq!(branch_hashes(pairs), expected);
        assert_eq!(
            branch_hashes([pairs[3], pairs[0]]),
            [expected[3], expected[0]]
        );
        assert_eq!(branch_hashes([pairs[2]]), [expected[2]]);
    }

    #[test]
    fn every_byte_position_of_both_inputs_reaches_the_hash() {
        let zero = Hash::default();
        for position in 0..32 {
            let mut bytes = [0u8; 32];
            bytes[position] = 0xA5;
            let marked = Hash::from_bytes(bytes);
            assert_eq!(
                branch_hashes([(&marked, &zero), (&zero, &marked)]),
                [branch_hash(&marked, &zero), branch_hash(&zero, &marked)]
            );
        }
    }
}
