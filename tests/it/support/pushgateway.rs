//! A Pushgateway stand-in: accepts pushes on 127.0.0.1 and hands back every request
//! (headers and body) when stopped.

use std::io::Read;
use std::time::Duration;

/// An HTTP listener standing in for a Pushgateway: returns its port and a function that,
/// once the run has exited (so every push it made is queued), returns the raw requests.
pub fn fake_pushgateway() -> (u16, impl FnOnce() -> Vec<String>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let h = std::thread::spawn(move || {
        let mut requests = Vec::new();
        loop {
            let mut c = match l.accept() {
                Ok((c, _)) => c,
                Err(_) if done.load(Ordering::SeqCst) => break,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then Content-Length bytes of body.
            loop {
                let n = c.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            std::io::Write::write_all(
                &mut c,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            requests.push(String::from_utf8_lossy(&buf).into_owned());
        }
        requests
    });
    (port, move || {
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        h.join().unwrap()
    })
}
