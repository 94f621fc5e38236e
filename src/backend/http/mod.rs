//! HTTP for the remote backends, and the one place where native and WASI builds differ.
//!
//! The interface is deliberately tiny: one blocking `call` that sends a request (with an
//! optional body streamed from a spooled file) and returns the status, the headers and a
//! body reader. Retries, status handling and integrity checks belong to the backend
//! (`backend::swift`); this layer only moves bytes and reports transport failures, all of
//! which a backend may retry.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

pub mod limit;
#[cfg(not(target_os = "wasi"))]
mod native;
#[cfg(target_os = "wasi")]
mod wasi;

/// The HTTP methods the backends use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A request body: exactly `len` bytes read from `file`'s current position. Bodies come from
/// spooled files so that a retry can resend the same bytes from the start.
pub struct Body {
    pub file: File,
    pub len: u64,
}

/// One request. `url` must already be percent-encoded.
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

/// A response. Header names are lower case. Reading `body` may still fail with an I/O
/// error (connection lost, idle timeout), which callers treat like a transport failure.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read + Send>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What kind of transport failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be made (refused, reset during set-up, DNS).
    Connect,
    /// A timeout expired (connect, waiting for the response, an idle read or write).
    Timeout,
    /// The connection broke while sending or receiving, or the peer spoke bad HTTP.
    Io,
    /// TLS failed in a way a retry cannot fix (certificate not trusted, wrong host name).
    Tls,
    /// The request itself is malformed (bad URL, bad header value): a bug or bad config.
    Invalid,
}

/// A transport failure: no HTTP status was received.
#[derive(Clone, Debug)]
pub struct HttpError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl HttpError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> HttpError {
        HttpError {
            kind,
            detail: detail.into(),
        }
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Io
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Connect => "cannot connect",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Io => "connection failed",
            ErrorKind::Tls => "TLS failed",
            ErrorKind::Invalid => "invalid request",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for HttpError {}

/// A blocking HTTP client.
pub trait Http: Send + Sync {
    /// Send `req` and return the response whatever its status; `Err` only when no response
    /// arrived.
    fn call(&self, req: Request) -> Result<Response, HttpError>;
}

/// Timeouts and trust settings of the client.
#[derive(Clone, Debug)]
pub struct Options {
    /// For connecting (TCP and TLS), for the response headers after the request was sent,
    /// and for any single read or write that makes no progress (a stalled peer).
    pub timeout: Duration,
    /// Whole-body budget for a download; also overrides the computed upload budget when
    /// `body_timeout_override` is set.
    pub download_budget: Duration,
    /// When set, the whole-body budget of every upload and download (tests use a short one).
    pub body_timeout_override: Option<Duration>,
    /// A PEM file of extra CA certificates, trusted in addition to the Mozilla roots.
    /// `None`: `SWIFTDUP_CA_FILE`, then `SSL_CERT_FILE`, when set.
    pub ca_file: Option<PathBuf>,
    /// `--limit-upload` and `--limit-download`, shared by every connection of the run.
    pub upload_limit: Option<std::sync::Arc<limit::Limiter>>,
    pub download_limit: Option<std::sync::Arc<limit::Limiter>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(60),
            download_budget: Duration::from_secs(30 * 60),
            body_timeout_override: None,
            ca_file: None,
            upload_limit: None,
            download_limit: None,
        }
    }
}

/// The lowest upload rate the send budget allows for: a volume that cannot be sent at
/// 256 KiB/s is better retried (or reported) than waited for indefinitely.
pub const MIN_UPLOAD_RATE: u64 = 256 * 1024;

impl Options {
    /// The whole-body budget for an upload of `len` bytes: at least two minutes, more for
    /// large bodies so a slow but moving link is not cut off.
    pub fn upload_budget(&self, len: u64) -> Duration {
        if let Some(d) = self.body_timeout_override {
            return d;
        }
        let budget = Duration::from_secs(120.max(len / MIN_UPLOAD_RATE));
        // Under a limit, twice the time the limit itself takes.
        match &self.upload_limit {
            Some(l) => budget.max(l.time_for(len) * 2),
            None => budget,
        }
    }

