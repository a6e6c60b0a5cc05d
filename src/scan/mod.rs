//! Virus scanning with ClamAV's daemon, clamd, over TCP or a Unix socket.
//!
//! - [`Scanner::ping`]: `PING`, with a short timeout, for `/readyz`.
//! - [`Scanner::version`]: `VERSION`, the engine and signature versions
//!   (`ClamAV 1.4.6/27480/Mon Nov 28 09:23:41 2026`), cached for a minute.
//! - [`Scanner::start`] opens an `INSTREAM` session; [`ScanSession::feed`]
//!   sends each chunk of an upload as it arrives, and
//!   [`ScanSession::finish`] ends the stream and reads the [`Verdict`].
//!
//! `feed` returns once clamd's socket has taken the chunk: a slow clamd makes
//! it wait (backpressure), and nothing is buffered here beyond the chunk
//! the caller passes. The upload path awaits it beside the storage write of
//! the same chunk (`tokio::join!`), so the slower of the two sets the pace.
//!
//! Every step is bounded: connecting by `min(timeout, 5 s)`, each write of a
//! chunk and the answer after the last one by the configured timeout
//! (`CLAMD_TIMEOUT_SECS`), and `ping` by half a second. Any failure to get a
//! verdict is a [`ScanError`], which the upload path turns into
//! `SCANNER_UNAVAILABLE` (fail closed).
//!
//! The protocol (clamd(8)): a command is `z` + name + NUL, and so is each
//! answer. `INSTREAM` is followed by chunks, each a 4-byte big-endian length
//! and that many bytes, ended by a zero length. clamd spools the stream to
//! its temporary folder and scans it after the last chunk, so a signature
//! that straddles two chunks is found. Answers: `stream: OK`,
//! `stream: NAME FOUND`, or `... ERROR` (`INSTREAM size limit exceeded.
//! ERROR` past `StreamMaxLength`, after which clamd closes the connection).
//!
//! Why not the `clamav-client` crate: its tokio API scans a whole `AsyncRead`
//! or `Stream` that it pulls itself, so it cannot be fed chunk by chunk
//! beside the storage writes; it has no timeouts, and it loses clamd's
//! answer when clamd closes the stream early (the size limit). The protocol
//! is small enough to speak directly.

use std::{
    io,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Buf;
use entity::ScanResult;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{
    config::{ClamdAddr, ScanConfig},
    error::AppError,
};

/// The most bytes sent in one `INSTREAM` chunk; larger chunks are split.
pub const MAX_CHUNK: usize = 1 << 20;
/// How long `ping` waits (`/readyz` answers within a second).
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// The most time spent connecting, whatever the configured timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the engine version is reused before it is asked again.
const VERSION_TTL: Duration = Duration::from_secs(60);
/// The longest answer read from clamd.
const MAX_REPLY: usize = 4096;

/// What clamd said of a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// `signature` is clamd's name for what it found, e.g.
    /// `Win.Test.EICAR_HDB-1` (names from unsigned databases end in
    /// `.UNOFFICIAL`).
    Infected {
        signature: String,
    },
}

/// No verdict: the upload must fail closed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot connect to clamd at {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("clamd did not {step} within {within:?}")]
    Timeout {
        step: &'static str,
        within: Duration,
    },
    #[error("talking to clamd: {0}")]
    Io(#[source] io::Error),
    /// An `ERROR` answer, such as `INSTREAM size limit exceeded`.
    #[error("clamd refused the scan: {0}")]
    Refused(String),
    /// clamd stopped at one of its limits (`MaxFileSize`, `MaxScanSize`,
    /// `MaxScanTime`, ...; reported as `Heuristics.Limits.Exceeded.*` with
    /// `AlertExceedsMax`): the file was not scanned whole.
    #[error("clamd could not scan the whole file: {0}")]
    LimitExceeded(String),
    #[error("unexpected answer from clamd: {0:?}")]
    Protocol(String),
}

