//! `swiftkeys://CONTAINER[/PREFIX]`: an OpenStack Swift container reached with a container
//! key (the provider's container-keys middleware), never with an auth token.
//!
//! Configuration comes from the environment: `SWIFT_STORAGE_URL` (the account URL,
//! `https://host/v1/AUTH_<project>`), `SWIFT_CONTAINER_FULL_TOKEN` (read and write) and
//! `SWIFT_CONTAINER_READ_TOKEN` (read only). Every request carries the key in
//! `X-Container-Meta-Full-Key` or `X-Container-Meta-Read-Key`; an `X-Auth-Token` would make
//! Swift bypass the key check, so none is ever sent. Only container- and object-level
//! requests are made: a key is not valid for the account.
//!
//! This module owns what makes Swift reliable to talk to: which failures another attempt
//! may cure (5xx, 429 with its `Retry-After`, resets, truncated or mismatched transfers,
//! returned as `Error::Transient` for `backend::retry`, which decides when to try again), an
//! MD5 `ETag` on every upload and its check on downloads, paginated listings, and errors
//! that name the object and carry Swift's `X-Trans-Id` for the operator.

mod config;
mod listing;

use config::*;
pub use config::{SwiftConfig, ENV_FULL_KEY, ENV_READ_KEY, ENV_STORAGE_URL};

use super::{Access, Backend, Listed, Options};
use crate::backend::http::{self, encode, encode_path, Http, HttpError, Method, Request, Response};
use crate::error::{Error, Result};
use crate::{interrupt, log};
use md5::{Digest, Md5};
use serde_json::json;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The containerkeys middleware's answer to a wrong key; other 401s come from normal auth.
const KEY_INVALID_MARKER: &str = "Auth Key invalid";

/// Containers that answered to a key in this process, as SHA-256 of (container URL, key
/// header, key): the key itself is not kept a second time.
static CHECKED: std::sync::Mutex<Vec<[u8; 32]>> = std::sync::Mutex::new(Vec::new());

fn checked() -> std::sync::MutexGuard<'static, Vec<[u8; 32]>> {
    CHECKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which of a variable's keys this process uses for a container, shared by every backend
/// it opens on it: a rejected key is given up once, for the whole run, never tried again.
struct Rotation {
    current: AtomicUsize,
    /// An older key's acceptance has been reported.
    warned: AtomicBool,
}

type Rotations = Vec<([u8; 32], std::sync::Arc<Rotation>)>;
static ROTATIONS: std::sync::Mutex<Rotations> = std::sync::Mutex::new(Vec::new());

fn rotation(id: [u8; 32]) -> std::sync::Arc<Rotation> {
    let mut r = ROTATIONS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, rot)) = r.iter().find(|(i, _)| *i == id) {
        return rot.clone();
    }
    let rot = std::sync::Arc::new(Rotation {
        current: AtomicUsize::new(0),
        warned: AtomicBool::new(false),
    });
    r.push((id, rot.clone()));
    rot
}

/// SHA-256 of the parts, each ended by a NUL: an identity that does not keep the key.
fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// The swiftkeys:// backend.
pub struct SwiftBackend {
    http: Box<dyn Http>,
    /// `<storage url>/<encoded container>`.
    container_url: String,
    container: String,
    /// `PREFIX/`, or empty: prepended to every object name.
    prefix: String,
    key_header: &'static str,
    /// The variable the keys came from, for messages.
    key_var: &'static str,
    /// Its keys, newest first (more than one during a rotation).
    keys: Vec<Key>,
    /// Which of them is used (shared by the process's backends on this container).
    rotation: std::sync::Arc<Rotation>,
    /// Opened for a writing command (and so with the full key).
    writable: bool,
    /// SHA-256 of (container URL, key header, key) for each key: entries in `CHECKED`.
    ids: Vec<[u8; 32]>,
    /// The container has answered the key in use (here or in another backend of this
    /// process). Until then a 401 may also mean that the container does not exist.
    answered: AtomicBool,
}

/// What one attempt of a request came to.
enum Step<T> {
    Done(T),
    /// A transient failure: try again after the backoff (or at least `after`).
    Retry(Error, Option<Duration>),
    /// A failure that another attempt would repeat.
    Fail(Error),
}