    /// The whole-body budget for a download. Under a limit, room for the largest volume
    /// (4 GiB) at half the limit: stalls are still caught by the per-read timeout.
    pub fn download_budget(&self) -> Duration {
        if let Some(d) = self.body_timeout_override {
            return d;
        }
        match &self.download_limit {
            Some(l) => self.download_budget.max(l.time_for(4 << 30) * 2),
            None => self.download_budget,
        }
    }

    /// The CA file to add: the explicit option, else `SWIFTDUP_CA_FILE`, else `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca_file.clone().or_else(|| {
            ["SWIFTDUP_CA_FILE", "SSL_CERT_FILE"]
                .iter()
                .filter_map(std::env::var_os)
                .find(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

/// The HTTP client of this build. Fails when a configured CA file cannot be read.
pub fn client(opts: &Options) -> Result<Box<dyn Http>, HttpError> {
    #[cfg(not(target_os = "wasi"))]
    {
        Ok(Box::new(native::NativeHttp::new(opts)?))
    }
    #[cfg(target_os = "wasi")]
    {
        Ok(Box::new(wasi::WasiHttp::new(opts)?))
    }
}

/// The most of an error response body a message shows. Short, because a body is the
/// server's text, not ours: a gateway may echo the request (and so the container key) or
/// send a whole HTML page.
pub const ERROR_BODY_SHOWN: usize = 200;
/// What is read of an error body to make that excerpt: more than is shown, so that a
/// secret is redacted whole before the excerpt is cut (see `log::excerpt`).
const ERROR_BODY_READ: u64 = 4096;

/// The start of an error response's body, fit for a message: at most `ERROR_BODY_SHOWN`
/// bytes on one line, control characters removed, secrets redacted; also the raw bytes
/// read, for callers that look for a marker in them (never to be put in a message).
pub fn error_body(body: &mut dyn Read) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    // A body that cannot be read adds nothing to the message; the status says enough.
    let _ = body.take(ERROR_BODY_READ + 1).read_to_end(&mut raw);
    let cut = raw.len() as u64 > ERROR_BODY_READ;
    raw.truncate(ERROR_BODY_READ as usize);
    (crate::log::excerpt(&raw, ERROR_BODY_SHOWN, cut), raw)
}

/// Percent-encode everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`),
/// so any string (spaces, `%`, `#`, `?`, `&`, `/`, UTF-8) is one literal query value or
/// path segment.
pub fn encode(s: &str) -> String {
    encode_keeping(s, b"")
}

/// Like `encode`, but `/` stays as it is: for object paths, where Swift splits the
/// container off at the first `/` and keeps the rest as the name. Proxies in front of Swift
/// often refuse an encoded `%2F` in a path (as python-swiftclient also keeps `/`).
pub fn encode_path(s: &str) -> String {
    encode_keeping(s, b"/")
}

fn encode_keeping(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_only_unreserved() {
        assert_eq!(encode("a-b.c_d~e09"), "a-b.c_d~e09");
        assert_eq!(encode("a b%c#d?e/f"), "a%20b%25c%23d%3Fe%2Ff");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("+&="), "%2B%26%3D");
        assert_eq!(encode_path("p/a b/c#"), "p/a%20b/c%23");
    }

    #[test]
    fn upload_budget_grows_with_size() {
        let o = Options::default();
        assert_eq!(o.upload_budget(0), Duration::from_secs(120));
        assert_eq!(
            o.upload_budget(4096 * 1024 * 1024),
            Duration::from_secs(16384)
        );
        let t = Options {
            body_timeout_override: Some(Duration::from_secs(1)),
            ..Options::default()
        };
        assert_eq!(t.upload_budget(1 << 40), Duration::from_secs(1));
        assert_eq!(t.download_budget(), Duration::from_secs(1));
    }
}
