//! The native HTTP client: ureq (blocking, no async runtime) over rustls.
//!
//! Trust: Mozilla's roots are built in. A private CA (`SWIFTDUP_CA_FILE` or `SSL_CERT_FILE`,
//! see `Options::ca_file`) is *added* to them rather than replacing them, so pointing
//! `SSL_CERT_FILE` at a corporate bundle never breaks a public endpoint.
//!
//! Timeouts: connecting, waiting for the response headers, and every single read or write
//! are bounded by `Options::timeout` (a stalled peer is noticed quickly); the body as a whole
//! has a budget (`Options::upload_budget`, `Options::download_budget`) large enough for a
//! slow but moving link.

use super::{ErrorKind, Http, HttpError, Method, Options, Request, Response};
use std::io::{self, Read};
use std::path::Path;
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

/// Uploads from this size on ask for `100 Continue` first. Smaller ones are not worth the
/// round trip (and the up to one second ureq waits for a server that never sends a 100).
const EXPECT_CONTINUE_MIN: u64 = 1 << 20;

/// ureq behind the `Http` trait. Connections are pooled by the agent.
pub struct NativeHttp {
    agent: ureq::Agent,
    opts: Options,
}

impl NativeHttp {
    /// Build the client; fails only when the configured CA file is unusable.
    pub fn new(opts: &Options) -> Result<NativeHttp, HttpError> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = opts.ca_file() {
            tls = tls.root_certs(roots_with(&path)?);
        }
        let t = Some(opts.timeout);
        let config = ureq::Agent::config_builder()
            // Statuses are the backend's business: every response comes back as a response.
            .http_status_as_error(false)
            // Swift does not redirect; following one would send the container key elsewhere.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(format!("swiftdup/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .tls_config(tls.build())
            .build();
        Ok(NativeHttp {
            agent: ureq::Agent::new_with_config(config),
            opts: opts.clone(),
        })
    }
}

/// Mozilla's roots plus every certificate in the PEM file at `path`.
fn roots_with(path: &Path) -> Result<RootCerts, HttpError> {
    let bad = |detail: String| {
        HttpError::new(
            ErrorKind::Invalid,
            format!("CA file {}: {detail}", path.display()),
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    let builtin = certs.len();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.len() == builtin {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(RootCerts::from(certs))
}

fn with_headers<B>(
    mut b: ureq::RequestBuilder<B>,
    headers: &[(String, String)],
) -> ureq::RequestBuilder<B> {
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b
}

/// Sort a ureq failure into retryable transport trouble and the rest.
fn map_err(e: ureq::Error) -> HttpError {
    use ureq::Error as E;
    let detail = match &e {
        E::Timeout(t) => match t {
            ureq::Timeout::PerRead => "nothing received for the whole timeout".to_string(),
            ureq::Timeout::PerWrite => "nothing could be sent for the whole timeout".to_string(),
            ureq::Timeout::RecvResponse => "no response within the timeout".to_string(),
            ureq::Timeout::Connect => "no connection within the timeout".to_string(),
            ureq::Timeout::RecvBody => "the download did not finish within its budget".to_string(),
            ureq::Timeout::SendBody => "the upload did not finish within its budget".to_string(),
            other => format!("{other}"),
        },
        // ureq's Display would prefix "io: ".
        E::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    let kind = match e {
        E::Timeout(_) => ErrorKind::Timeout,
        E::HostNotFound | E::ConnectionFailed | E::ConnectProxyFailed(_) => ErrorKind::Connect,
        E::Io(io) => match io.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::NotConnected => ErrorKind::Connect,
            _ => ErrorKind::Io,
        },
        // The peer closed or garbled the exchange: the next connection may do better.
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyStalled => ErrorKind::Io,
        E::Tls(_) | E::Pem(_) | E::Rustls(_) | E::TlsRequired => ErrorKind::Tls,
        _ => ErrorKind::Invalid,
    };
    HttpError::new(kind, detail)
}

/// A response body whose errors read like `call`'s ("timed out: ...").
struct BodyReader(ureq::BodyReader<'static>);

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if !e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
                return e;
            }
            // `From<io::Error>` unwraps the ureq error the reader wrapped.
            let he = map_err(ureq::Error::from(e));
            let kind = match he.kind {
                ErrorKind::Timeout => io::ErrorKind::TimedOut,
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, he.to_string())
        })
    }
}

impl Http for NativeHttp {
    fn call(&self, req: Request) -> Result<Response, HttpError> {
        let (url, headers, a) = (&req.url, &req.headers, &self.agent);
        let result = match req.method {
            Method::Get => with_headers(a.get(url), headers)
                .config()
                .timeout_recv_body(Some(self.opts.download_budget()))
                .build()
                .call(),
            Method::Head => with_headers(a.head(url), headers).call(),
            Method::Delete => with_headers(a.delete(url), headers).call(),
            Method::Put => {
                let len = req.body.as_ref().map_or(0, |b| b.len);
                let mut b = with_headers(a.put(url), headers)
                    // Always a length: Swift answers 411 to a PUT without one (and chunked
                    // uploads cannot be checked against the size we hashed).
                    .header("content-length", len.to_string());
                if len >= EXPECT_CONTINUE_MIN {
                    // Let Swift refuse (401, 413, ...) before a whole volume is sent.
                    b = b.header("expect", "100-continue");
                }
                let b = b
                    .config()
                    .timeout_send_body(Some(self.opts.upload_budget(len)))
                    .build();
                match req.body {
                    Some(body) => {
                        let src = super::limit::limited(
                            body.file.take(body.len),
                            &self.opts.upload_limit,
                        );
                        b.send(ureq::SendBody::from_owned_reader(src))
                    }
                    None => b.send(&[][..]),
                }
            }
        };
        let resp = result.map_err(map_err)?;
        let (parts, body) = resp.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let reader =
            super::limit::limited(BodyReader(body.into_reader()), &self.opts.download_limit);
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body: reader,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_adds_to_mozilla_roots() {
        let dir = std::env::temp_dir().join(format!("swiftdup-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots_with(&empty).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.detail.contains("no PEM certificate"), "{e}");
        let missing = roots_with(&dir.join("missing.pem")).err().unwrap();
        assert!(missing.detail.contains("missing.pem"), "{missing}");

        // Re-encode one of the bundled roots as PEM: it must be accepted and added.
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64(der)
        );
        let one = dir.join("one.pem");
        std::fs::write(&one, pem).unwrap();
        match roots_with(&one).unwrap() {
            RootCerts::Specific(v) => {
                assert_eq!(v.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() + 1)
            }
            _ => panic!("expected specific roots"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn base64(data: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
