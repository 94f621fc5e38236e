//! The WASI HTTP client: not written yet (a later issue will use `wasi:http`). Until then
//! every call fails with a clear error instead of the build failing, so file:// targets keep
//! working in a WASI build.

use super::{ErrorKind, Http, HttpError, Options, Request, Response};

/// Placeholder client for `target_os = "wasi"`.
pub struct WasiHttp;

impl WasiHttp {
    pub fn new(_opts: &Options) -> Result<WasiHttp, HttpError> {
        Ok(WasiHttp)
    }
}

impl Http for WasiHttp {
    fn call(&self, _req: Request) -> Result<Response, HttpError> {
        Err(HttpError::new(
            ErrorKind::Unsupported,
            "HTTP is not built for this target yet (WASI): use a native build for swiftkeys://",
        ))
    }
}
