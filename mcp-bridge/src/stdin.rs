//! The bridge's stdin, one JSON-RPC message per line, with a bound on a line's
//! length that answers instead of dropping.
//!
//! rmcp drops a line over 16 MiB without a word, so a client that sent one would
//! wait forever. `BoundedLines` forwards whole lines up to `MAX_REQUEST_BYTES`; a
//! longer one it replaces with a short `codex-jobs/request-too-large` request
//! under the same id, which the bridge answers with an error the client can match
//! (`Bridge::on_custom_request`).

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, ReadBuf};

/// The longest request line taken: a 1 MiB prompt, escaped, with room to spare.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// The method an oversized request is replaced by.
pub const TOO_LARGE_METHOD: &str = "codex-jobs/request-too-large";

/// Where in a line the top-level `"id"` is looked for: its start (before
/// `"params"`) or its end.
const ID_WINDOW: usize = 4096;

pub struct BoundedLines<R> {
    inner: R,
    limit: usize,
    /// The line being read, while it is within the limit.
    line: Vec<u8>,
    /// Of a line over the limit: its first and last bytes, and its length.
    head: Vec<u8>,
    tail: VecDeque<u8>,
    oversized: Option<usize>,
    /// Bytes ready for the reader.
    out: VecDeque<u8>,
    eof: bool,
}

impl<R> BoundedLines<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        BoundedLines {
            inner,
            limit,
            line: Vec::new(),
            head: Vec::new(),
            tail: VecDeque::new(),
            oversized: None,
            out: VecDeque::new(),
            eof: false,
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let ends = piece.last() == Some(&b'\n');
            match self.oversized.as_mut() {
                Some(length) => {
                    *length += piece.len();
                    self.tail.extend(piece);
                    let excess = self.tail.len().saturating_sub(ID_WINDOW);
                    self.tail.drain(..excess);
                }
                None if self.line.len() + piece.len() > self.limit => {
                    let length = self.line.len() + piece.len();
                    self.head = std::mem::take(&mut self.line);
                    self.head.truncate(ID_WINDOW);
                    self.tail.clear();
                    self.tail.extend(piece);
                    let excess = self.tail.len().saturating_sub(ID_WINDOW);
                    self.tail.drain(..excess);
                    self.oversized = Some(length);
                }
                None => self.line.extend_from_slice(piece),
            }
            if ends {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        match self.oversized.take() {
            None => self.out.extend(self.line.drain(..)),
            Some(length) => {
                let tail: Vec<u8> = self.tail.drain(..).collect();
                let id = request_id(&self.head, &tail);
                self.head.clear();
                match id {
                    Some(id) => {
                        let replacement = format!(
                            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{TOO_LARGE_METHOD}\",\"params\":{{\"bytes\":{length},\"limit\":{}}}}}\n",
                            self.limit
                        );
                        self.out.extend(replacement.as_bytes());
                    }
                    None => tracing::error!(
                        "dropped a message of {length} bytes (more than {}), with no id to answer",
                        self.limit
                    ),
                }
            }
        }
    }
}

/// The top-level JSON-RPC id of a request, from its first bytes (before
/// `"params"`) or its last: a number or a string, as it was written.
fn request_id(head: &[u8], tail: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    let before_params = head.split("\"params\"").next().unwrap_or("");
    id_after_key(before_params).or_else(|| {
        let tail = String::from_utf8_lossy(tail);
        // The last `"id":` at the end belongs to the top level.
        let at = tail.rfind("\"id\"")?;
        id_after_key(&tail[at..])
    })
}

fn id_after_key(text: &str) -> Option<String> {
    let at = text.find("\"id\"")?;
    let rest = text[at + 4..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(string) = rest.strip_prefix('"') {
        let end = string.find('"')?;
        return Some(format!("\"{}\"", &string[..end]));
    }
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    (!number.is_empty()).then_some(number)
}

impl<R: AsyncRead + Unpin> AsyncRead for BoundedLines<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let (front, _) = this.out.as_slices();
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front[..n]);
                this.out.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 64 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // A last line without a newline still goes through.
                this.eof = true;
                if !this.line.is_empty() || this.oversized.is_some() {
                    this.end_line();
                }
                continue;
            }
            let filled = read.filled().to_vec();
            this.take(&filled);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn through(input: &[u8], limit: usize) -> String {
        let mut lines = BoundedLines::new(input, limit);
        let mut out = String::new();
        lines.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn lines_within_the_limit_pass_unchanged() {
        let input = "{\"id\":1}\n{\"id\":2}\nlast";
        assert_eq!(through(input.as_bytes(), 100).await, input);
    }

    #[tokio::test]
    async fn an_oversized_request_becomes_a_short_one_with_its_id() {
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{{\"x\":\"{}\"}}}}\n{{\"id\":8}}\n",
            "a".repeat(1000)
        );
        let out = through(big.as_bytes(), 200).await;
        assert_eq!(
            out,
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"{TOO_LARGE_METHOD}\",\"params\":{{\"bytes\":{},\"limit\":200}}}}\n{{\"id\":8}}\n",
                big.find('\n').unwrap() + 1
            )
        );
        // An id after the params, as a string.
        let late = format!(
            "{{\"params\":{{\"id\":\"inner\",\"x\":\"{}\"}},\"id\":\"req-9\"}}\n",
            "b".repeat(1000)
        );
        assert!(
            through(late.as_bytes(), 200)
                .await
                .contains("\"id\":\"req-9\"")
        );
    }
}
