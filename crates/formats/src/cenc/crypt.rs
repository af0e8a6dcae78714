//! The two ciphers of common encryption applied to one sample's protected bytes.

use aes::Aes128;
use aes::cipher::consts::U16;
use aes::cipher::{BlockModeEncrypt, InnerIvInit, KeyInit, KeyIvInit, StreamCipher, array::Array};

/// ISO/IEC 23001-7 §10.1: of the 16-byte counter block, the last 8 bytes are the block counter.
type Ctr = ctr::Ctr64BE<Aes128>;

/// One subsample: clear bytes, then protected bytes (ISO/IEC 23001-7 §7.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subsample {
    pub clear: u16,
    pub protected: u32,
}

/// AES-CTR over the protected bytes of a sample, one keystream from `iv` continued across its
/// subsamples (§10.1). No subsamples: the whole sample. Returns the number of 16-byte counter
/// blocks used, partial ones included.
pub(crate) fn ctr_sample(key: &[u8; 16], iv: &[u8; 16], sample: &mut [u8], subsamples: &[Subsample]) -> u64 {
    let mut cipher = Ctr::new(&Array(*key), &Array(*iv));
    let mut protected_total = 0u64;
    for range in protected_ranges(sample.len(), subsamples) {
        cipher.apply_keystream(&mut sample[range.clone()]);
        protected_total += range.len() as u64;
    }
    protected_total.div_ceil(16)
}

/// AES-CBC with `iv` restarted for every subsample, over `crypt` blocks then `skip` blocks
/// clear, repeated (`skip` 0: every block); a trailing partial block stays clear (§10.4).
/// No subsamples: the whole sample.
pub(crate) fn cbcs_sample(
    cipher: &Aes128,
    iv: &[u8; 16],
    sample: &mut [u8],
    subsamples: &[Subsample],
    (crypt, skip): (usize, usize),
) {
    for range in protected_ranges(sample.len(), subsamples) {
        cbc_pattern(cipher, iv, &mut sample[range], crypt, skip);
    }
}

pub(crate) fn block_cipher(key: &[u8; 16]) -> Aes128 {
    Aes128::new(&Array(*key))
}

pub(crate) fn cbc_pattern(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8], crypt: usize, skip: usize) {
    let whole = data.len() / 16 * 16;
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut data[..whole]);
    // The encrypted blocks form one CBC chain; the skipped ones stay out of it.
    let mut chain = cbc::Encryptor::<Aes128>::inner_iv_init(cipher.clone(), &Array(*iv));
    if skip == 0 {
        chain.encrypt_blocks(blocks);
        return;
    }
    for period in blocks.chunks_mut(crypt + skip) {
        let encrypted = crypt.min(period.len());
        chain.encrypt_blocks(&mut period[..encrypted]);
    }
}

/// The byte ranges the subsamples protect, or the whole sample when there are none. The caller
/// has checked that the subsamples add up to the sample's size.
fn protected_ranges(len: usize, subsamples: &[Subsample]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let whole = subsamples.is_empty().then_some(0..len);
    let mut at = 0;
    whole.into_iter().chain(subsamples.iter().map(move |sub| {
        let start = at + usize::from(sub.clear);
        at = start + sub.protected as usize;
        start..at
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cenc::hex;

    const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

    #[test]
    fn ctr_matches_nist_sp_800_38a_f5_1_across_subsamples() {
        let key: [u8; 16] = hex(KEY).try_into().unwrap();
        let iv: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
        let expected = hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
             5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
        let mut whole = hex(PLAIN);
        assert_eq!(ctr_sample(&key, &iv, &mut whole, &[]), 4);
        assert_eq!(whole, expected);
        // The same keystream runs on across clear bytes: 5 clear, 20 protected, 3 clear, 44
        // protected; the protected bytes are the vector's ciphertext in order.
        let mut sample = vec![0xaa; 5];
        sample.extend_from_slice(&hex(PLAIN)[..20]);
        sample.extend_from_slice(&[0xbb; 3]);
        sample.extend_from_slice(&hex(PLAIN)[20..]);
        let subsamples = [
            Subsample {
                clear: 5,
                protected: 20,
            },
            Subsample {
                clear: 3,
                protected: 44,
            },
        ];
        assert_eq!(ctr_sample(&key, &iv, &mut sample, &subsamples), 4);
        assert_eq!(&sample[..5], &[0xaa; 5]);
        assert_eq!(&sample[5..25], &expected[..20]);
        assert_eq!(&sample[25..28], &[0xbb; 3]);
        assert_eq!(&sample[28..], &expected[20..]);
    }

    #[test]
    fn cbc_without_pattern_matches_nist_sp_800_38a_f2_1_and_leaves_the_tail_clear() {
        let key: [u8; 16] = hex(KEY).try_into().unwrap();
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let mut sample = hex(PLAIN);
        sample.extend_from_slice(&[1, 2, 3, 4, 5]);
        cbcs_sample(&block_cipher(&key), &iv, &mut sample, &[], (0, 0));
        let expected = hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
             73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
        assert_eq!(&sample[..64], &expected[..]);
        assert_eq!(&sample[64..], &[1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_1_9_pattern_chains_the_encrypted_blocks_only_and_restarts_per_subsample() {
        let key: [u8; 16] = hex(KEY).try_into().unwrap();
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let plain = hex(PLAIN);
        // 21 blocks: blocks 0, 10 and 20 are encrypted, chained as one CBC run over F.2.1's
        // first three plaintext blocks; the rest are clear.
        let mut data = vec![0x55; 21 * 16 + 7];
        for (n, block) in [0, 10, 20].iter().enumerate() {
            data[block * 16..block * 16 + 16].copy_from_slice(&plain[n * 16..n * 16 + 16]);
        }
        let before = data.clone();
        let mut sample = [vec![9; 3], data.clone(), vec![9; 2], data].concat();
        let len = before.len() as u32;
        let subsamples = [
            Subsample {
                clear: 3,
                protected: len,
            },
            Subsample {
                clear: 2,
                protected: len,
            },
        ];
        cbcs_sample(&block_cipher(&key), &iv, &mut sample, &subsamples, (1, 9));
        let expected = hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
             73bed6b8e3c1743b7116e69e22229516");
        for start in [3, 3 + before.len() + 2] {
            let data = &sample[start..start + before.len()];
            for block in 0..21 {
                let range = block * 16..block * 16 + 16;
                match [0, 10, 20].iter().position(|b| *b == block) {
                    Some(n) => assert_eq!(&data[range], &expected[n * 16..n * 16 + 16]),
                    None => assert_eq!(&data[range.clone()], &before[range]),
                }
            }
            assert_eq!(&data[21 * 16..], &before[21 * 16..]);
        }
    }
}