impl Verdict {
    /// The result a scan record keeps.
    pub fn result(&self) -> ScanResult {
        match self {
            Verdict::Clean => ScanResult::Clean,
            Verdict::Infected { .. } => ScanResult::Infected,
        }
    }

    pub fn signature(&self) -> Option<&str> {
        match self {
            Verdict::Clean => None,
            Verdict::Infected { signature } => Some(signature),
        }
    }
}

impl ScanError {
    /// Why there is no verdict, for the scan record: shown to admins, so
    /// it names no address.
    pub fn summary(&self) -> String {
        match self {
            ScanError::Unreachable { source, .. } => format!("clamd unreachable: {source}"),
            ScanError::Timeout { step, within } => {
                format!("clamd did not {step} within {within:?}")
            }
            ScanError::Io(e) => format!("connection to clamd lost: {e}"),
            ScanError::Refused(m) => format!("clamd refused the scan: {m}"),
            ScanError::LimitExceeded(s) => format!("the file exceeds clamd's limits: {s}"),
            ScanError::Protocol(_) => "unexpected answer from clamd".into(),
        }
    }

    /// The limit clamd reported (`Heuristics.Limits.Exceeded.*`), if any.
    pub fn signature(&self) -> Option<&str> {
        match self {
            ScanError::LimitExceeded(s) => Some(s),
            _ => None,
        }
    }

    /// Whether clamd stopped answering (rather than refusing or failing).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ScanError::Timeout { .. })
    }
}

impl From<ScanError> for AppError {
    fn from(e: ScanError) -> Self {
        AppError::ScannerUnavailable(Box::new(e))
    }
}

trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// A clamd to scan with; cheap to clone (clones share the version cache).
#[derive(Clone)]
pub struct Scanner {
    addr: ClamdAddr,
    timeout: Duration,
    version: Arc<Mutex<Option<KnownVersion>>>,
}

/// A `VERSION` answer and when it was had.
type KnownVersion = (Instant, Arc<str>);

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("addr", &self.addr.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Scanner {
    /// A scanner for `addr`, waiting at most `timeout` for each step.
    pub fn new(addr: ClamdAddr, timeout: Duration) -> Self {
        Scanner {
            addr,
            timeout,
            version: Arc::default(),
        }
    }

    /// The configured scanner, when scanning is required (`AV_SCAN`).
    pub fn from_config(config: &ScanConfig) -> Option<Self> {
        config
            .required()
            .map(|addr| Scanner::new(addr.clone(), config.timeout))
    }

    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    /// Whether clamd answers `PING` with `PONG` within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), ScanError> {
        let within = PING_TIMEOUT.min(self.timeout);
        match self.command("PING", within).await?.as_str() {
            "PONG" => Ok(()),
            other => Err(ScanError::Protocol(other.to_string())),
        }
    }

    /// clamd's `VERSION` answer: engine version, and with a signature
    /// database from freshclam, its version and date. Asked at most once a
    /// minute; the answer is shared by every clone of this scanner.
    pub async fn version(&self) -> Result<Arc<str>, ScanError> {
        if let Some((at, v)) = &*self.version.lock().unwrap()
            && at.elapsed() < VERSION_TTL
        {
            return Ok(v.clone());
        }
        let v: Arc<str> = self.command("VERSION", self.timeout).await?.into();
        *self.version.lock().unwrap() = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// The last version `version` learnt, however old, without asking
    /// clamd: for recording a scan that failed before it had one.
    pub fn cached_version(&self) -> Option<Arc<str>> {
        self.version
            .lock()
            .unwrap()
            .as_ref()
            .map(|(_, v)| v.clone())
    }

    /// Opens an `INSTREAM` session. Fails fast when clamd is unreachable,
    /// before the caller reads any of the upload.
    pub async fn start(&self) -> Result<ScanSession, ScanError> {
        let engine_version = self.version().await?;
        let mut conn = self.connect(self.timeout).await?;
        write(&mut conn, b"zINSTREAM\0", self.timeout, "take the command").await?;
        Ok(ScanSession {
            conn,
            timeout: self.timeout,
            bytes_sent: 0,
            engine_version,
        })
    }

    /// Sends `z<name>\0` on a connection of its own and returns the answer,
    /// all within `within`.
    async fn command(&self, name: &str, within: Duration) -> Result<String, ScanError> {
        let exchange = async {
            let mut conn = self.connect(within).await?;
            conn.write_all(format!("z{name}\0").as_bytes())
                .await
                .map_err(ScanError::Io)?;
            read_reply(&mut conn).await
        };
        tokio::time::timeout(within, exchange)
            .await
            .map_err(|_| ScanError::Timeout {
                step: "answer",
                within,
            })?
    }

    async fn connect(&self, within: Duration) -> Result<Box<dyn Connection>, ScanError> {
        let within = within.min(CONNECT_TIMEOUT);
        let connecting = async {
            Ok::<Box<dyn Connection>, io::Error>(match &self.addr {
                ClamdAddr::Tcp { host, port } => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Box::new(stream)
                }
                ClamdAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            })
        };
        match tokio::time::timeout(within, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(ScanError::Unreachable {
                addr: self.addr.to_string(),
                source,
            }),
            Err(_) => Err(ScanError::Timeout {
                step: "accept the connection",
                within,
            }),
        }
    }
}

