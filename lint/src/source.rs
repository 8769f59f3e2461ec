//! Rust source reduced to what module references are made of: comments,
//! string and character literals blanked out, `#[cfg(test)]` items removed.

/// `text` with comments and the contents of string and character literals
/// replaced by spaces (newlines kept, so line numbers still hold).
pub fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, b: u8| out.push(if b == b'\n' { b'\n' } else { b' ' });
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        if b == b'/' && next == Some(b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b == b'/' && next == Some(b'*') {
            let mut depth = 0usize;
            while i < bytes.len() {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(bytes, i) {
            // r"..." or r#"..."#, possibly b- or c-prefixed.
            let open = bytes[i..].iter().position(|&c| c == b'"').unwrap_or(0) + i;
            out.extend(std::iter::repeat_n(b' ', open + 1 - i));
            i = open + 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while i < bytes.len() && !bytes[i..].starts_with(&close) {
                blank(&mut out, bytes[i]);
                i += 1;
            }
            out.extend(std::iter::repeat_n(b' ', close.len().min(bytes.len() - i)));
            i += close.len();
        } else if b == b'"' {
            out.push(b' ');
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
                blank(&mut out, bytes[i]);
                i += 1;
            }
            out.push(b' ');
            i += 1;
        } else if b == b'\'' && is_char_literal(bytes, i) {
            out.push(b' ');
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                if bytes[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                out.push(b' ');
                i += 1;
            }
            out.push(b' ');
            i += 1;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out.truncate(text.len());
    String::from_utf8_lossy(&out).into_owned()
}

/// The number of `#`s if a raw string literal starts at `i`.
fn raw_string_start(bytes: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if matches!(bytes.get(j), Some(b'b' | b'c')) {
        j += 1;
    }
    if bytes.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = bytes[j..].iter().take_while(|&&c| c == b'#').count();
    (bytes.get(j + hashes) == Some(&b'"')).then_some(hashes)
}

/// A `'` that opens a character literal, not a lifetime or label.
fn is_char_literal(bytes: &[u8], i: usize) -> bool {
    match bytes.get(i + 1) {
        Some(b'\\') => true,
        Some(_) => {
            // 'x' (one character, maybe several UTF-8 bytes) closes within 5 bytes.
            let len = bytes[i + 1..]
                .iter()
                .skip(1)
                .take(4)
                .position(|&c| c == b'\'');
            len.is_some_and(|n| {
                let inner = &bytes[i + 1..i + 2 + n];
                std::str::from_utf8(inner).is_ok_and(|s| s.chars().count() == 1)
            })
        }
        None => false,
    }
}

/// `code` without the items marked `#[cfg(test)]` (unit tests may reach
/// anywhere in their crate). Expects [`code_only`]'s output.
pub fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at its block's closing brace, or at a `;` before any
        // brace (`#[cfg(test)] mod tests;`, `#[cfg(test)] use ...;`).
        let brace = after.find('{');
        let semi = after.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(open), _) => matching_brace(after, open).map_or(after.len(), |c| c + 1),
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        // Keep the line count.
        out.extend(after[..end].chars().filter(|&c| c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The index of the `}` that closes the `{` at `open`.
pub fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_strings_and_chars_are_blanked() {
        let code = code_only(
            "use a::b; // crate::x\n/* crate::y /* nested */ */ let s = \"crate::z\"; \
             let r = r#\"crate::w\"#; let c = '\"'; fn f<'a>(x: &'a str) {}",
        );
        assert!(!code.contains("crate::"), "{code}");
        assert!(code.contains("use a::b;"));
        assert!(code.contains("fn f<'a>(x: &'a str) {}"), "{code}");
        assert_eq!(code.lines().count(), 2);
    }

    #[test]
    fn test_items_are_removed() {
        let code =
            "fn a() {}\n#[cfg(test)]\nmod tests {\n use super::*;\n fn t() { {} }\n}\nfn b() {}";
        let kept = without_test_items(code);
        assert!(kept.contains("fn a() {}") && kept.contains("fn b() {}"));
        assert!(!kept.contains("super"));
        assert_eq!(kept.lines().count(), code.lines().count());
        assert_eq!(
            without_test_items("#[cfg(test)] mod tests;\nfn c() {}"),
            "\nfn c() {}"
        );
    }
}
