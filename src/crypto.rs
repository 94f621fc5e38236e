//! TEMPORARY compile shim; replaced by the real module.
use std::io::{self, Read, Write};
#[derive(Debug)]
pub enum CryptoError {
    WrongPassphrase,
    NoMatchingKey(String),
    Integrity(String),
    Unsupported(String),
    Key(String),
    Io(io::Error),
}
impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for CryptoError {}
#[derive(Clone)]
pub enum SealMode {
    Plain,
    Gzip {
        level: u32,
    },
    Symmetric {
        passphrase: String,
        level: u32,
    },
    PublicKey {
        recipients: Vec<pgp::composed::SignedPublicKey>,
        hidden: Vec<pgp::composed::SignedPublicKey>,
        level: u32,
    },
}
pub fn read_public_keys(_: &[u8]) -> Result<Vec<pgp::composed::SignedPublicKey>, CryptoError> {
    Err(CryptoError::Unsupported("shim".into()))
}
pub fn read_secret_keys(_: &[u8]) -> Result<Vec<pgp::composed::SignedSecretKey>, CryptoError> {
    Err(CryptoError::Unsupported("shim".into()))
}
pub struct Sealer<W: Write> {
    inner: Option<flate2::write::GzEncoder<W>>,
    plain: Option<W>,
}
impl<W: Write> Sealer<W> {
    pub fn new(out: W, mode: &SealMode) -> Result<Self, CryptoError> {
        match mode {
            SealMode::Plain => Ok(Sealer {
                inner: None,
                plain: Some(out),
            }),
            _ => Ok(Sealer {
                inner: Some(flate2::write::GzEncoder::new(
                    out,
                    flate2::Compression::new(6),
                )),
                plain: None,
            }),
        }
    }
    pub fn finish(self) -> Result<W, CryptoError> {
        match (self.inner, self.plain) {
            (Some(g), _) => g.finish().map_err(CryptoError::Io),
            (_, Some(p)) => Ok(p),
            _ => unreachable!(),
        }
    }
}
impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match (&mut self.inner, &mut self.plain) {
            (Some(g), _) => g.write(b),
            (_, Some(p)) => p.write(b),
            _ => unreachable!(),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
pub struct OpenKeys {
    pub passphrase: Option<String>,
    pub secret_keys: Vec<pgp::composed::SignedSecretKey>,
}
pub fn open_gzip<R: Read>(r: R) -> impl Read {
    flate2::read::MultiGzDecoder::new(r)
}
pub fn open_pgp<'a, R: Read + 'a>(
    _r: R,
    _k: &OpenKeys,
) -> Result<(Box<dyn Read + 'a>, Vec<String>), CryptoError> {
    Err(CryptoError::Unsupported("shim".into()))
}