impl SwiftBackend {
    /// Open `swiftkeys://CONTAINER[/PREFIX]` with the configuration in the environment.
    pub fn open(url: &str, access: Access, opts: &Options) -> Result<SwiftBackend> {
        let (container, prefix) = parse_url(url)?;
        SwiftBackend::with_config(&container, &prefix, SwiftConfig::from_env()?, access, opts)
    }

    /// Open a container with an explicit configuration: check the keys against `access`.
    /// No request is made: the first one, whatever it is, tells a wrong key from a missing
    /// container (see `container_401`), so a run pays no request for the check.
    pub fn with_config(
        container: &str,
        prefix: &str,
        cfg: SwiftConfig,
        access: Access,
        opts: &Options,
    ) -> Result<SwiftBackend> {
        let storage_url = cfg.storage_url.trim_end_matches('/');
        if storage_url.is_empty() {
            return Err(Error::Usage(format!(
                "{ENV_STORAGE_URL} is not set: swiftkeys:// needs the account's storage URL \
                 (https://host/v1/AUTH_<project>)"
            )));
        }
        check_storage_url(storage_url)?;
        for (var, key) in [(ENV_FULL_KEY, &cfg.full_key), (ENV_READ_KEY, &cfg.read_key)] {
            if let Some(k) = key {
                let keys = split_keys(k);
                if keys.is_empty() {
                    check_key(var, "")?;
                }
                for k in &keys {
                    check_key(var, k)?;
                }
            }
        }
        let (key_header, key) = match (access, cfg.full_key, cfg.read_key) {
            (Access::Write, Some(full), _) => (FULL_KEY_HEADER, full),
            (Access::Write, None, Some(_)) => {
                return Err(Error::AccessDenied {
                    object: container.to_string(),
                    detail: format!(
                        "this command writes to the container and needs its full key \
                         ({ENV_FULL_KEY}); only a read key ({ENV_READ_KEY}) is set"
                    ),
                    trans_id: None,
                })
            }
            (Access::Write, None, None) => {
                return Err(Error::Usage(format!(
                    "{ENV_FULL_KEY} is not set: this command writes to swiftkeys://{container} \
                     and needs the container's full key (or the file {ENV_FULL_KEY}_FILE names)"
                )))
            }
            // Reading prefers the read key: the full key need not be handed to restores.
            (Access::Read, _, Some(read)) => (READ_KEY_HEADER, read),
            (Access::Read, Some(full), None) => (FULL_KEY_HEADER, full),
            (Access::Read, None, None) => {
                return Err(Error::Usage(format!(
                    "neither {ENV_READ_KEY} nor {ENV_FULL_KEY} is set (nor their _FILE forms): \
                     swiftkeys://{container} needs a container key"
                )))
            }
        };
        let http = http::client(&opts.http).map_err(|e| Error::Usage(e.detail))?;
        let container_url = format!("{storage_url}/{}", encode(container));
        let keys = split_keys(&key);
        let ids: Vec<[u8; 32]> = keys
            .iter()
            .map(|k| digest(&[container_url.as_str(), key_header, k]))
            .collect();
        let mut all = vec![container_url.as_str(), key_header];
        all.extend(keys.iter().map(String::as_str));
        let rotation = rotation(digest(&all));
        let current = rotation.current.load(Ordering::Relaxed);
        let answered = checked().contains(&ids[current]);
        Ok(SwiftBackend {
            http,
            container_url,
            container: container.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            key_header,
            key_var: if key_header == FULL_KEY_HEADER {
                ENV_FULL_KEY
            } else {
                ENV_READ_KEY
            },
            keys: keys.into_iter().map(Key).collect(),
            rotation,
            writable: access == Access::Write,
            ids,
            answered: AtomicBool::new(answered),
        })
    }

    /// Remember that the container took the key: one run opens it several times (the lock,
    /// its renewer, the verb, upload threads), and a 401 after that is the key (rotated
    /// since), never a missing container.
    fn mark_answered(&self) {
        if !self.answered.swap(true, Ordering::Relaxed) {
            let used = self.rotation.current.load(Ordering::Relaxed);
            let mut c = checked();
            if !c.contains(&self.ids[used]) {
                c.push(self.ids[used]);
            }
            drop(c);
            if used > 0 && !self.rotation.warned.swap(true, Ordering::Relaxed) {
                log::warn(
                    "warning",
                    &format!(
                        "container {} rejected the newest key of {} and accepted key {} of \
                         {}: give the container the newest key (or take it out of the \
                         variable) to finish the rotation",
                        self.container,
                        self.key_var,
                        used + 1,
                        self.keys.len()
                    ),
                    vec![
                        ("code", json!("older_key")),
                        ("variable", json!(self.key_var)),
                        ("key_number", json!(used + 1)),
                    ],
                );
            }
        }
    }

