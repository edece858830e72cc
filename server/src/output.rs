//! Reading windows of a job's output logs by byte offset.
//!
//! Tails are read backwards from the end of the file, a block at a time, so their
//! cost depends on the lines asked for, never on the size of the log.

use std::{fs::File, io, os::unix::fs::FileExt, path::Path};

/// Bytes `[start, end)` of a log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub bytes: Vec<u8>,
    pub start: u64,
    pub end: u64,
    /// Requested bytes were left out to stay within the size limit.
    pub truncated: bool,
    /// The log's size when it was read.
    pub size: u64,
}

/// Asked for an offset past the end of the log.
#[derive(Debug, thiserror::Error)]
#[error("offset {offset} is past the end of the output ({size} bytes)")]
pub struct OffsetPastEnd {
    pub offset: u64,
    pub size: u64,
}

/// An open log, or an empty one when the file does not exist yet.
pub struct Log {
    file: Option<File>,
    size: u64,
}

impl Log {
    pub fn open(path: &Path) -> io::Result<Log> {
        match File::open(path) {
            Ok(file) => {
                let size = file.metadata()?.len();
                Ok(Log {
                    file: Some(file),
                    size,
                })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Log {
                file: None,
                size: 0,
            }),
            Err(err) => Err(err),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Up to `max_bytes` from `offset` on. When the limit cuts the window, it ends
    /// after the last whole line in it (unless the window holds no line break).
    pub fn since(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<io::Result<Window>, OffsetPastEnd> {
        if offset > self.size {
            return Err(OffsetPastEnd {
                offset,
                size: self.size,
            });
        }
        Ok(self.read_since(offset, max_bytes))
    }

    fn read_since(&self, offset: u64, max_bytes: usize) -> io::Result<Window> {
        let wanted = (self.size - offset).min(max_bytes as u64) as usize;
        let mut bytes = self.read_at(offset, wanted)?;
        let truncated = offset + (bytes.len() as u64) < self.size;
        if truncated && let Some(last_break) = bytes.iter().rposition(|&b| b == b'\n') {
            bytes.truncate(last_break + 1);
        }
        Ok(Window {
            start: offset,
            end: offset + bytes.len() as u64,
            bytes,
            truncated,
            size: self.size,
        })
    }

    /// The last `lines` lines, at most `max_bytes` of them: when they are longer, the
    /// window is cut at the front, at the first line start in it (or inside a line
    /// that alone is longer than `max_bytes`).
    pub fn tail(&self, lines: usize, max_bytes: usize) -> io::Result<Window> {
        let size = self.size;
        let floor = size.saturating_sub(max_bytes as u64);
        if let Some(start) = self.start_of_last_lines(lines, floor)? {
            return Ok(Window {
                bytes: self.read_at(start, (size - start) as usize)?,
                start,
                end: size,
                truncated: false,
                size,
            });
        }
        // The lines reach back past `floor` (so floor > 0): read from the byte before
        // it, to tell whether a line starts right at it.
        let head = self.read_at(floor - 1, (size - floor + 1) as usize)?;
        let skip = head[..head.len() - 1]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(1, |line_break| line_break + 1);
        Ok(Window {
            start: floor - 1 + skip as u64,
            bytes: head[skip..].to_vec(),
            end: size,
            truncated: true,
            size,
        })
    }

    /// The offset where the last `lines` lines begin, if that is at or after `floor`.
    fn start_of_last_lines(&self, lines: usize, floor: u64) -> io::Result<Option<u64>> {
        if lines == 0 {
            return Ok(Some(self.size));
        }
        const BLOCK: u64 = 64 * 1024;
        // A final line break ends the last line; it does not start another.
        let mut end = self.size;
        if end > 0 && self.read_at(end - 1, 1)? == b"\n" {
            end -= 1;
        }
        // A break just before `floor` still starts a line at `floor`.
        let lowest = floor.saturating_sub(1);
        let mut breaks = 0;
        while end > lowest {
            let block_start = end.saturating_sub(BLOCK).max(lowest);
            let block = self.read_at(block_start, (end - block_start) as usize)?;
            for (index, &byte) in block.iter().enumerate().rev() {
                if byte == b'\n' {
                    breaks += 1;
                    if breaks == lines {
                        return Ok(Some(block_start + index as u64 + 1));
                    }
                }
            }
            end = block_start;
        }
        // Fewer lines than asked for: all of them, if they fit.
        Ok((floor == 0).then_some(0))
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; len];
        let Some(file) = &self.file else {
            return Ok(Vec::new());
        };
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut bytes[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(text: &str) -> (tempfile::TempDir, Log) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, text).unwrap();
        let log = Log::open(&path).unwrap();
        (dir, log)
    }

    fn text(window: &Window) -> &str {
        std::str::from_utf8(&window.bytes).unwrap()
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let (_dir, log) = log_of("one\ntwo\nthree\n");
        assert_eq!(text(&log.tail(2, 1024).unwrap()), "two\nthree\n");
        assert_eq!(text(&log.tail(3, 1024).unwrap()), "one\ntwo\nthree\n");
        assert_eq!(text(&log.tail(10, 1024).unwrap()), "one\ntwo\nthree\n");
        let none = log.tail(0, 1024).unwrap();
        assert_eq!((none.start, none.end, none.bytes.len()), (14, 14, 0));
    }

    #[test]
    fn tail_counts_an_unfinished_last_line() {
        let (_dir, log) = log_of("one\ntwo\nthr");
        let window = log.tail(1, 1024).unwrap();
        assert_eq!(text(&window), "thr");
        assert_eq!((window.start, window.end), (8, 11));
    }

    #[test]
    fn tail_over_many_blocks_finds_the_right_line() {
        let body: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let (_dir, log) = log_of(&body);
        let window = log.tail(3, 1 << 20).unwrap();
        assert_eq!(text(&window), "line 99997\nline 99998\nline 99999\n");
        assert!(!window.truncated);
        let everything = log.tail(100_000, 16 << 20).unwrap();
        assert_eq!((everything.start, everything.bytes.len()), (0, body.len()));
    }

    #[test]
    fn tail_cut_to_max_bytes_starts_at_a_whole_line() {
        let (_dir, log) = log_of("aaaa\nbbbb\ncccc\n");
        let window = log.tail(3, 12).unwrap();
        assert!(window.truncated);
        assert_eq!(text(&window), "bbbb\ncccc\n");
        assert_eq!(window.start, 5);
    }

    #[test]
    fn a_last_line_longer_than_the_limit_is_cut_not_dropped() {
        let long = "b".repeat(100);
        let (_dir, log) = log_of(&format!("short\n{long}\n"));
        let window = log.tail(1, 50).unwrap();
        assert!(window.truncated);
        assert_eq!(text(&window), &format!("{}\n", "b".repeat(49)));
        assert_eq!((window.start, window.end), (57, 107));
    }

    #[test]
    fn lines_that_fit_the_limit_exactly_are_not_truncated() {
        let (_dir, log) = log_of("aaaa\nbbbb\ncccc\n");
        let window = log.tail(2, 10).unwrap();
        assert_eq!((text(&window), window.truncated), ("bbbb\ncccc\n", false));
    }

    #[test]
    fn since_reads_on_and_cuts_at_a_line_end() {
        let (_dir, log) = log_of("aaaa\nbbbb\ncccc\n");
        let window = log.since(5, 1024).unwrap().unwrap();
        assert_eq!(
            (text(&window), window.end, window.truncated),
            ("bbbb\ncccc\n", 15, false)
        );
        let cut = log.since(0, 12).unwrap().unwrap();
        assert_eq!(
            (text(&cut), cut.end, cut.truncated),
            ("aaaa\nbbbb\n", 10, true)
        );
        let end = log.since(15, 1024).unwrap().unwrap();
        assert!(end.bytes.is_empty() && end.end == 15);
        assert!(log.since(16, 1024).is_err());
    }

    #[test]
    fn a_missing_log_is_empty() {
        let log = Log::open(Path::new("/nonexistent/log")).unwrap();
        assert_eq!(log.tail(10, 1024).unwrap(), Window::default());
        assert!(log.since(1, 10).is_err());
    }
}
