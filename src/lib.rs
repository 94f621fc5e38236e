//! swiftdup: duplicity-compatible encrypted incremental backups to OpenStack Swift with
//! container keys, built as a batch job.
//!
//! The modules, in the order the data goes (a backup top to bottom; a restore is the same
//! pipe reversed). A module imports only from modules below it in this list, never above
//! (the `layering` test below checks it), so each layer can be read and tested without the
//! ones over it.
//!
//! `seal` sits above `archive`, not beside `rsync`: opening a stored file picks gzip or
//! OpenPGP by its name's suffix (`archive::names::Suffix`); its codecs (`pgp`, `deflate`)
//! import only leaves.

pub mod app; // command line and environment -> one validated Config; dispatch, --every, metrics
pub mod commands; // the verbs: backup, restore, verify, list, status, prune; plan, then call
pub mod engine; // the pipes: write (walk, select, volumes), read (stream, merge, apply), metadata
pub mod backend; // where backups live: the Backend trait, file://, swiftkeys://, HTTP, the lock
pub mod local; // this machine: the archive-dir cache, temp spools, file metadata, users
pub mod seal; // sealing and opening stored files: OpenPGP (rpgp), gzip, AES for wasm
pub mod archive; // pure duplicity format: names, time, tar, manifest, sigtar, collection
pub mod rsync; // librsync signatures, deltas and patches (MD4 + rollsum), holes on write

// Leaves that every layer may use. `config` and `log` name types of the layers below (a
// validated config holds prefixes, keys, backend options and selection rules; the log
// writer formats times and percent-encodes secrets to scrub them) but run none of them.
pub mod config;
pub mod count;
pub mod error;
pub mod interrupt;
pub mod log;

#[cfg(test)]
mod layering {
    //! Imports flow one way: every `crate::<module>` path outside tests names a leaf, the
    //! module itself, or a module below it in `LAYERS`; no command imports another.

    const LAYERS: &[&str] = &[
        "app", "commands", "engine", "backend", "local", "seal", "archive", "rsync",
    ];
    const LEAVES: &[&str] = &["config", "count", "error", "interrupt", "log"];

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn imports_flow_down_the_pipe() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
        let mut wrong = Vec::new();
        for f in &files {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let top = rel.split(['/', '.']).next().unwrap().to_string();
            let text = std::fs::read_to_string(f).unwrap();
            // Unit tests may reach anywhere (a test of `rsync` checks against `archive`).
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let dep: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if dep == top || LEAVES.contains(&dep.as_str()) || dep.is_empty() {
                    continue;
                }
                let ok = match (rank(&top), rank(&dep)) {
                    (Some(t), Some(d)) => d > t,
                    // A leaf may name a layer's types (see the module doc); main.rs and
                    // lib.rs may name anything.
                    _ => true,
                };
                if !ok {
                    wrong.push(format!("src/{rel} imports crate::{dep}"));
                }
            }
        }
        // Commands are siblings: what two of them share lives in the engine.
        for f in &files {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let Some(verb) = rel.strip_prefix("commands/") else {
                continue;
            };
            let code = std::fs::read_to_string(f).unwrap();
            let code = code.split("#[cfg(test)]").next().unwrap();
            for other in ["backup", "list", "prune", "restore", "status", "verify"] {
                let uses = [
                    format!("crate::commands::{other}"),
                    format!("super::{other}"),
                ];
                if !verb.starts_with(other) && uses.iter().any(|u| code.contains(u.as_str())) {
                    wrong.push(format!("src/{rel} imports commands::{other}"));
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(
            wrong.is_empty(),
            "imports against the flow:\n{}",
            wrong.join("\n")
        );
    }
}
