//! Structured logging: one JSON object per line on stderr (or readable text on a terminal).
//!
//! Every event has `time` (RFC 3339 UTC), `level`, `event` (a stable name), `msg`, and flat
//! fields. The schema is documented in docs/logs-and-metrics.md.
//!
//! Secrets: callers pass URLs through `redact` and never pass keys or passphrases. As a
//! last line of defence this module also scrubs every event it writes (message and every
//! string field, whatever the code path that built them): the secret values registered
//! with `add_secret` / `add_url_secrets` when the configuration is read become
//! `[redacted]`, and the user information of any `scheme://user:pass@host` in the text is
//! removed. A server that echoes our request headers in an error body, or a URL typed with
//! a password, therefore never reaches the log.

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Mutex, RwLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

struct State {
    format: Format,
    min: Level,
    /// The progress line last drawn on the terminal (see [`Progress`]), to be cleared
    /// before another line is written and drawn again after it.
    live: Option<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    format: Format::Json,
    min: Level::Info,
    live: None,
});

/// Text for a person at a terminal: a live progress line and coloured levels (unless
/// `NO_COLOR` is set, see no-color.org).
fn terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn colour() -> bool {
    terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Clears the live line (`\r`, erase line).
const CLEAR: &str = "\r\x1b[2K";

/// Choose the output format and the lowest level written.
pub fn init(format: Format, min: Level) {
    if let Ok(mut s) = STATE.lock() {
        s.format = format;
        s.min = min;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The version of the event schema (docs/log-events.schema.json), on every JSON event: a
/// field's meaning never changes within a version; new fields may appear.
pub const SCHEMA: &str = "swiftdup.log/1";

/// Emit one event. `fields` are flattened into the object.
pub fn event(level: Level, name: &str, msg: &str, fields: Vec<(&str, Value)>) {
    let Ok(state) = STATE.lock() else { return };
    if level < state.min {
        return;
    }
    let mut line = render(state.format, level, name, msg, fields);
    if state.format == Format::Text && colour() {
        let c = match level {
            Level::Debug => "2",
            Level::Info => "",
            Level::Warn => "33",
            Level::Error => "31",
        };
        if !c.is_empty() {
            line = format!("\x1b[{c}m{line}\x1b[0m");
        }
    }
    let stderr = std::io::stderr();
    let mut lock = stderr.lock();
    match &state.live {
        // Above the live line, which is drawn again below it.
        Some(live) => {
            let _ = write!(lock, "{CLEAR}{line}\n{live}");
        }
        None => {
            let _ = writeln!(lock, "{line}");
        }
    }
}

/// The progress of a long run (backup, restore, verify): a `progress` event every
/// `--progress-interval` seconds, or, when the log is text on a terminal, one line at the
/// bottom redrawn four times a second with files, bytes, rate, and percent and time left
/// when the total is known. Memory: none beyond the line.
pub struct Progress {
    verb: &'static str,
    started: std::time::Instant,
    last_event: std::time::Instant,
    last_draw: std::time::Instant,
    every: Option<std::time::Duration>,
    live: bool,
}

/// Where a run stands: `done` of `total` bytes (the measure of percent and time left),
/// and the fields of the `progress` event.
pub struct Snapshot {
    pub files: u64,
    pub done: u64,
    pub total: Option<u64>,
    pub fields: Vec<(&'static str, Value)>,
}

/// Whether progress shows as a live line: text logs at info level on a terminal.
pub fn live() -> bool {
    match STATE.lock() {
        Ok(s) => s.format == Format::Text && s.min <= Level::Info && terminal(),
        Err(_) => false,
    }
}

const DRAW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl Progress {
    pub fn new(verb: &'static str, interval_secs: u64) -> Progress {
        let live = live();
        let now = std::time::Instant::now();
        Progress {
            verb,
            started: now,
            last_event: now,
            last_draw: now,
            every: (interval_secs > 0 && !live)
                .then(|| std::time::Duration::from_secs(interval_secs)),
            live,
        }
    }

    /// Whether [`Progress::update`] would show anything now: cheap, so that the caller
    /// builds a [`Snapshot`] only then.
    pub fn due(&self) -> bool {
        (self.live && self.last_draw.elapsed() >= DRAW_EVERY)
            || self.every.is_some_and(|e| self.last_event.elapsed() >= e)
    }

    pub fn update(&mut self, s: Snapshot) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = s.done as f64 / secs;
        let share = s
            .total
            .filter(|t| *t > 0)
            .map(|t| (s.done.min(t) as f64 / t as f64, t));
        let eta = share.and_then(|(p, t)| {
            (rate > 0.0 && p > 0.0).then(|| ((t.saturating_sub(s.done)) as f64 / rate) as u64)
        });
        if self.live {
            self.last_draw = std::time::Instant::now();
            let mut line = format!(
                "{}  {} {}  {}",
                self.verb,
                thousands(s.files),
                if s.files == 1 { "file" } else { "files" },
                human_bytes(s.done)
            );
            if let Some((_, t)) = share {
                line.push_str(&format!(" of {}", human_bytes(t)));
            }
            line.push_str(&format!("  {}/s", human_bytes(rate as u64)));
            if let Some((p, _)) = share {
                line.push_str(&format!("  {:.0}%", p * 100.0));
            }
            if let Some(e) = eta {
                line.push_str(&format!("  ETA {}", clock(e)));
            }
            if colour() {
                line = format!("\x1b[36m{line}\x1b[0m");
            }
            if let Ok(mut st) = STATE.lock() {
                let _ = write!(std::io::stderr().lock(), "{CLEAR}{line}");
                st.live = Some(line);
            }
        }
        if self.every.is_some_and(|e| self.last_event.elapsed() >= e) {
            self.last_event = std::time::Instant::now();
            let mut fields = vec![("files", serde_json::json!(s.files))];
            fields.extend(s.fields);
            if let Some((p, t)) = share {
                fields.push(("bytes_total", serde_json::json!(t)));
                fields.push(("percent", serde_json::json!((p * 1000.0).round() / 10.0)));
            }
            if let Some(e) = eta {
                fields.push(("eta_seconds", serde_json::json!(e)));
            }
            let msg = format!("{} files, {} done", thousands(s.files), human_bytes(s.done));
            info("progress", &msg, fields);
        }
    }

    /// Take the live line away (before the summary).
    pub fn finish(&mut self) {
        if let Ok(mut st) = STATE.lock() {
            if st.live.take().is_some() {
                let _ = write!(std::io::stderr().lock(), "{CLEAR}");
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1234567` -> `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `m:ss` or `h:mm:ss`.
fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// One event as a line of the log, scrubbed of secrets.
fn render(
    format: Format,
    level: Level,
    name: &str,
    msg: &str,
    fields: Vec<(&str, Value)>,
) -> String {
    // Scrubbed before formatting: JSON and `{:?}` escaping could otherwise change how a
    // secret with a quote or a backslash in it is spelled, and it would no longer match.
    let msg = scrub(msg);
    let fields = fields.into_iter().map(|(k, v)| (k, scrub_value(v)));
    match format {
        Format::Json => {
            let mut m = Map::new();
            m.insert(
                "time".into(),
                Value::String(crate::archive::time::rfc3339(now())),
            );
            m.insert("level".into(), Value::String(level.as_str().into()));
            m.insert("event".into(), Value::String(name.into()));
            m.insert("msg".into(), Value::String(msg));
            m.insert("schema".into(), Value::String(SCHEMA.into()));
            for (k, v) in fields {
                m.insert(k.into(), v);
            }
            Value::Object(m).to_string()
        }
        Format::Text => {
            let mut s = format!(
                "{} {:5} {}",
                crate::archive::time::rfc3339(now()),
                level.as_str(),
                msg
            );
            for (k, v) in fields {
                match v {
                    Value::String(x) => s.push_str(&format!(" {k}={x:?}")),
                    other => s.push_str(&format!(" {k}={other}")),
                }
            }
            s
        }
    }
}

pub fn info(name: &str, msg: &str, fields: Vec<(&str, Value)>) {
    event(Level::Info, name, msg, fields)
}

pub fn warn(name: &str, msg: &str, fields: Vec<(&str, Value)>) {
    event(Level::Warn, name, msg, fields)
}

pub fn debug(name: &str, msg: &str, fields: Vec<(&str, Value)>) {
    event(Level::Debug, name, msg, fields)
}

/// What a secret value becomes in the log.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this (in bytes) are not registered as secrets: a one-letter key
/// would otherwise blank that letter in every event and make the log unreadable, and a
/// value that short protects nothing anyway. docs/logs-and-metrics.md says so.
pub const MIN_SECRET_LEN: usize = 4;

/// The registered secret values, longest first so that a secret containing another is
/// replaced whole. Written a few times while the configuration is read, read by every
/// event.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn secrets() -> std::sync::RwLockReadGuard<'static, Vec<String>> {
    SECRETS.read().unwrap_or_else(|e| e.into_inner())
}

fn add_forms(forms: &[String]) {
    let mut set = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        if f.len() >= MIN_SECRET_LEN && !set.contains(f) {
            set.push(f.clone());
        }
    }
    set.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Scrub `value` (a container key, a passphrase) from every event from now on, and its
/// percent-encoded form too: a gateway echoing a request line or a query would show it
/// that way. Values under `MIN_SECRET_LEN` bytes are ignored.
pub fn add_secret(value: &str) {
    add_forms(&[value.to_string(), crate::backend::http::encode(value)]);
}

/// Scrub the password of a URL's user information (`scheme://user:pass@host`): as typed,
/// percent-decoded, and `user:pass` in Base64, which is what an HTTP client sends for it
/// (ureq turns a URL's user information into a Basic `Authorization` header, e.g. for
/// `--pushgateway-url https://user:pass@host`, and a server may echo that header). A
/// user name alone is not taken for a secret: a common word would vanish from every line.
pub fn add_url_secrets(url: &str) {
    let Some(info) = userinfo(url) else { return };
    let Some((_, pass)) = info.split_once(':') else {
        return;
    };
    add_secret(pass);
    if let Some(decoded) = percent_decode(pass) {
        add_secret(&decoded);
    }
    use base64::Engine;
    add_forms(&[base64::engine::general_purpose::STANDARD.encode(info)]);
}

/// The user information of a URL (`user:pass` in `scheme://user:pass@host/...`).
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|i| &authority[..i])
}

/// `%XX` sequences decoded; `None` when there are none or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `text` with every registered secret replaced by `[redacted]` and the user information
/// of every URL in it removed. The log writer applies it to every event; other output
/// that may carry untrusted text (a command-line error) uses it too.
pub fn scrub(text: &str) -> String {
    let mut out = strip_userinfo(text);
    for s in secrets().iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// Every string in a field value scrubbed, however deeply nested.
fn scrub_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(scrub(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub_value).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, scrub_value(v))).collect())
        }
        other => other,
    }
}

