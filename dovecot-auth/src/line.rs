//! Bounded, cancel-safe line reading.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ProtocolError;

/// Reads LF-terminated lines of at most `max` bytes (without the LF). A CR before the LF is
/// removed, as Dovecot does. Memory use is bounded by `max` plus one read chunk.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// How much of `buf` is known to contain no LF.
    scanned: usize,
    max: usize,
    eof: bool,
}

const CHUNK: usize = 4096;

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            scanned: 0,
            max,
            eof: false,
        }
    }

    /// Whether bytes have been read that no returned line holds yet.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The reader given to [`new`](Self::new); anything buffered is lost.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// The next line, or `None` at end of input (an unterminated last line is discarded).
    ///
    /// Cancel-safe: bytes are only moved into the buffer after a read has completed, so dropping
    /// the future (as `select!` does) loses nothing.
    pub(crate) async fn next_line(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + pos;
                if end > self.max {
                    return Err(ProtocolError::LineTooLong { limit: self.max });
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                if self.buf.is_empty() && self.buf.capacity() > 2 * CHUNK {
                    // Do not keep a large buffer on an idle connection.
                    self.buf = Vec::new();
                }
                return Ok(Some(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                return Err(ProtocolError::LineTooLong { limit: self.max });
            }
            if self.eof {
                return Ok(None);
            }
            let mut chunk = [0u8; CHUNK];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                self.eof = true;
            } else {
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match reader.next_line().await {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_strips_cr() {
        let got = lines(b"a\tb\nc\r\n\nlast-unterminated", 100).await;
        assert_eq!(
            got,
            vec![Ok(b"a\tb".to_vec()), Ok(b"c".to_vec()), Ok(Vec::new())]
        );
    }

    #[tokio::test]
    async fn enforces_the_limit_exactly() {
        assert_eq!(lines(b"12345\n", 5).await, vec![Ok(b"12345".to_vec())]);
        assert_eq!(
            lines(b"123456\n", 5).await,
            vec![Err("line longer than 5 bytes".into())]
        );
        // Without ever seeing the LF.
        let long = vec![b'x'; 3 * CHUNK];
        assert_eq!(
            lines(&long, 100).await,
            vec![Err("line longer than 100 bytes".into())]
        );
    }

    #[tokio::test]
    async fn survives_chunk_boundaries_and_cancellation() {
        let (mut client, server) = tokio::io::duplex(8);
        let mut reader = LineReader::new(server, 64);
        let writer = tokio::spawn(async move {
            for piece in [&b"AU"[..], b"TH\t1", b"\nCONT\t1\t", b"YQ==\n"] {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            // Poll with a timeout that often fires first: no byte may be lost.
            if let Ok(line) =
                tokio::time::timeout(std::time::Duration::from_micros(1), reader.next_line()).await
            {
                got.push(line.unwrap().unwrap());
            }
        }
        writer.await.unwrap();
        assert_eq!(got, vec![b"AUTH\t1".to_vec(), b"CONT\t1\tYQ==".to_vec()]);
    }
}