    /// After the key in use (`used`) was rejected: move the process on to the next key,
    /// if there is one. Each key is given up once per process, never tried again.
    fn next_key(&self, used: usize) -> bool {
        if used + 1 >= self.keys.len() {
            return false;
        }
        // Another backend of this process may have moved on already: then use its choice.
        let _ = self.rotation.current.compare_exchange(
            used,
            used + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let now = self.rotation.current.load(Ordering::Relaxed);
        self.answered
            .store(checked().contains(&self.ids[now]), Ordering::Relaxed);
        true
    }

    /// A 401: the key, or, before the container has ever answered it, possibly the
    /// container (see `container_401`).
    fn unauthorized(&self, object: &str, resp: &mut Response) -> Error {
        if self.answered.load(Ordering::Relaxed) {
            Error::KeyRejected {
                object: object.to_string(),
                trans_id: trans_id(resp),
            }
        } else {
            self.container_401(resp)
        }
    }

    /// A 401 on the container. The middleware answers a wrong key with "Auth Key invalid";
    /// a container that does not exist (or has no keys) is passed on to normal auth, which
    /// refuses a tokenless request with a 401 of its own.
    fn container_401(&self, resp: &mut Response) -> Error {
        let trans_id = trans_id(resp);
        // The marker is looked for in the raw bytes: the excerpt is for people.
        let (_, raw) = http::error_body(&mut resp.body);
        if String::from_utf8_lossy(&raw).contains(KEY_INVALID_MARKER) {
            Error::KeyRejected {
                object: self.container.clone(),
                trans_id,
            }
        } else {
            Error::TargetMissing(format!(
                "container {} does not exist or has no container keys: Swift's normal auth \
                 refused the keyed request (HTTP 401{}); create the container and set its \
                 keys first (swiftdup creates nothing)",
                self.container,
                tid_suffix(&trans_id)
            ))
        }
    }

    fn container_missing(&self, resp: &Response) -> Error {
        Error::TargetMissing(format!(
            "container {} does not exist (HTTP 404{}); create it and set its keys first \
             (swiftdup creates nothing)",
            self.container,
            tid_suffix(&trans_id(resp))
        ))
    }

    /// The key in use.
    fn key(&self) -> &Key {
        &self.keys[self
            .rotation
            .current
            .load(Ordering::Relaxed)
            .min(self.keys.len() - 1)]
    }

    /// A request with the key header (and never an auth token).
    fn req(&self, method: Method, url: String) -> Request {
        Request {
            method,
            url,
            headers: vec![(self.key_header.to_string(), self.key().0.clone())],
            body: None,
        }
    }

    fn object_name(&self, name: &str) -> Result<String> {
        if name.is_empty() {
            return Err(Error::Usage("invalid object name \"\"".into()));
        }
        Ok(format!("{}{name}", self.prefix))
    }

    fn object_url(&self, name: &str) -> Result<String> {
        Ok(format!(
            "{}/{}",
            self.container_url,
            encode_path(&self.object_name(name)?)
        ))
    }

    /// Refuse a write before any request when the backend was opened for reading.
    fn check_writable(&self, name: &str) -> Result<()> {
        if self.writable {
            return Ok(());
        }
        let detail = if self.key_header == READ_KEY_HEADER {
            format!("a read key ({ENV_READ_KEY}) cannot write: set the full key ({ENV_FULL_KEY})")
        } else {
            "the target was opened read-only".to_string()
        };
        Err(Error::AccessDenied {
            object: name.to_string(),
            detail,
            trans_id: None,
        })
    }

    /// One attempt at a request: `make` builds it (a fresh body reader from the start),
    /// `handle` judges the response. A failure another attempt may cure comes back as
    /// `Error::Transient`, for `backend::retry` to try again.
    fn request<T>(
        &self,
        object: &str,
        mut make: impl FnMut() -> Result<Request>,
        mut handle: impl FnMut(Response) -> Step<T>,
    ) -> Result<T> {
        let (step, method) = loop {
            interrupt::check()?;
            let used = self.rotation.current.load(Ordering::Relaxed);
            let req = make()?;
            let method = req.method;
            let step = match self.http.call(req) {
                Ok(resp) => {
                    if (200..300).contains(&resp.status) {
                        self.mark_answered();
                    }
                    handle(resp)
                }
                Err(e) => transport_error(object, e),
            };
            // A rejected key, with another in the variable: the same request with it.
            if matches!(step, Step::Fail(Error::KeyRejected { .. })) && self.next_key(used) {
                continue;
            }
            break (step, method);
        };
        match step {
            Step::Done(t) => Ok(t),
            Step::Fail(e) => Err(e),
            Step::Retry(err, after) => Err(Error::Transient {
                err: Box::new(err),
                after,
                method: method.as_str(),
            }),
        }
    }

    /// GET an object into `dest`, checked against Swift's Etag or, given one, a SHA-1.
    fn download(&self, name: &str, dest: &mut File, sha1: Option<&str>) -> Result<u64> {
        let url = self.object_url(name)?;
        self.request(
            name,
            || Ok(self.req(Method::Get, url.clone())),
            |mut resp| match resp.status {
                200 => receive(name, &mut resp, dest, sha1),
                404 => Step::Fail(Error::NotFound(name.to_string())),
                _ => self.status_error(name, &mut resp),
            },
        )
    }

    /// The shared judgement of a status the caller did not handle itself.
    fn status_error<T>(&self, object: &str, resp: &mut Response) -> Step<T> {
        let status = resp.status;
        let trans_id = trans_id(resp);
        let backend = |detail: String| Error::Backend {
            object: object.to_string(),
            detail,
            trans_id: trans_id.clone(),
        };
        match status {
            401 => Step::Fail(self.unauthorized(object, resp)),
            403 => Step::Fail(Error::AccessDenied {
                object: object.to_string(),
                detail: format!(
                    "Swift refused the operation: {}",
                    status_text(403, &error_body(resp))
                ),
                trans_id,
            }),
            408 | 409 | 429 | 498 | 500 | 502 | 503 | 504 => {
                let after = retry_after(resp);
                let body = error_body(resp);
                Step::Retry(backend(status_text(status, &body)), after)
            }
            411 => Step::Fail(backend(
                "Swift wants a length (HTTP 411 Length Required): something between swiftdup \
                 and Swift dropped the Content-Length header"
                    .into(),
            )),
            413 => Step::Fail(backend(
                "object too large for Swift (HTTP 413; the limit is usually 5 GiB): lower \
                 --volsize"
                    .into(),
            )),
            422 => Step::Fail(backend(
                "Swift received bytes whose MD5 differs from the ETag sent (HTTP 422): the \
                 spooled file changed during the upload or the data was damaged on the way"
                    .into(),
            )),
            _ => {
                let body = error_body(resp);
                Step::Fail(backend(format!(
                    "unexpected {}",
                    status_text(status, &body)
                )))
            }
        }
    }
}

impl SwiftBackend {
    fn put_with(&self, name: &str, src: &Path, ttl: Option<std::time::Duration>) -> Result<()> {
        self.check_writable(name)?;
        let url = self.object_url(name)?;
        let (md5, len) = md5_file(src)?;
        self.request(
            name,
            || {
                let file = File::open(src).map_err(|e| Error::io(src.display(), e))?;
                let mut req = self.req(Method::Put, url.clone());
                req.headers.push(("ETag".into(), md5.clone()));
                if let Some(ttl) = ttl {
                    req.headers
                        .push(("X-Delete-After".into(), ttl.as_secs().max(1).to_string()));
                }
                req.headers
                    .push(("Content-Type".into(), "application/octet-stream".into()));
                req.body = Some(http::Body { file, len });
                Ok(req)
            },
            |mut resp| match resp.status {
                201 => {
                    drain(&mut resp);
                    match resp.header("etag").map(unquote) {
                        // Swift computed the MD5 of what it stored: it must be ours.
                        Some(etag) if !etag.eq_ignore_ascii_case(&md5) => Step::Retry(
                            Error::Backend {
                                object: name.to_string(),
                                detail: format!(
                                    "Swift stored the object with ETag {etag}, expected {md5}"
                                ),
                                trans_id: trans_id(&resp),
                            },
                            None,
                        ),
                        _ => Step::Done(()),
                    }
                }
                404 => Step::Fail(self.container_missing(&resp)),
                _ => self.status_error(name, &mut resp),
            },
        )
    }
}

impl Backend for SwiftBackend {
    fn put(&self, name: &str, src: &Path) -> Result<()> {
        self.put_with(name, src, None)
    }

