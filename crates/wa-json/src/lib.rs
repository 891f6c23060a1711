//! JSON strings written by hand: the log lines and the REST bodies that skip
//! serde on the hot path. The output is byte-equal to `serde_json`'s for the
//! same string (the short forms `\b \f \n \r \t`, `\u00XX` for the other
//! control characters, everything from space up as it is but `"` and `\`).
//!
//! Plain text is skipped eight bytes at a time: most of what is written is
//! keys and ids with nothing to escape.

use std::convert::Infallible;
use std::fmt;

/// Writes `value` as a quoted JSON string, handing each piece to `emit`:
/// runs of `value` itself and escape sequences, in order. Every byte that
/// needs escaping is ASCII, so no piece splits a character.
pub fn quoted<E>(value: &str, mut emit: impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    emit("\"")?;
    let bytes = value.as_bytes();
    let (mut plain, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes[i..].first_chunk::<8>() {
            if !any_byte_needs_escape(u64::from_le_bytes(*word)) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        i += 1;
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            byte if byte < 0x20 => "",
            _ => continue,
        };
        emit(&value[plain..i - 1])?;
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let long = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
            // Six ASCII bytes.
            emit(std::str::from_utf8(&long).unwrap_or_default())?;
        } else {
            emit(short)?;
        }
        plain = i;
    }
    emit(&value[plain..])?;
    emit("\"")
}

/// `value` as a quoted JSON string, appended to `out`.
pub fn push_quoted(out: &mut Vec<u8>, value: &str) {
    let Ok(()) = quoted(value, |piece| {
        out.extend_from_slice(piece.as_bytes());
        Ok::<(), Infallible>(())
    });
}

/// `value` as a quoted JSON string, written to `out`.
pub fn write_quoted(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    quoted(value, |piece| out.write_str(piece))
}

/// Whether any of the eight bytes of `word` is a control character, `"` or
/// `\` (exact, with no false positives: the classic "has a byte below n" and
/// "has a zero byte" word tricks).
fn any_byte_needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    below_space || has_zero(word ^ (ONES * u64::from(b'"'))) || has_zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ASCII byte at every offset of two words and a tail, and text
    /// beyond ASCII: exactly what serde_json writes, through either sink.
    #[test]
    fn each_byte_is_escaped_as_serde_does_wherever_it_falls() {
        let mut cases: Vec<String> =
            ["", "é", "日本語のテキストです", "🦀🦀🦀 \" \u{7f}\u{80}ÿ", "x\u{1f}\u{20}", "\u{2028}\u{feff}"]
                .map(str::to_owned)
                .into();
        for byte in 0u8..=0x7f {
            for at in 0..17 {
                let mut text = "abcdefghijklmnopq".to_owned();
                text.replace_range(at..at + 1, char::from(byte).encode_utf8(&mut [0; 4]));
                cases.push(text);
            }
        }
        for text in cases {
            let serde = serde_json::to_string(&text).unwrap();
            let mut bytes = Vec::new();
            push_quoted(&mut bytes, &text);
            assert_eq!(String::from_utf8(bytes).unwrap(), serde, "{text:?} into bytes");
            let mut string = String::new();
            write_quoted(&mut string, &text).unwrap();
            assert_eq!(string, serde, "{text:?} into a fmt::Write");
        }
    }

    #[test]
    fn the_word_test_is_exact_for_every_byte_in_every_lane() {
        for byte in 0u8..=0xff {
            let needs = byte < 0x20 || byte == b'"' || byte == b'\\';
            for lane in 0..8 {
                let mut word = [b'a'; 8];
                word[lane] = byte;
                assert_eq!(any_byte_needs_escape(u64::from_le_bytes(word)), needs, "byte {byte:#04x} in lane {lane}");
            }
        }
    }
}
