//! Listing a container: JSON pages of at most 10,000 names, followed by marker until a
//! short page, each page bounded in size and checked to advance.

use super::*;

/// Swift's largest listing page.
pub(super) const PAGE: usize = 10_000;

/// A listing page of 10,000 names is a few MB; anything far larger is not a listing.
pub(super) const MAX_LISTING_BYTES: u64 = 256 << 20;

/// Names from a JSON listing page (`[{"name": ...}, ...]`).
pub(super) fn parse_listing(body: &[u8]) -> std::result::Result<Vec<Listed>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("listing is not valid JSON: {e}"))?;
    let items = v
        .as_array()
        .ok_or_else(|| "listing is not a JSON array".to_string())?;
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        match item.get("name").and_then(|n| n.as_str()) {
            // Sizes are informational (status); a listing without them still lists.
            Some(n) => names.push(Listed {
                name: n.to_string(),
                size: item.get("bytes").and_then(|b| b.as_u64()).unwrap_or(0),
                // A plain object's `hash` is the MD5 of its content (a large object's is
                // not; it then simply matches no recorded MD5).
                md5: item
                    .get("hash")
                    .and_then(|h| h.as_str())
                    .filter(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|h| h.to_ascii_lowercase()),
            }),
            // `subdir` entries appear only with a delimiter, which is never sent.
            None if item.get("subdir").is_some() => {}
            // The entry is the server's text: shortened like an error body.
            None => {
                return Err(format!(
                    "listing entry without a name: {}",
                    log::excerpt(item.to_string().as_bytes(), http::ERROR_BODY_SHOWN, false)
                ))
            }
        }
    }
    Ok(names)
}

impl SwiftBackend {
    /// Every name under `prefix`, page by page (Swift's pages hold at most [`PAGE`]).
    pub(super) fn list_all(&self, prefix: &str) -> Result<Vec<Listed>> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let what = format!("{}/{full_prefix}* (listing)", self.container);
        let mut names = Vec::new();
        let mut marker = String::new();
        loop {
            let page = self.list_page(&full_prefix, &marker, &what)?;
            let full_page = page.len() >= PAGE;
            let Some(last) = page.last().map(|l| l.name.clone()) else {
                break;
            };
            // A server that ignored the marker would page forever.
            if !marker.is_empty() && last <= marker {
                return Err(Error::Backend {
                    object: what,
                    detail: format!("listing did not advance past {marker:?}"),
                    trans_id: None,
                });
            }
            names.extend(page.into_iter().filter_map(|mut l| {
                l.name = format!("{prefix}{}", l.name.strip_prefix(&full_prefix)?);
                Some(l)
            }));
            // Swift fills every page up to the limit (the proxy does so across container
            // shards too), so a short page is the last: asking again would cost a request
            // per listing. Container keys are Swift middleware, so no other server is
            // behind a swiftkeys:// URL.
            if !full_page {
                break;
            }
            marker = last;
        }
        Ok(names)
    }

    /// One listing page: the names after `marker` that start with `full_prefix`.
    fn list_page(&self, full_prefix: &str, marker: &str, what: &str) -> Result<Vec<Listed>> {
        let mut url = format!(
            "{}?format=json&limit={PAGE}&prefix={}",
            self.container_url,
            encode(full_prefix)
        );
        if !marker.is_empty() {
            url.push_str("&marker=");
            url.push_str(&encode(marker));
        }
        self.request(
            what,
            || Ok(self.req(Method::Get, url.clone())),
            |mut resp| match resp.status {
                204 => Step::Done(Vec::new()),
                200 => {
                    let mut body = Vec::new();
                    if let Err(e) = resp
                        .body
                        .by_ref()
                        .take(MAX_LISTING_BYTES)
                        .read_to_end(&mut body)
                    {
                        return Step::Retry(
                            Error::Backend {
                                object: what.to_string(),
                                detail: format!("listing cut off: {e}"),
                                trans_id: trans_id(&resp),
                            },
                            None,
                        );
                    }
                    match parse_listing(&body) {
                        Ok(names) => Step::Done(names),
                        Err(detail) => Step::Retry(
                            Error::Backend {
                                object: what.to_string(),
                                detail,
                                trans_id: trans_id(&resp),
                            },
                            None,
                        ),
                    }
                }
                404 => Step::Fail(self.container_missing(&resp)),
                _ => self.status_error(what, &mut resp),
            },
        )
    }
}
