//! Sealing and opening the files a backup stores: gzip (`deflate`, also the compressor
//! inside OpenPGP) and OpenPGP (`pgp`, on rPGP), with `vpaes` as the constant-time AES of
//! the wasm build (no AES-NI there).

pub mod deflate;
pub mod pgp;
#[cfg(any(target_arch = "wasm32", test))]
pub mod vpaes;
