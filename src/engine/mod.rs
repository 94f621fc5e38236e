//! The engine: what runs a backup's pipe and a restore's pipe reversed, below the
//! commands that plan them.
//!
//! - `write`: the backup side (walk, select, volumes).
//! - `read`: the restore side (set streams, merge, apply, and the path resolver every
//!   write goes through).
//! - `record`: the chain records every writing run stores, and `check` compares with.

pub mod metadata;
pub mod read;
pub mod record;
pub mod write;

use std::io::{self, Read};

/// Read until `buf` is full or `r` ends; returns how much was read (short only at the end).
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
