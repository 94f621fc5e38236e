//! The backend conformance suite on file:// (always runs). The same suite runs on
//! swiftkeys:// in `tests/swift.rs` (feature `swift-tests`, needs a test Swift).

use crate::support::Scratch;
use swiftdup::backend::{self, Access, Backend, Options};

fn file_opener(s: &Scratch) -> impl Fn(&str) -> Box<dyn Backend> + '_ {
    move |sub: &str| {
        backend::open(
            &s.url(&format!("target/{sub}")),
            Access::Write,
            &Options::default(),
        )
        .unwrap()
    }
}

#[test]
fn file_backend_conforms() {
    let s = Scratch::new("conformance-file");
    let work = s.join("work");
    std::fs::create_dir_all(&work).unwrap();
    crate::support::conformance::run_suite(&file_opener(&s), &work);
}

#[test]
fn file_backend_opens_for_reading_too() {
    let s = Scratch::new("conformance-file-read");
    let url = s.url("target");
    // Reading never creates the directory: a missing one is the target missing.
    let e = backend::open(&url, Access::Read, &Options::default())
        .err()
        .unwrap();
    assert!(matches!(e, swiftdup::error::Error::TargetMissing(_)), "{e}");
    assert!(!s.join("target").exists());
    std::fs::create_dir(s.join("target")).unwrap();
    let b = backend::open(&url, Access::Read, &Options::default()).unwrap();
    assert!(b.list("").unwrap().is_empty());
    assert_eq!(
        b.describe(),
        format!("file://{}", s.join("target").display())
    );
}

#[test]
fn unknown_scheme_is_a_usage_error() {
    let e = backend::open("s3://bucket", Access::Read, &Options::default())
        .err()
        .unwrap();
    assert!(matches!(e, swiftdup::error::Error::Usage(_)), "{e}");
    assert!(e.to_string().contains("swiftkeys://"), "{e}");
}
