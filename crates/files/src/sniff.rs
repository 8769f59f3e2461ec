//! The content type of a file, from its first bytes (what it is, not what
//! its name or the client says).

/// How many leading bytes [`content_type`] looks at.
pub const SNIFF_LEN: usize = 512;

/// The content type the first bytes of a file show.
pub fn content_type(head: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"PK\x03\x04", "application/zip"),
        (b"PK\x05\x06", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"\x7fELF", "application/x-executable"),
    ];
    if let Some((_, kind)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return kind;
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    if text.contains(&0) || !utf8_prefix(text) {
        return "application/octet-stream";
    }
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &text[i..]);
    if start.starts_with(b"<?xml") || start.starts_with(b"<") {
        "application/xml"
    } else if start.starts_with(b"{") || start.starts_with(b"[") {
        "application/json"
    } else {
        "text/plain"
    }
}

/// Whether `bytes` is UTF-8, allowing a character cut off at the end (the
/// head of a file ends anywhere).
fn utf8_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4,
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn files_are_known_by_their_first_bytes() {
        assert_eq!(content_type(b"PK\x03\x04rest"), "application/zip");
        assert_eq!(content_type(b"\x1f\x8b\x08"), "application/gzip");
        assert_eq!(content_type(b"\x7fELF\x02\x01"), "application/x-executable");
        assert_eq!(content_type(b"IF-MIB DEFINITIONS ::= BEGIN"), "text/plain");
        assert_eq!(
            content_type(b"\xef\xbb\xbf  <?xml version=\"1.0\"?>"),
            "application/xml"
        );
        assert_eq!(content_type(b"{\"a\": 1}"), "application/json");
        assert_eq!(
            content_type(b"text\0with a nul"),
            "application/octet-stream"
        );
        assert_eq!(content_type(b"\xff\xfe\xfa"), "application/octet-stream");
        // A multi-byte character cut off by the end of the head is text.
        assert_eq!(content_type("grüß".as_bytes()[..4].as_ref()), "text/plain");
        assert_eq!(content_type(b""), "text/plain");
    }
}
