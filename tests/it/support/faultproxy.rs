//! A small fault-injecting HTTP/1.1 proxy for the Swift tests (std::net and threads only).
//!
//! It sits between a backend and the real Swift on loopback, records every request it sees
//! (method, path, headers), and injects the fault it is set to into the next requests:
//! connection resets, canned statuses (503 bursts, 429 with `Retry-After`, 401, ...),
//! stalls (accept and never answer), and GET bodies cut in half. Every client connection
//! carries exactly one request (the proxy answers with `Connection: close`), which keeps the
//! request count exact.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What to do to the next requests. Counts go down as requests are hit; at zero the proxy
/// forwards again.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Reset (TCP RST) the connection of the next `n` requests, after reading their head.
    Reset(u32),
    /// Answer the next `n` requests with `status` (and `Retry-After` when given), without
    /// forwarding them.
    Status {
        status: u16,
        n: u32,
        retry_after: Option<u32>,
    },
    /// Accept the next `n` requests and never answer them.
    Stall(u32),
    /// Stall the next `n` object GETs whose path ends with `suffix` (others pass).
    StallGet { suffix: String, n: u32 },
    /// Forward the next `n` object PUTs, but answer with an `ETag` that is not the MD5 of
    /// what was stored, as a proxy that damaged the body on its way would.
    WrongEtag(u32),
    /// Forward the next `n` object GETs, but pass on only half of a 200 response's body.
    TruncateGet(u32),
    /// Forward the next `n` object GETs whole, but with one byte of a 200 response's body
    /// changed: damage on the way that only a checksum notices.
    FlipGet(u32),
    /// Forward the next `n` object GETs, passing a 200 response's body on at about
    /// 10 KB/s: a link that is slow but never idle.
    TrickleGet(u32),
}

impl Fault {
    /// `n` answers of `status`, without `Retry-After`.
    pub fn status(status: u16, n: u32) -> Fault {
        Fault::Status {
            status,
            n,
            retry_after: None,
        }
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// Whether a fault was injected into it.
    pub faulted: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    fault: Mutex<Fault>,
    /// `set_every`: every k-th request starts this fault (when none is under way).
    every: Mutex<Option<(u64, Fault)>>,
    requests: std::sync::atomic::AtomicU64,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    /// Stalled connections, held open until the proxy is dropped.
    stalled: Mutex<Vec<TcpStream>>,
}

/// A running proxy; stops (and closes stalled connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    /// The upstream storage URL's path (`/v1/AUTH_test`).
    path: String,
    state: Arc<State>,
}

#[derive(Clone, Copy, PartialEq)]
enum Body {
    Whole,
    Half,
    Flipped,
    Trickle,
    WrongEtag,
}

enum Action {
    Forward(Body),
    Reset,
    Status(u16, Option<u32>),
    Stall,
}

impl FaultProxy {
    /// Start a proxy in front of `storage_url` (`http://127.0.0.1:PORT/v1/AUTH_x`).
    pub fn start(storage_url: &str) -> FaultProxy {
        let rest = storage_url
            .strip_prefix("http://")
            .expect("the test Swift speaks plain http");
        let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let upstream: SocketAddr = hostport.parse().expect("storage URL host must be IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            fault: Mutex::new(Fault::None),
            every: Mutex::new(None),
            requests: std::sync::atomic::AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            stalled: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || {
                    // A broken client or upstream connection ends just this exchange.
                    let _ = handle(conn, upstream, &st);
                });
            }
        });
        FaultProxy {
            addr,
            path: path.to_string(),
            state,
        }
    }

    /// The storage URL to give the backend: the same account path, through the proxy.
    pub fn storage_url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    pub fn set(&self, f: Fault) {
        *self.state.fault.lock().unwrap() = f;
    }

    /// Start `f` at every `k`-th request from now on (unless a fault is still under way),
    /// so that faults fall on every kind of request of a whole run.
    pub fn set_every(&self, k: u64, f: Fault) {
        *self.state.every.lock().unwrap() = Some((k.max(1), f));
    }

    /// Every request seen since the last `clear`.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        for s in self.state.stalled.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Decide the fault for one request and use up one count of it.
fn take_fault(st: &State, method: &str, path: &str) -> Action {
    let mut f = st.fault.lock().unwrap();
    let seq = st.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some((k, every)) = &*st.every.lock().unwrap() {
        if seq.is_multiple_of(*k) && matches!(*f, Fault::None) {
            *f = every.clone();
        }
    }
    let (action, left) = match &mut *f {
        Fault::None => return Action::Forward(Body::Whole),
        Fault::Reset(n) => (Action::Reset, n),
        Fault::Status {
            status,
            n,
            retry_after,
        } => (Action::Status(*status, *retry_after), n),
        Fault::Stall(n) => (Action::Stall, n),
        Fault::StallGet { suffix, n } if method == "GET" && path.ends_with(suffix.as_str()) => {
            (Action::Stall, n)
        }
        Fault::StallGet { .. } => return Action::Forward(Body::Whole),
        Fault::WrongEtag(n) if method == "PUT" && !path.contains('?') => {
            (Action::Forward(Body::WrongEtag), n)
        }
        Fault::WrongEtag(_) => return Action::Forward(Body::Whole),
        // Only object downloads: listings (`?format=json`) pass untouched.
        Fault::TruncateGet(n) if method == "GET" && !path.contains('?') => {
            (Action::Forward(Body::Half), n)
        }
        Fault::TrickleGet(n) if method == "GET" && !path.contains('?') => {
            (Action::Forward(Body::Trickle), n)
        }
        Fault::FlipGet(n) if method == "GET" && !path.contains('?') => {
            (Action::Forward(Body::Flipped), n)
        }
        Fault::TruncateGet(_) | Fault::TrickleGet(_) | Fault::FlipGet(_) => {
            return Action::Forward(Body::Whole)
        }
    };
    *left = left.saturating_sub(1);
    if *left == 0 {
        *f = Fault::None;
    }
    action
}

