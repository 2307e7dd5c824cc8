//! Append-only JSON-lines files (the audit log, feedback): one record per line, each append synced
//! before it counts. A line left half-written — by a crash, or by a write that failed part way (disk
//! full) — is cut off, so the next record always starts on a line of its own and readers never meet
//! a corrupt line in the middle.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
};

/// Appends `line` (a newline is added) and syncs it; on any failure the file is cut back to where it
/// was, so nothing partial stays behind. The file must be open for appending.
pub fn append_line(file: &mut File, line: &str) -> std::io::Result<()> {
    let before = file.metadata()?.len();
    let written =
        file.write_all(line.as_bytes()).and_then(|()| file.write_all(b"\n")).and_then(|()| file.sync_data());
    if let Err(err) = written {
        // Best effort: if even the truncation fails, the next open's `drop_torn_tail` cuts it.
        let _ = file.set_len(before).and_then(|()| file.sync_data());
        return Err(err);
    }
    Ok(())
}

/// Cuts a last line without its newline (a crash mid-append). The file must be open for reading.
pub fn drop_torn_tail(file: &File) -> std::io::Result<()> {
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    let mut reader = file;
    let mut bytes = Vec::new();
    reader.seek(SeekFrom::Start(0))?;
    reader.read_to_end(&mut bytes)?;
    if bytes.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    file.set_len(keep as u64)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_and_appends_start_on_their_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).append(true).open(&path).unwrap();
        drop_torn_tail(&file).unwrap();
        append_line(&mut file, "{\"c\":3}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
    }
}
