//! The line in the file where each CSV record starts, counted on the bytes as they stream in.
//!
//! `csv-async` (over `csv-core` 0.1) reports a record's position where its read began: with
//! CRLF line endings that is the `\n` left from the line before (the record on line 2 says
//! line 1), and after a blank line the blank line (rust-csv issue #395, open; fix PR #433
//! not released). Import errors name the file's line (PRODUCT §3: "`row` is the 1-based line
//! number in the file (the header is line 1)"), so [`LineTracking`] counts lines itself —
//! `\r\n`, `\n` and a lone `\r` each end one, as the csv reader's default terminator has it —
//! and keeps the start of every line that is not blank. A record starts at the first of those
//! at or after its reported byte offset.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Wraps the CSV source (after any byte-order mark: offsets count from there, as the csv
/// reader's do) and records where its non-blank lines start.
pub struct LineTracking<R> {
    inner: R,
    lines: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    /// Bytes seen so far.
    offset: u64,
    /// The line the next byte is on (1-based).
    line: u64,
    /// The last byte was `\r` (a `\n` right after it ends no other line).
    after_cr: bool,
    /// The next byte begins a line.
    at_start: bool,
    /// `(byte offset, line)` of the non-blank lines that start at or after the last record
    /// asked about: earlier ones are dropped, so this holds at most what the csv reader
    /// buffers ahead.
    starts: VecDeque<(u64, u64)>,
}

impl<R> LineTracking<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            lines: Mutex::new(Lines {
                line: 1,
                at_start: true,
                ..Lines::default()
            }),
        }
    }

    /// The 1-based line of the record whose reported start is byte `offset` (the csv
    /// reader's `Position::byte`), once the reader has returned it; `None` if no non-blank
    /// line starts at or after it. Records must be asked about in order.
    pub fn line_at(&self, offset: u64) -> Option<u64> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while lines.starts.front().is_some_and(|&(at, _)| at < offset) {
            lines.starts.pop_front();
        }
        lines.starts.front().map(|&(_, line)| line)
    }
}

impl Lines {
    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let at = self.offset;
            self.offset += 1;
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\r' || b == b'\n' {
                self.line += 1;
                self.at_start = true;
            } else if self.at_start {
                self.at_start = false;
                self.starts.push_back((at, self.line));
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LineTracking<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let lines = self.lines.get_mut().unwrap_or_else(|e| e.into_inner());
            lines.scan(&buf.filled()[before..]);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::LineTracking;
    use csv_async::{AsyncReaderBuilder, ByteRecord};

    /// Each record's first cell and the line it starts on, as the import reads them.
    async fn lines_of(file: &'static [u8]) -> Vec<(String, u64)> {
        let mut csv = AsyncReaderBuilder::new()
            .flexible(true)
            .delimiter(b';')
            .buffer_capacity(4) // records split across reads, and read ahead of
            .create_reader(LineTracking::new(file));
        csv.byte_headers().await.unwrap();
        let mut record = ByteRecord::new();
        let mut out = vec![];
        while csv.read_byte_record(&mut record).await.unwrap() {
            let byte = record.position().unwrap().byte();
            let line = csv.get_ref().line_at(byte).unwrap();
            out.push((String::from_utf8_lossy(&record[0]).into_owned(), line));
        }
        out
    }

    fn expected(records: &[(&str, u64)]) -> Vec<(String, u64)> {
        records.iter().map(|(c, l)| (c.to_string(), *l)).collect()
    }

    #[tokio::test]
    async fn records_are_numbered_by_their_line_in_the_file_whatever_ends_the_lines() {
        // A blank line (5) and a quoted cell over two lines (7–8).
        let want = expected(&[("a", 2), ("b", 3), ("c", 5), ("d\nx", 6), ("e", 8)]);
        let lf = lines_of(b"h;n\na;1\nb;2\n\nc;3\n\"d\nx\";4\ne;5\n").await;
        assert_eq!(lf, want);
        // Excel's CRLF: the csv reader alone said 1, 2, 3, 5, 7.
        let crlf = lines_of(b"h;n\r\na;1\r\nb;2\r\n\r\nc;3\r\n\"d\nx\";4\r\ne;5\r\n").await;
        assert_eq!(crlf, want);
        // Old Mac line ends, and no line end after the last record.
        let cr = lines_of(b"h;n\ra;1\rb;2\r\rc;3\r\"d\nx\";4\re;5").await;
        assert_eq!(cr, want);
    }
}
