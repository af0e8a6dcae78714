//! AES-128-CBC decryption with the `openssl` CLI: the judge of encrypted segments, sharing
//! no code with the `aes` and `cbc` crates that stream-pack encrypts with.

use super::ffprobe;
use std::path::Path;
use std::process::Command;

/// An AES-128 key.
pub type Key = [u8; 16];

/// 16 bytes (a key, an IV) as 32 lower-case hex digits.
pub fn hex(bytes: u128) -> String {
    format!("{bytes:032x}")
}

/// 32 hex digits (either case) as 16 bytes.
pub fn from_hex(digits: &str) -> Option<u128> {
    let valid = digits.len() == 32 && digits.bytes().all(|byte| byte.is_ascii_hexdigit());
    valid.then(|| u128::from_str_radix(digits, 16).expect("32 hex digits"))
}

/// A key file: exactly 16 raw bytes (RFC 8216 §5.2).
pub fn read_key(path: &Path) -> Key {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("key file {}: {error}", path.display()));
    bytes.as_slice().try_into().unwrap_or_else(|_| {
        panic!(
            "key file {} holds {} bytes, not 16 raw bytes",
            path.display(),
            bytes.len()
        )
    })
}

/// Decrypts `input` into `output` with `openssl enc -d -aes-128-cbc`: CBC from `iv`, PKCS#7
/// padding checked. A failure (a wrong key shows as `bad decrypt`) returns openssl's stderr.
pub fn decrypt(key: &Key, iv: u128, input: &Path, output: &Path) -> Result<(), String> {
    let result = Command::new("openssl")
        .args(["enc", "-d", "-aes-128-cbc", "-K", &hex(u128::from_be_bytes(*key))])
        .args(["-iv", &hex(iv), "-in"])
        .arg(input)
        .arg("-out")
        .arg(output)
        .output()
        .expect("run openssl (is it installed?)");
    if result.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&result.stderr).into_owned())
    }
}

/// Whether an MPEG-TS `segment`, decrypted with `key` and `iv`, is MPEG-TS again: openssl
/// accepts its padding, and ffprobe reads the result as MPEG-TS with packets in it.
pub fn decrypts_to_ts(key: &Key, iv: u128, segment: &Path) -> bool {
    let scratch = tempfile::tempdir().expect("create a temporary folder");
    let clear = scratch.path().join("clear");
    decrypt(key, iv, segment, &clear).is_ok()
        && ffprobe::try_probe(&["-show_format", "-show_packets"], &clear).is_ok_and(|json| {
            let packets = json["packets"].as_array().is_some_and(|packets| !packets.is_empty());
            json["format"]["format_name"] == "mpegts" && packets
        })
}