    fn put_expiring(&self, name: &str, src: &Path, ttl: std::time::Duration) -> Result<()> {
        // Swift deletes it by itself: a lock left by a killed job does not linger.
        self.put_with(name, src, Some(ttl))
    }

    fn get(&self, name: &str, dest: &mut File) -> Result<u64> {
        self.download(name, dest, None)
    }

    fn get_sha1(&self, name: &str, dest: &mut File, sha1: &str) -> Result<u64> {
        self.download(name, dest, Some(sha1))
    }

    fn list_detailed(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.list_all(prefix)
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.check_writable(name)?;
        let url = self.object_url(name)?;
        self.request(
            name,
            || Ok(self.req(Method::Delete, url.clone())),
            |mut resp| match resp.status {
                // Already gone is what a delete wants.
                200..=299 | 404 => {
                    drain(&mut resp);
                    Step::Done(())
                }
                _ => self.status_error(name, &mut resp),
            },
        )
    }

    fn describe(&self) -> String {
        format!(
            "swiftkeys://{}/{}",
            self.container,
            self.prefix.trim_end_matches('/')
        )
        .trim_end_matches('/')
        .to_string()
    }
}

/// Stream a 200 response into `dest` (emptied first: this may be a retry), checking the
/// length, then the bytes against `sha1` where the caller knows it, else against the Etag
/// (the MD5 of a plain object; large objects have none).
fn receive(name: &str, resp: &mut Response, dest: &mut File, sha1: Option<&str>) -> Step<u64> {
    let local = |e: io::Error| Step::Fail(Error::io(format!("download of {name}"), e));
    if let Err(e) = dest.set_len(0).and_then(|_| dest.seek(SeekFrom::Start(0))) {
        return local(e);
    }
    let tid = trans_id(resp);
    let retry = |detail: String| {
        Step::Retry(
            Error::Backend {
                object: name.to_string(),
                detail,
                trans_id: tid.clone(),
            },
            None,
        )
    };
    let expected_len: Option<u64> = resp.header("content-length").and_then(|v| v.parse().ok());
    // Large objects (SLO, DLO) have an Etag that is not the MD5 of the content.
    let expected_md5 = match resp.header("etag") {
        Some(e)
            if resp.header("x-static-large-object").is_none()
                && resp.header("x-object-manifest").is_none()
                && !e.starts_with('"')
                && e.len() == 32
                && e.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(e.to_ascii_lowercase())
        }
        _ => None,
    };
    let mut sum = match sha1 {
        Some(_) => Sum::Sha1(sha1::Sha1::new()),
        None => Sum::Md5(Md5::new()),
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut n: u64 = 0;
    loop {
        let got = match resp.body.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return retry(format!("download broke off after {n} bytes: {e}")),
        };
        sum.update(&buf[..got]);
        if let Err(e) = dest.write_all(&buf[..got]) {
            return local(e);
        }
        n += got as u64;
    }
    if let Some(len) = expected_len {
        if n != len {
            return retry(format!("download truncated: {n} of {len} bytes"));
        }
    }
    let got = sum.hex();
    // The SHA-1 matches: the bytes are the ones the manifest names, whatever the Etag.
    if sha1 == Some(got.as_str()) {
        return Step::Done(n);
    }
    // They differ (or there is no SHA-1): Swift's Etag tells bytes damaged on the way,
    // worth fetching again, from what Swift holds.
    let got_md5 = match sha1 {
        None => got.clone(),
        Some(_) if expected_md5.is_none() => String::new(),
        Some(_) => match super::digest_file::<Md5>(&mut *dest) {
            Ok(m) => m,
            Err(e) => return local(e),
        },
    };
    if let Some(md5) = expected_md5.filter(|m| *m != got_md5) {
        return Step::Retry(
            Error::Integrity {
                object: name.to_string(),
                detail: format!(
                    "downloaded bytes have MD5 {got_md5} but Swift's Etag is {md5}{}",
                    tid_suffix(&tid)
                ),
            },
            None,
        );
    }
    match sha1 {
        Some(want) => Step::Fail(super::sha1_mismatch(name, want, &got)),
        None => Step::Done(n),
    }
}