/// One file being scanned: feed it every chunk in order, then `finish`.
/// Dropping a session without `finish` closes the connection; clamd then
/// discards what it received.
pub struct ScanSession {
    conn: Box<dyn Connection>,
    timeout: Duration,
    bytes_sent: u64,
    engine_version: Arc<str>,
}

impl ScanSession {
    /// Sends `chunk` (split into pieces of at most [`MAX_CHUNK`]), waiting
    /// until clamd's socket has taken it, at most the timeout per piece. An
    /// empty chunk sends nothing: a zero length would end the stream.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        for piece in chunk.chunks(MAX_CHUNK) {
            let len = (piece.len() as u32).to_be_bytes();
            let mut framed = Buf::chain(&len[..], piece);
            let sent = tokio::time::timeout(self.timeout, self.conn.write_all_buf(&mut framed));
            match sent.await {
                Ok(Ok(())) => self.bytes_sent += piece.len() as u64,
                Ok(Err(e)) => return Err(self.closed_early(e).await),
                Err(_) => {
                    return Err(ScanError::Timeout {
                        step: "take a chunk",
                        within: self.timeout,
                    });
                }
            }
        }
        Ok(())
    }

    /// Ends the stream and waits (at most the timeout) for clamd's verdict.
    pub async fn finish(mut self) -> Result<Verdict, ScanError> {
        let end = async {
            self.conn.write_all(&[0, 0, 0, 0]).await?;
            self.conn.flush().await
        };
        match tokio::time::timeout(self.timeout, end).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.closed_early(e).await),
            Err(_) => {
                return Err(ScanError::Timeout {
                    step: "take the end of the stream",
                    within: self.timeout,
                });
            }
        }
        let reply = tokio::time::timeout(self.timeout, read_reply(&mut self.conn))
            .await
            .map_err(|_| ScanError::Timeout {
                step: "answer",
                within: self.timeout,
            })??;
        parse_verdict(&reply)
    }

    /// Bytes of the file sent so far (without the framing).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// clamd's `VERSION` when the session started, for the scan record.
    pub fn engine_version(&self) -> &str {
        &self.engine_version
    }

    /// A write failed: clamd may have answered and closed the connection
    /// (the size limit). Its answer explains the failure better than the
    /// broken pipe does.
    async fn closed_early(&mut self, e: io::Error) -> ScanError {
        let within = PING_TIMEOUT.min(self.timeout);
        match tokio::time::timeout(within, read_reply(&mut self.conn)).await {
            Ok(Ok(reply)) if !reply.is_empty() => match parse_verdict(&reply) {
                Err(explained) => explained,
                Ok(_) => ScanError::Protocol(reply),
            },
            _ => ScanError::Io(e),
        }
    }
}