/// Drop `user:pass@` from every `scheme://user:pass@host` in free text. The authority ends
/// where a URL's does (`/`, `?`, `#`), or where text around a URL starts (white space,
/// quotes, brackets).
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | '\\')
                    || c.is_whitespace()
                    || c.is_control()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        out.push_str(
            authority
                .rfind('@')
                .map_or(authority, |j| &authority[j + 1..]),
        );
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Untrusted bytes (an HTTP error body) made fit for a message: secrets redacted, control
/// characters and runs of white space turned into one space (one line, no terminal
/// escapes), at most `max` bytes. `cut`: `raw` is only the start of something longer.
/// Secrets are redacted before the text is shortened, since half a secret no longer
/// matches; for the same reason, when anything was cut, a tail that is the start of a
/// secret is dropped.
pub fn excerpt(raw: &[u8], max: usize, cut: bool) -> String {
    let text = scrub(&String::from_utf8_lossy(raw));
    let mut out = String::new();
    let mut gap = false;
    let mut cut = cut;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            gap = true;
            continue;
        }
        let space = gap && !out.is_empty();
        if out.len() + usize::from(space) + c.len_utf8() > max {
            cut = true;
            break;
        }
        if space {
            out.push(' ');
        }
        gap = false;
        out.push(c);
    }
    if cut {
        let partial = secrets()
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|&k| s.is_char_boundary(k) && out.ends_with(&s[..k]))
                    .max()
            })
            .max()
            .unwrap_or(0);
        out.truncate(out.len() - partial);
        out.push('…');
    }
    out
}

