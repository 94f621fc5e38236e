//! The WASI HTTP client: `wasi:http/outgoing-handler` (WASI 0.2), which the host runtime
//! provides (`wasmtime run -S http`). The host does DNS, TCP and TLS (with its own roots),
//! so there is no TLS code in a WASI build and no CA file can be added to it.
//!
//! Timeouts are enforced here, by polling each stream together with a monotonic-clock
//! timer, so they hold whatever the host does with `RequestOptions`: `Options::timeout`
//! bounds the wait for the response headers and every read or write that makes no
//! progress; the whole body has the same budgets as the native client
//! (`Options::upload_budget`, `Options::download_budget`). The request options are set too,
//! as a second line for what the guest cannot see (connecting).
//!
//! Resource order matters in the component model: a stream is a child of its body and must
//! be dropped before it, and an outgoing body must be finished (or dropped) only after its
//! stream is gone. The types below keep those lifetimes explicit.

use super::{ErrorKind, Http, HttpError, Method, Options, Request, Response};
use std::fs::File;
use std::io::{self, Read};
use std::time::{Duration, Instant};
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    self as ht, ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse,
    OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Bytes read from the body file and handed to the output stream at a time (the stream
/// may accept less per write; `check_write` says how much).
const CHUNK: usize = 64 * 1024;

/// `wasi:http` behind the `Http` trait. Connections are the host's business.
pub struct WasiHttp {
    opts: Options,
}

impl WasiHttp {
    /// Build the client. An explicit CA file (`--ca-file`, `SWIFTDUP_CA_FILE`) is refused:
    /// TLS is the host's, and silently ignoring a trust setting would be worse than
    /// failing. (`SSL_CERT_FILE` is a general-purpose variable and is ignored here.)
    pub fn new(opts: &Options) -> Result<WasiHttp, HttpError> {
        let explicit = opts.ca_file.clone().or_else(|| {
            std::env::var_os("SWIFTDUP_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(Into::into)
        });
        if let Some(path) = explicit {
            return Err(HttpError::new(
                ErrorKind::Invalid,
                format!(
                    "CA file {}: a WASI build cannot add CA certificates, because TLS is done \
                     by the host runtime with its own roots; trust the CA in the host or use \
                     the native build",
                    path.display()
                ),
            ));
        }
        Ok(WasiHttp { opts: opts.clone() })
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Wait until `p` is ready or `timeout` has passed; `false` on timeout.
fn wait(p: &Pollable, timeout: Duration) -> bool {
    let timer = monotonic_clock::subscribe_duration(ns(timeout));
    poll::poll(&[p, &timer]).contains(&0)
}

/// `(scheme, authority, path with query)` of an absolute http(s) URL.
fn split_url(url: &str) -> Result<(Scheme, &str, String), HttpError> {
    // Redacted: the URL refused may be one with a password in it.
    let bad = |why: &str| {
        HttpError::new(
            ErrorKind::Invalid,
            format!("URL {:?}: {why}", crate::log::redact(url)),
        )
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not an absolute URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad("only http:// and https:// are supported")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("no host, or user information in the URL"));
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Ok((scheme, authority, path))
}

/// Sort a `wasi:http` error code into retryable transport trouble and the rest.
fn map_code(code: ErrorCode) -> HttpError {
    use ErrorCode as C;
    let (kind, detail) = match code {
        C::DnsTimeout => (ErrorKind::Timeout, "DNS lookup timed out".to_string()),
        C::DnsError(p) => (
            ErrorKind::Connect,
            format!(
                "DNS lookup failed{}",
                p.rcode.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        ),
        C::DestinationNotFound => (ErrorKind::Connect, "host not found".into()),
        C::DestinationUnavailable => (ErrorKind::Connect, "host unavailable".into()),
        C::DestinationIpProhibited => (ErrorKind::Connect, "destination IP prohibited".into()),
        C::DestinationIpUnroutable => (ErrorKind::Connect, "destination IP unroutable".into()),
        C::ConnectionRefused => (ErrorKind::Connect, "connection refused".into()),
        C::ConnectionLimitReached => (ErrorKind::Connect, "connection limit reached".into()),
        C::ConnectionTimeout => (
            ErrorKind::Timeout,
            "no connection within the timeout".into(),
        ),
        C::ConnectionReadTimeout => (
            ErrorKind::Timeout,
            "nothing received for the whole timeout".into(),
        ),
        C::ConnectionWriteTimeout => (
            ErrorKind::Timeout,
            "nothing could be sent for the whole timeout".into(),
        ),
        C::HttpResponseTimeout => (ErrorKind::Timeout, "no response within the timeout".into()),
        C::ConnectionTerminated => (ErrorKind::Io, "connection closed by the peer".into()),
        C::TlsCertificateError => (
            ErrorKind::Tls,
            "the server's certificate is not trusted by the host runtime".into(),
        ),
        C::TlsAlertReceived(p) => (
            ErrorKind::Tls,
            format!(
                "TLS alert {}",
                p.alert_message
                    .unwrap_or_else(|| format!("{:?}", p.alert_id))
            ),
        ),
        C::TlsProtocolError => (ErrorKind::Tls, "TLS protocol error".into()),
        c @ (C::HttpRequestMethodInvalid
        | C::HttpRequestUriInvalid
        | C::HttpRequestUriTooLong
        | C::HttpRequestHeaderSectionSize(_)
        | C::HttpRequestHeaderSize(_)
        | C::HttpRequestDenied
        | C::ConfigurationError) => (ErrorKind::Invalid, format!("{c:?}")),
        C::InternalError(Some(s)) => (ErrorKind::Io, s),
        // Incomplete or garbled responses, body size mismatches, protocol errors: the next
        // connection may do better.
        c => (ErrorKind::Io, format!("{c:?}")),
    };
    HttpError::new(kind, detail)
}

/// A stream failure while sending or receiving.
fn stream_err(e: StreamError, what: &str) -> HttpError {
    match e {
        StreamError::Closed => HttpError::new(ErrorKind::Io, format!("{what}: stream closed")),
        StreamError::LastOperationFailed(err) => match ht::http_error_code(&err) {
            Some(code) => map_code(code),
            None => HttpError::new(ErrorKind::Io, format!("{what}: {}", err.to_debug_string())),
        },
    }
}

fn invalid(what: &str) -> HttpError {
    HttpError::new(ErrorKind::Invalid, format!("the host refused the {what}"))
}

/// Wait until `stream` accepts bytes; how many it accepts.
fn writable(stream: &OutputStream, timeout: Duration, deadline: Instant) -> Result<u64, HttpError> {
    loop {
        let n = stream
            .check_write()
            .map_err(|e| stream_err(e, "sending the body"))?;
        if n > 0 {
            return Ok(n);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = {
            let p = stream.subscribe();
            wait(&p, timeout.min(left))
        };
        if !ready {
            let detail = if Instant::now() >= deadline {
                "the upload did not finish within its budget"
            } else {
                "nothing could be sent for the whole timeout"
            };
            return Err(HttpError::new(ErrorKind::Timeout, detail));
        }
    }
}

/// Copy exactly `len` bytes from `src` into the body's stream, then flush it.
fn send_body(
    body: &OutgoingBody,
    mut src: impl Read,
    len: u64,
    timeout: Duration,
    deadline: Instant,
) -> Result<(), HttpError> {
    let stream = body.write().map_err(|()| invalid("request body"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let n = src
            .read(&mut buf[..want])
            .map_err(|e| HttpError::new(ErrorKind::Io, format!("reading the request body: {e}")))?;
        if n == 0 {
            return Err(HttpError::new(
                ErrorKind::Io,
                format!("the request body ended {left} bytes early"),
            ));
        }
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let room = writable(&stream, timeout, deadline)?;
            let m = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
            stream
                .write(&chunk[..m])
                .map_err(|e| stream_err(e, "sending the body"))?;
            chunk = &chunk[m..];
        }
        left -= n as u64;
    }
    stream
        .flush()
        .map_err(|e| stream_err(e, "sending the body"))?;
    // After a flush the stream accepts writes again once everything went out.
    writable(&stream, timeout, deadline)?;
    Ok(())
}

/// Wait for the response headers.
fn response(
    future: &FutureIncomingResponse,
    timeout: Duration,
) -> Result<IncomingResponse, HttpError> {
    outcome(future, timeout)?.map_err(map_code)
}

/// What the host made of the exchange: the response headers or its error code (refused,
/// reset, DNS, ...); `Err` when it said nothing in time.
fn outcome(
    future: &FutureIncomingResponse,
    timeout: Duration,
) -> Result<Result<IncomingResponse, ErrorCode>, HttpError> {
    let ready = {
        let p = future.subscribe();
        wait(&p, timeout)
    };
    match future.get() {
        Some(Ok(r)) => Ok(r),
        Some(Err(())) => Err(HttpError::new(
            ErrorKind::Io,
            "the response was already taken",
        )),
        None if !ready => Err(HttpError::new(
            ErrorKind::Timeout,
            "no response within the timeout",
        )),
        None => Err(HttpError::new(ErrorKind::Io, "no response")),
    }
}

/// Send the request and its body; the response (or the reason there is none).
fn exchange(
    opts: &Options,
    req: OutgoingRequest,
    body: Option<(File, u64)>,
) -> Result<IncomingResponse, HttpError> {
    let len = body.as_ref().map_or(0, |b| b.1);
    // Without a body the request goes out with none (and no chunked framing); a PUT
    // always has its content-length, as Swift wants.
    let outgoing = match body {
        Some(_) => Some(req.body().map_err(|()| invalid("request body"))?),
        None => None,
    };
    let options = RequestOptions::new();
    // The host counts the time to the first response byte from the start of the request,
    // body included: for an upload that is the whole budget plus the usual wait.
    let first_byte = match body {
        Some(_) => opts.upload_budget(len) + opts.timeout,
        None => opts.timeout,
    };
    // A host may not support every option; the guest-side timeouts hold regardless.
    let _ = options.set_connect_timeout(Some(ns(opts.timeout)));
    let _ = options.set_first_byte_timeout(Some(ns(first_byte)));
    let _ = options.set_between_bytes_timeout(Some(ns(opts.timeout)));
    let future = outgoing_handler::handle(req, Some(options)).map_err(map_code)?;
    let (Some(outgoing), Some((file, len))) = (outgoing, body) else {
        return response(&future, opts.timeout);
    };
    let deadline = Instant::now() + opts.upload_budget(len);
    let src = super::limit::limited(file.take(len), &opts.upload_limit);
    match send_body(&outgoing, src, len, opts.timeout, deadline) {
        Ok(()) => {
            OutgoingBody::finish(outgoing, None).map_err(map_code)?;
            response(&future, opts.timeout)
        }
        Err(e) => {
            // Dropping an unfinished body aborts the request. The server may already have
            // answered (a 401 or 413 before reading the body), or the host may know why the
            // body could not go (connection refused, reset): either says more than the
            // closed body stream.
            drop(outgoing);
            match outcome(&future, opts.timeout.min(Duration::from_secs(5))) {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(code)) => Err(map_code(code)),
                Err(_) => Err(e),
            }
        }
    }
}

impl Http for WasiHttp {
    fn call(&self, req: Request) -> Result<Response, HttpError> {
        let Request {
            method,
            url,
            headers,
            body,
        } = req;
        let (scheme, authority, path) = split_url(&url)?;
        let mut list: Vec<(String, Vec<u8>)> = headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_bytes()))
            .collect();
        list.push((
            "user-agent".into(),
            format!("swiftdup/{}", env!("CARGO_PKG_VERSION")).into_bytes(),
        ));
        if method == Method::Put {
            let len = body.as_ref().map_or(0, |b| b.len);
            list.push(("content-length".into(), len.to_string().into_bytes()));
        }
        let fields = Fields::from_list(&list).map_err(|e| {
            let names: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
            HttpError::new(
                ErrorKind::Invalid,
                format!("request headers {names:?} refused: {e:?}"),
            )
        })?;
        let request = OutgoingRequest::new(fields);
        let m = match method {
            Method::Get => ht::Method::Get,
            Method::Head => ht::Method::Head,
            Method::Put => ht::Method::Put,
            Method::Delete => ht::Method::Delete,
        };
        request.set_method(&m).map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&path))
            .map_err(|()| invalid("path"))?;

        let body = body.filter(|b| b.len > 0).map(|b| (b.file, b.len));
        let resp = exchange(&self.opts, request, body)?;
        let status = resp.status();
        let headers = {
            let fields = resp.headers();
            fields
                .entries()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect()
        };
        let incoming = resp
            .consume()
            .map_err(|()| HttpError::new(ErrorKind::Io, "the response body was already taken"))?;
        let stream = incoming
            .stream()
            .map_err(|()| HttpError::new(ErrorKind::Io, "the response body was already taken"))?;
        let reader = BodyReader {
            stream,
            _body: incoming,
            _response: resp,
            timeout: self.opts.timeout,
            deadline: Instant::now() + self.opts.download_budget(),
            eof: false,
        };
        Ok(Response {
            status,
            headers,
            body: super::limit::limited(reader, &self.opts.download_limit),
        })
    }
}

/// A response body as `Read`. Fields drop in declaration order: the stream before its
/// body, the body before its response.
struct BodyReader {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    timeout: Duration,
    deadline: Instant,
    eof: bool,
}

fn io_err(e: HttpError) -> io::Error {
    let kind = match e.kind {
        ErrorKind::Timeout => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.eof {
            return Ok(0);
        }
        loop {
            match self.stream.read(buf.len() as u64) {
                Ok(chunk) if !chunk.is_empty() => {
                    if chunk.len() > buf.len() {
                        return Err(io::Error::other("the host returned more than asked for"));
                    }
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    return Ok(chunk.len());
                }
                Ok(_) => {
                    let left = self.deadline.saturating_duration_since(Instant::now());
                    let ready = {
                        let p = self.stream.subscribe();
                        wait(&p, self.timeout.min(left))
                    };
                    if !ready {
                        let detail = if Instant::now() >= self.deadline {
                            "the download did not finish within its budget"
                        } else {
                            "nothing received for the whole timeout"
                        };
                        return Err(io_err(HttpError::new(ErrorKind::Timeout, detail)));
                    }
                }
                Err(StreamError::Closed) => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(e) => return Err(io_err(stream_err(e, "receiving the body"))),
            }
        }
    }
}