async fn write(
    conn: &mut Box<dyn Connection>,
    bytes: &[u8],
    within: Duration,
    step: &'static str,
) -> Result<(), ScanError> {
    tokio::time::timeout(within, conn.write_all(bytes))
        .await
        .map_err(|_| ScanError::Timeout { step, within })?
        .map_err(ScanError::Io)
}

/// Reads one answer: up to its NUL (or the end of the connection).
async fn read_reply(conn: &mut Box<dyn Connection>) -> Result<String, ScanError> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = conn.read(&mut buf).await.map_err(ScanError::Io)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.contains(&0) {
            break;
        }
        if reply.len() > MAX_REPLY {
            return Err(ScanError::Protocol(format!(
                "an answer longer than {MAX_REPLY} bytes"
            )));
        }
    }
    let end = reply.iter().position(|b| *b == 0).unwrap_or(reply.len());
    Ok(String::from_utf8_lossy(&reply[..end]).trim().to_string())
}

/// clamd's answer to a stream, as a verdict or the reason there is none.
pub fn parse_verdict(reply: &str) -> Result<Verdict, ScanError> {
    let reply = reply.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let what = reply.strip_prefix("stream:").unwrap_or(reply).trim();
    if what == "OK" {
        Ok(Verdict::Clean)
    } else if let Some(signature) = what.strip_suffix(" FOUND").map(str::trim)
        && !signature.is_empty()
    {
        if signature.starts_with("Heuristics.Limits.Exceeded") {
            Err(ScanError::LimitExceeded(signature.to_string()))
        } else {
            Ok(Verdict::Infected {
                signature: signature.to_string(),
            })
        }
    } else if let Some(message) = what.strip_suffix("ERROR") {
        let message = message.trim().trim_end_matches('.').trim();
        Err(ScanError::Refused(if message.is_empty() {
            reply.to_string()
        } else {
            message.to_string()
        }))
    } else {
        Err(ScanError::Protocol(reply.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_verdicts() {
        assert_eq!(parse_verdict("stream: OK\0"), Ok(Verdict::Clean));
        assert_eq!(
            parse_verdict("stream: Eicar-Test-Signature.UNOFFICIAL FOUND"),
            Ok(Verdict::Infected {
                signature: "Eicar-Test-Signature.UNOFFICIAL".into()
            })
        );
        assert_eq!(
            parse_verdict("stream: Win.Test.EICAR_HDB-1 FOUND\n"),
            Ok(Verdict::Infected {
                signature: "Win.Test.EICAR_HDB-1".into()
            })
        );
    }

    #[test]
    fn anything_else_is_no_verdict() {
        let refused = |r: &str| match parse_verdict(r) {
            Err(ScanError::Refused(m)) => m,
            other => panic!("{r}: {other:?}"),
        };
        assert_eq!(
            refused("INSTREAM size limit exceeded. ERROR"),
            "INSTREAM size limit exceeded"
        );
        assert_eq!(
            refused("stream: Can't allocate memory ERROR"),
            "Can't allocate memory"
        );
        assert!(matches!(
            parse_verdict("stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND"),
            Err(ScanError::LimitExceeded(s)) if s == "Heuristics.Limits.Exceeded.MaxFileSize"
        ));
        for odd in ["", "stream:", "stream: FOUND", "PONG", "UNKNOWN COMMAND"] {
            assert!(
                matches!(parse_verdict(odd), Err(ScanError::Protocol(_))),
                "{odd:?}"
            );
        }
    }

    impl PartialEq for ScanError {
        fn eq(&self, other: &Self) -> bool {
            self.to_string() == other.to_string()
        }
    }
}