/// The running checksum of a download.
enum Sum {
    Md5(Md5),
    Sha1(sha1::Sha1),
}

impl Sum {
    fn update(&mut self, b: &[u8]) {
        match self {
            Sum::Md5(h) => h.update(b),
            Sum::Sha1(h) => h.update(b),
        }
    }

    fn hex(self) -> String {
        match self {
            Sum::Md5(h) => crate::archive::hex(&h.finalize()),
            Sum::Sha1(h) => crate::archive::hex(&h.finalize()),
        }
    }
}

/// A transport failure as a step: retry what may pass next time.
fn transport_error<T>(object: &str, e: HttpError) -> Step<T> {
    let retryable = e.is_retryable();
    let err = Error::Backend {
        object: object.to_string(),
        detail: e.to_string(),
        trans_id: None,
    };
    if retryable {
        Step::Retry(err, None)
    } else {
        Step::Fail(err)
    }
}

/// MD5 (hex) and length of a file, read once before an upload.
fn md5_file(path: &Path) -> Result<(String, u64)> {
    let io_err = |e| Error::io(path.display(), e);
    let mut f = File::open(path).map_err(io_err)?;
    let md5 = super::digest_file::<Md5>(&mut f).map_err(io_err)?;
    let len = f.stream_position().map_err(io_err)?;
    Ok((md5, len))
}

