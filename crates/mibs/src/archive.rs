//! MIB uploads that are zip archives: their entries, read with limits, so
//! that an archive cannot expand past what a MIB set needs (a zip bomb is
//! refused whole, and nothing of it is compiled).

use std::io::{Cursor, Read};

/// The most entries an archive may hold.
pub const MAX_ENTRIES: usize = 5_000;
/// The most bytes its entries may expand to, together.
pub const MAX_EXPANDED: u64 = 64 * 1024 * 1024;
/// The most an entry (or the whole archive) may expand, as a multiple of
/// its compressed size: text compresses about 5 to 10 times, a bomb
/// thousands of times.
pub const MAX_RATIO: u64 = 100;

/// Whether these bytes are a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// The archive's files (directories left out), each as its name and bytes,
/// or why the archive is refused.
pub fn entries(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive: {e}"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!(
            "the archive holds {} entries; at most {MAX_ENTRIES} are taken",
            archive.len()
        ));
    }
    let mut total: u64 = 0;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("entry {i} cannot be read: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map(|n| n.rsplit('/').next().unwrap_or("").to_owned())
            .unwrap_or_else(|_| format!("entry-{i}"));
        let compressed = entry.compressed_size().max(1);
        // The sizes the archive states are not trusted: reading stops at
        // what the limits leave, whatever the header says.
        let room = (MAX_EXPANDED - total).min(compressed.saturating_mul(MAX_RATIO));
        let mut data = Vec::new();
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("entry {name} cannot be read: {e}"))?;
        let size = data.len() as u64;
        if size > room {
            return Err(if total + size > MAX_EXPANDED {
                format!("the archive expands past {MAX_EXPANDED} bytes")
            } else {
                format!("entry {name} expands more than {MAX_RATIO} times its compressed size")
            });
        }
        total += size;
        out.push((name, data));
    }
    if total > (bytes.len() as u64).saturating_mul(MAX_RATIO) {
        return Err(format!(
            "the archive expands more than {MAX_RATIO} times its size"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            out.start_file(*name, options).unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn an_archive_gives_its_files_and_a_bomb_is_refused() {
        let archive = zip_of(&[
            ("mibs/A-MIB.txt", b"A-MIB DEFINITIONS ::= BEGIN END"),
            ("README", b"hi"),
        ]);
        assert!(is_zip(&archive));
        let files = entries(&archive).unwrap();
        assert_eq!(
            files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["A-MIB.txt", "README"]
        );
        assert_eq!(files[1].1, b"hi");

        // 50 MB of zeros compresses about a thousand times.
        let bomb = zip_of(&[("zeros.txt", &vec![0u8; 50 * 1024 * 1024])]);
        assert!(bomb.len() < 1024 * 1024);
        let err = entries(&bomb).unwrap_err();
        assert!(err.contains("expands more than 100 times"), "{err}");

        assert!(entries(b"PK\x03\x04 not really").is_err());
    }
}
