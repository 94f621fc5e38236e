//! Where the container is and the keys that reach it: the environment variables, the
//! checks on the storage URL and the keys made before any request, and a key type that
//! never prints.

use crate::error::{Error, Result};
use crate::log;

/// Environment variable names (also used in error messages; their values never are).
pub const ENV_STORAGE_URL: &str = "SWIFT_STORAGE_URL";
pub const ENV_FULL_KEY: &str = "SWIFT_CONTAINER_FULL_TOKEN";
pub const ENV_READ_KEY: &str = "SWIFT_CONTAINER_READ_TOKEN";

pub(super) const FULL_KEY_HEADER: &str = "X-Container-Meta-Full-Key";
pub(super) const READ_KEY_HEADER: &str = "X-Container-Meta-Read-Key";

/// A container key: never printed, not even by `{:?}`.
#[derive(Clone)]
pub(super) struct Key(pub(super) String);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The keys of a key variable, newest first, separated by commas; empty parts are ignored.
/// (A key file holds them one a line: `SwiftConfig::from_env` joins its lines with commas.
/// A line break left in a variable stays in its key, which `check_key` refuses.)
pub fn split_keys(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}

/// Where the container is and which keys may be used (normally from the environment).
#[derive(Clone, Default)]
pub struct SwiftConfig {
    /// The account's storage URL, as Keystone's catalogue or the provider gives it.
    pub storage_url: String,
    pub full_key: Option<String>,
    pub read_key: Option<String>,
}

impl std::fmt::Debug for SwiftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwiftConfig")
            .field("storage_url", &self.storage_url)
            .field("full_key", &self.full_key.as_ref().map(|_| "<redacted>"))
            .field("read_key", &self.read_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SwiftConfig {
    /// Read `SWIFT_STORAGE_URL`, `SWIFT_CONTAINER_FULL_TOKEN` and `SWIFT_CONTAINER_READ_TOKEN`
    /// (each key also from a file named by `..._FILE`); an empty value counts as unset.
    pub fn from_env() -> Result<SwiftConfig> {
        let key = |n: &str| -> Result<Option<String>> {
            let v = crate::config::secret_var(n)?.filter(|v| !v.is_empty());
            // From a file, the keys of a rotation come one a line.
            let from_file = std::env::var_os(format!("{n}_FILE")).is_some_and(|f| !f.is_empty());
            Ok(match (v, from_file) {
                (Some(v), true) => Some(v.lines().collect::<Vec<_>>().join(",")),
                (v, _) => v,
            })
        };
        Ok(SwiftConfig {
            storage_url: std::env::var(ENV_STORAGE_URL).unwrap_or_default(),
            full_key: key(ENV_FULL_KEY)?,
            read_key: key(ENV_READ_KEY)?,
        })
    }
}

/// `(container, prefix)` of `swiftkeys://CONTAINER[/PREFIX]`; the prefix loses surrounding
/// slashes.
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let shown = log::redact(url);
    let rest = url.strip_prefix("swiftkeys://").ok_or_else(|| {
        Error::Usage(format!(
            "target URL {shown:?}: expected swiftkeys://container[/prefix]"
        ))
    })?;
    let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if container.is_empty() {
        return Err(Error::Usage(format!(
            "target URL {shown:?}: no container name (swiftkeys://container[/prefix])"
        )));
    }

    Ok((container.to_string(), prefix.trim_matches('/').to_string()))
}

/// `SWIFT_STORAGE_URL` must be an account URL, `http(s)://host[:port]/v1/<account>[/...]`
/// (a path before `/v1`, where a provider publishes Swift under one, is allowed). Checked
/// before any request: otherwise a URL without the account (the bare endpoint, or a
/// Keystone URL pasted by mistake) gets Swift's HTML 400 page back, reported as a storage
/// failure (exit 50) after every retry. The value is shown without its user information.
pub(super) fn check_storage_url(url: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::Usage(format!(
            "{ENV_STORAGE_URL} {:?} is not an account storage URL: {why}; it looks like \
             https://swift.example[:port]/v1/AUTH_<project> (the object-store endpoint of the \
             catalogue: `openstack catalog show object-store`)",
            log::redact(url)
        )))
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("it contains white space or a control character (a line break?)");
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return refuse("it must start with https:// or http://");
    };
    if rest.contains(['?', '#']) {
        return refuse("it has a query or a fragment");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    // `host`, `host:port`, `[v6]` or `[v6]:port`; `port` keeps its colon.
    let (host, port) = match host_port
        .strip_prefix('[')
        .and_then(|v6| v6.split_once(']'))
    {
        Some(v6) => v6,
        None => host_port.split_at(host_port.find(':').unwrap_or(host_port.len())),
    };
    if host.is_empty() {
        return refuse("it has no host");
    }
    if !(port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok()))
    {
        return refuse("its port is not a number");
    }
    let segments: Vec<&str> = path.split('/').collect();
    let account = segments
        .windows(2)
        .find(|w| w[0] == "v1")
        .map(|w| w[1])
        .unwrap_or("");
    if account.is_empty() {
        return refuse("its path has no /v1/<account>");
    }
    Ok(())
}

/// A container key goes into a request header as it is: a line break or another control
/// character (often the newline a key file was written with) cannot be sent, and white
/// space at either end is dropped by HTTP, so the key would never match. Refused before
/// any request, naming the variable and never the value.
pub(super) fn check_key(var: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::Usage(format!("{var} holds no key")));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "{var} contains a line break or another control character, which cannot go into \
             a request header (a key file written with a trailing newline?): set the key \
             alone"
        )));
    }
    if key.trim() != key {
        return Err(Error::Usage(format!(
            "{var} starts or ends with white space, which HTTP drops, so the container \
             would never accept it: set the key alone"
        )));
    }
    Ok(())
}
