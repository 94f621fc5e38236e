//! Structured logging: one JSON object per line on stderr (or readable text on a terminal).
//!
//! Every event has `time` (RFC 3339 UTC), `level`, `event` (a stable name), `msg`, and flat
//! fields. The schema is documented in README.md. Secrets never reach this module: callers
//! pass URLs through `redact` and never pass keys or passphrases at all.

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Mutex;

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
}

static STATE: Mutex<State> = Mutex::new(State {
    format: Format::Json,
    min: Level::Info,
});

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

/// Emit one event. `fields` are flattened into the object.
pub fn event(level: Level, name: &str, msg: &str, fields: Vec<(&str, Value)>) {
    let Ok(state) = STATE.lock() else { return };
    if level < state.min {
        return;
    }
    let line = match state.format {
        Format::Json => {
            let mut m = Map::new();
            m.insert(
                "time".into(),
                Value::String(crate::format::time::rfc3339(now())),
            );
            m.insert("level".into(), Value::String(level.as_str().into()));
            m.insert("event".into(), Value::String(name.into()));
            m.insert("msg".into(), Value::String(msg.into()));
            for (k, v) in fields {
                m.insert(k.into(), v);
            }
            Value::Object(m).to_string()
        }
        Format::Text => {
            let mut s = format!(
                "{} {:5} {}",
                crate::format::time::rfc3339(now()),
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
    };
    let stderr = std::io::stderr();
    let mut lock = stderr.lock();
    let _ = writeln!(lock, "{line}");
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
    #[test]
    fn redaction() {
        assert_eq!(
            super::redact("https://u:secret@h:8080/v1/AUTH_x?temp_url_sig=abc"),
            "https://h:8080/v1/AUTH_x"
        );
        assert_eq!(super::redact("file:///srv/b"), "file:///srv/b");
        assert_eq!(super::redact("swiftkeys://c/p"), "swiftkeys://c/p");
    }
}