/// Strip credentials from a URL (`scheme://user:pass@host` -> `scheme://host`) and any query.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return url.to_string(),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = auth.rsplit('@').next().unwrap_or(auth);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction() {
        assert_eq!(
            super::redact("https://u:secret@h:8080/v1/AUTH_x?temp_url_sig=abc"),
            "https://h:8080/v1/AUTH_x"
        );
        assert_eq!(super::redact("file:///srv/b"), "file:///srv/b");
        assert_eq!(super::redact("swiftkeys://c/p"), "swiftkeys://c/p");
    }

    // The secret set is process-wide: these tests register values no other test logs.

    #[test]
    fn log_writer_scrubs_registered_secrets_from_every_event() {
        add_secret("log-test-key/with \"quote\"");
        add_secret("lt-pass 1");
        add_url_secrets("https://bob:log%40test-pw@gw.example:9091/x");
        // Too short to register: it must not blank every "abc" of the log.
        add_secret("abc");
        let fields = || {
            vec![
                (
                    "reason",
                    json!("HTTP 500 (X-Container-Meta-Full-Key: log-test-key/with \"quote\")"),
                ),
                (
                    "nested",
                    json!({"a": ["log-test-key%2Fwith%20%22quote%22", 7]}),
                ),
                (
                    "auth",
                    json!("Authorization: Basic Ym9iOmxvZyU0MHRlc3QtcHc="),
                ),
                (
                    "url",
                    json!("see https://bob:log%40test-pw@gw.example:9091/x"),
                ),
                ("count", json!(12)),
            ]
        };
        let msg = "abc: log@test-pw and lt-pass 1 then file://u:hunter22@h/x";
        for format in [Format::Json, Format::Text] {
            let line = render(format, Level::Warn, "retry", msg, fields());
            for leaked in [
                "log-test-key",
                "quote",
                "log@test-pw",
                "log%40test-pw",
                "lt-pass 1",
                "Ym9iOmxvZyU0MHRlc3QtcHc=",
                "hunter22",
                "bob",
            ] {
                assert!(
                    !line.contains(leaked),
                    "{format:?} leaks {leaked:?}: {line}"
                );
            }
            assert!(line.contains("HTTP 500"), "{line}");
            assert!(
                line.contains("abc: [redacted] and [redacted] then file://h/x"),
                "{line}"
            );
            assert!(line.contains("https://gw.example:9091/x"), "{line}");
            assert!(line.contains("12"), "{line}");
        }
        let json: Value =
            serde_json::from_str(&render(Format::Json, Level::Warn, "retry", msg, fields()))
                .unwrap();
        assert_eq!(
            json["reason"],
            "HTTP 500 (X-Container-Meta-Full-Key: [redacted])"
        );
        assert_eq!(json["nested"]["a"][0], "[redacted]");
        assert_eq!(json["auth"], "Authorization: Basic [redacted]");
        assert_eq!(json["count"], 12);
    }

    #[test]
    fn urls_lose_their_user_information_in_free_text() {
        assert_eq!(
            scrub("target URL \"file://user:pw@host/x\": no; http://tok@h?q swiftkeys://c/p"),
            "target URL \"file://host/x\": no; http://h?q swiftkeys://c/p"
        );
        assert_eq!(
            scrub("a@b, mailto:x@y, file:///srv/a@b"),
            "a@b, mailto:x@y, file:///srv/a@b"
        );
    }

    #[test]
    fn excerpts_are_short_single_lines_and_never_cut_a_secret_in_half() {
        add_secret("EXCERPT-SECRET-0123456789");
        let e = excerpt(b"line one\r\n\x1b[31mred\t\x00 end  ", 200, false);
        assert_eq!(e, "line one [31mred end");
        let long = format!("{}EXCERPT-SECRET-0123456789 tail", "x".repeat(300));
        let e = excerpt(long.as_bytes(), 200, false);
        assert!(e.len() <= 200 + '…'.len_utf8() && e.ends_with('…'), "{e}");
        // The cut falls inside the secret: its start must not be shown.
        let body = format!("{} EXCERPT-SECRET-0123456789", "y".repeat(190));
        let e = excerpt(body.as_bytes(), 200, false);
        assert!(!e.contains("EXCERPT"), "{e}");
        assert!(e.starts_with(&"y".repeat(190)), "{e}");
        // Whole, it is redacted; cut off by the read, its start is dropped as well.
        assert_eq!(
            excerpt(b"k: EXCERPT-SECRET-0123456789", 200, false),
            "k: [redacted]"
        );
        assert_eq!(excerpt(b"k: EXCERPT-SEC", 200, true), "k: …");
        // Bytes that are not UTF-8 do not stop the message.
        assert_eq!(excerpt(b"bad \xff byte", 200, false), "bad \u{fffd} byte");
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(clock(65), "1:05");
        assert_eq!(clock(3725), "1:02:05");
    }
}