/// An HTTP head: the request or status line, and the headers (lower-case names).
type Head = (String, Vec<(String, String)>);

/// Read an HTTP head (up to the blank line); `None` at a clean end of the stream.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "head cut off"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
}

/// The head again, with `Connection: close` instead of whatever was there, and without
/// `Expect` (the proxy answers the `100 Continue` itself).
fn write_head(w: &mut impl Write, first: &str, headers: &[(String, String)]) -> io::Result<()> {
    let mut s = format!("{first}\r\n");
    for (k, v) in headers {
        if k != "connection" && k != "keep-alive" && k != "expect" {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    s.push_str("connection: close\r\n\r\n");
    w.write_all(s.as_bytes())
}

/// Abort a connection with a TCP RST (SO_LINGER 0), as a crashed proxy or LB would.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn handle(client: TcpStream, upstream: SocketAddr, st: &State) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((first, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    if st.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let action = take_fault(st, &method, &path);
    st.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        faulted: !matches!(action, Action::Forward(Body::Whole)),
    });
    let body_len = content_length(&headers).unwrap_or(0);
    let expects_100 = headers
        .iter()
        .any(|(k, v)| k == "expect" && v.eq_ignore_ascii_case("100-continue"));
    let mut client = client;
    match action {
        Action::Reset => {
            reset(client);
            Ok(())
        }
        Action::Stall => {
            st.stalled.lock().unwrap().push(client);
            Ok(())
        }
        Action::Status(status, retry_after) => {
            // A client waiting for `100 Continue` has sent no body: answer at once, as Swift
            // does. Otherwise take the body first, so the client sees the answer.
            if !expects_100 {
                io::copy(&mut (&mut reader).take(body_len), &mut io::sink())?;
            }
            let mut s = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-length: 0\r\nx-trans-id: txfault{status}\r\nconnection: close\r\n"
            );
            if let Some(a) = retry_after {
                s.push_str(&format!("retry-after: {a}\r\n"));
            }
            s.push_str("\r\n");
            client.write_all(s.as_bytes())?;
            client.flush()
        }
        Action::Forward(body) => {
            let mut up = TcpStream::connect(upstream)?;
            up.set_read_timeout(Some(Duration::from_secs(120)))?;
            write_head(&mut up, &first, &headers)?;
            if expects_100 {
                client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            io::copy(&mut (&mut reader).take(body_len), &mut up)?;
            let mut up_reader = BufReader::new(up);
            let Some((status_line, resp_headers)) = read_head(&mut up_reader)? else {
                return Ok(());
            };
            let resp_headers = if body == Body::WrongEtag {
                resp_headers
                    .into_iter()
                    .map(|(k, v)| match k.as_str() {
                        "etag" => (k, "\"0123456789abcdef0123456789abcdef\"".to_string()),
                        _ => (k, v),
                    })
                    .collect()
            } else {
                resp_headers
            };
            write_head(&mut client, &status_line, &resp_headers)?;
            let ok = status_line.split(' ').nth(1) == Some("200");
            if body == Body::Half && ok {
                let half = content_length(&resp_headers).unwrap_or(0) / 2;
                io::copy(&mut (&mut up_reader).take(half), &mut client)?;
                client.flush()?;
                // Close without the rest: the client sees a short body.
                let _ = client.shutdown(Shutdown::Both);
            } else if body == Body::Flipped && ok {
                let mut whole = Vec::new();
                match content_length(&resp_headers) {
                    Some(n) => (&mut up_reader).take(n).read_to_end(&mut whole)?,
                    None => up_reader.read_to_end(&mut whole)?,
                };
                let mid = whole.len() / 2;
                if let Some(b) = whole.get_mut(mid) {
                    *b ^= 0x20;
                }
                client.write_all(&whole)?;
            } else if body == Body::Trickle && ok {
                let mut buf = [0u8; 1000];
                while !st.stop.load(Ordering::SeqCst) {
                    let n = up_reader.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    client.write_all(&buf[..n])?;
                    thread::sleep(Duration::from_millis(100));
                }
            } else if method != "HEAD" {
                match content_length(&resp_headers) {
                    Some(n) => io::copy(&mut (&mut up_reader).take(n), &mut client)?,
                    None => io::copy(&mut up_reader, &mut client)?,
                };
            }
            client.flush()
        }
    }
}