fn trans_id(resp: &Response) -> Option<String> {
    resp.header("x-trans-id")
        .or_else(|| resp.header("x-openstack-request-id"))
        .map(str::to_string)
}

fn tid_suffix(t: &Option<String>) -> String {
    t.as_ref()
        .map(|t| format!(", X-Trans-Id {t}"))
        .unwrap_or_default()
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Swift and is ignored).
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(super::retry::MAX_DELAY.as_secs_f64())))
}

/// The start of an error response's body, for messages (see `http::error_body`: short,
/// one line, secrets redacted: a gateway in front of Swift may echo the key header).
fn error_body(resp: &mut Response) -> String {
    http::error_body(&mut resp.body).0
}

/// `HTTP 503 Service Unavailable (body)`, for messages.
fn status_text(status: u16, body: &str) -> String {
    let name = match status {
        403 => "Forbidden",
        408 => "Request Timeout",
        409 => "Conflict",
        429 => "Too Many Requests",
        498 => "Rate Limited",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    };
    let mut s = format!("HTTP {status}");
    if !name.is_empty() {
        s.push(' ');
        s.push_str(name);
    }
    if !body.is_empty() {
        s.push_str(&format!(" ({body})"));
    }
    s
}

/// Read a small success body to its end so the connection can be reused.
fn drain(resp: &mut Response) {
    // Failing to drain only costs the connection, not the result.
    let _ = io::copy(&mut resp.body.by_ref().take(1 << 20), &mut io::sink());
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::listing::parse_listing;
    use super::*;

    #[test]
    fn a_key_variable_holds_keys_newest_first() {
        assert_eq!(split_keys("a"), ["a"]);
        assert_eq!(split_keys("new,old"), ["new", "old"]);
        // A line break is not a separator in a variable: it stays, and is refused.
        assert_eq!(split_keys("new\n"), ["new\n"]);
        assert!(split_keys(",").is_empty());
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("swiftkeys://c").unwrap(), ("c".into(), "".into()));
        assert_eq!(
            parse_url("swiftkeys://c/a/b/").unwrap(),
            ("c".into(), "a/b".into())
        );
        assert!(matches!(parse_url("swiftkeys:///x"), Err(Error::Usage(_))));
    }

    #[test]
    fn listing_json() {
        assert_eq!(
            parse_listing(
                br#"[{"name":"a b","bytes":1,"hash":"D41D8CD98F00B204E9800998ECF8427E"},
                     {"subdir":"x/"},{"name":"c","hash":"not-an-md5"}]"#
            )
            .unwrap(),
            vec![
                Listed {
                    name: "a b".into(),
                    size: 1,
                    md5: Some("d41d8cd98f00b204e9800998ecf8427e".into())
                },
                Listed {
                    name: "c".into(),
                    size: 0,
                    md5: None
                }
            ]
        );
        assert!(parse_listing(b"[{\"na").is_err());
        assert!(parse_listing(b"{}").is_err());
    }

    fn cfg(full: Option<&str>, read: Option<&str>) -> SwiftConfig {
        SwiftConfig {
            // Nothing listens on port 9: the checks below must fail before connecting.
            storage_url: "http://127.0.0.1:9/v1/AUTH_x".into(),
            full_key: full.map(String::from),
            read_key: read.map(String::from),
        }
    }

    #[test]
    fn key_checks_come_before_any_request() {
        let refused = |c: SwiftConfig, access: Access| match SwiftBackend::with_config(
            "c",
            "",
            c,
            access,
            &Options::default(),
        ) {
            Err(e) => e,
            Ok(_) => panic!("opened without a usable key"),
        };
        let e = refused(cfg(None, Some("r")), Access::Write);
        assert!(matches!(e, Error::AccessDenied { .. }), "{e}");
        assert!(e.to_string().contains(ENV_FULL_KEY), "{e}");
        assert!(!e.to_string().contains("\"r\""));
        for (c, access, var) in [
            (cfg(None, None), Access::Write, ENV_FULL_KEY),
            (cfg(None, None), Access::Read, ENV_READ_KEY),
            (
                SwiftConfig {
                    storage_url: String::new(),
                    ..cfg(Some("f"), None)
                },
                Access::Read,
                ENV_STORAGE_URL,
            ),
        ] {
            let e = refused(c, access);
            assert!(matches!(&e, Error::Usage(m) if m.contains(var)), "{e}");
        }
    }

    #[test]
    fn storage_url_shape() {
        for ok in [
            "https://swift.example/v1/AUTH_p",
            "http://127.0.0.1:8080/v1/AUTH_test/",
            "http://u:pw@127.0.0.1:8080/v1/AUTH_test",
            "https://[::1]:443/v1/AUTH_p/more",
            "https://cloud.example/object/v1/AUTH_p",
        ] {
            assert!(check_storage_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://swift.example",
            "https://swift.example/",
            "https://swift.example/v1",
            "https://swift.example/v1/",
            "https://swift.example:80a/v1/AUTH_p",
            "https:///v1/AUTH_p",
            "https://swift.example/v1/AUTH_p?x=1",
            "https://swift.example/v1/AUTH_p\n",
            "ftp://swift.example/v1/AUTH_p",
            "https://u:hunter2@swift.example/v3",
        ] {
            let e = check_storage_url(bad).expect_err(bad);
            let m = e.to_string();
            assert!(m.contains(ENV_STORAGE_URL), "{m}");
            assert!(!m.contains("hunter2"), "{m}");
        }
    }

    #[test]
    fn keys_that_cannot_be_sent_are_named_not_shown() {
        for bad in ["k3y\n", "k3y\r\nX-Auth-Token: t", " k3y", "k\x00y"] {
            let e = check_key(ENV_READ_KEY, bad).expect_err(bad);
            assert!(
                matches!(&e, Error::Usage(m) if m.contains(ENV_READ_KEY)),
                "{e}"
            );
            assert!(!e.to_string().contains("k3y"), "{e}");
        }
        assert!(check_key(ENV_FULL_KEY, "a-Key_with/odd+chars=").is_ok());
    }

    #[test]
    fn the_key_is_never_in_debug_output() {
        let o = Options::default();
        // Opening makes no request: a port nothing listens on will do.
        let cfg = SwiftConfig {
            storage_url: "http://127.0.0.1:9/v1/AUTH_x".into(),
            full_key: Some("k3y-s3cret".into()),
            read_key: None,
        };
        let b = SwiftBackend::with_config("c", "", cfg, Access::Read, &o).unwrap();
        assert!(format!("{:?}", b.key()).contains("redacted"));
        assert!(!format!("{:?}", b.key()).contains("s3cret"));
    }
}
