//! The one gate for text from outside (the input's metadata, a converted manifest, `--key-url`,
//! key-info files, file names) on its way into a playlist or MPD. An HLS quoted-string may not
//! hold `"`, CR or LF (RFC 8216 §4.2), a URI line or attribute must stay one URI: languages are
//! checked against the BCP 47 syntax and dropped when they fail it, URIs are percent-encoded.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What a URI may not hold as it is (RFC 3986 §2, and `"`, which would end the quoted-string):
/// controls (CR and LF among them), space and the characters outside every URI production.
/// `%`, `#` and `?` stay: a URL given by the user may already be encoded, or carry a query.
const NOT_IN_URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// What one path segment made from a file name may not hold as it is: also the characters that
/// would end or reinterpret the segment.
const NOT_IN_SEGMENT: &AsciiSet = &NOT_IN_URI.add(b'%').add(b'#').add(b'?').add(b'/').add(b':');

/// A URI or URL from outside (`--key-url`, a key-info file), percent-encoded where it holds what
/// a URI cannot.
pub fn uri(text: &str) -> String {
    utf8_percent_encode(text, NOT_IN_URI).to_string()
}

/// A file or folder name as one segment of a URI path.
pub fn path_segment(name: &str) -> String {
    utf8_percent_encode(name, NOT_IN_SEGMENT).to_string()
}

/// Text from outside (a title, a name given on the command line) as an HLS quoted-string: `"`
/// becomes `'` and every control character a space, so it can neither end the string nor the line.
pub fn quoted_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// `name`, or `name (2)`, `name (3)`… whichever is not `taken`: renditions of a group may not share
/// a NAME (RFC 8216 §4.4.6.1).
pub fn unique_name(name: &str, taken: &[String]) -> String {
    (1..)
        .map(|n| match n {
            1 => name.to_owned(),
            n => format!("{name} ({n})"),
        })
        .find(|candidate| !taken.contains(candidate))
        .expect("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_quoted_string_and_unique() {
        assert_eq!(quoted_text("Ja \"forced\"\r\n#EXT"), "Ja 'forced'  #EXT");
        let taken = vec!["en".to_owned(), "en (2)".to_owned()];
        assert_eq!(unique_name("en", &taken), "en (3)");
        assert_eq!(unique_name("ja", &taken), "ja");
    }

    #[test]
    fn uris_never_end_a_quoted_string_or_a_line() {
        assert_eq!(
            uri("https://k.example/a b\"c\r\n/?x=1#f%20"),
            "https://k.example/a%20b%22c%0D%0A/?x=1#f%20"
        );
        assert_eq!(path_segment("show #1?%\"é.key"), "show%20%231%3F%25%22%C3%A9.key");
        assert_eq!(path_segment("out-00000.key"), "out-00000.key");
    }
}
