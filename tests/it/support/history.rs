//! A target with history, shared by the operations' themes (status and list, verify,
//! retention, the lock): three chains (full, inc | full, inc | full) made by swiftdup at
//! fixed times, each source state kept, and helpers to run and read swiftdup on it.

use super::*;
use std::fs;

pub const PASS: &str = "ops test passphrase";
pub const ENV: &[(&str, &str)] = &[("PASSPHRASE", PASS)];

/// Times of a history with three chains: full, inc | full, inc | full.
pub const TIMES: [i64; 5] = [T0, T0 + 100, T0 + 200, T0 + 300, T0 + 400];

pub struct Hist {
    pub s: Scratch,
}

impl Hist {
    pub fn src(&self) -> String {
        self.s.join("src").display().to_string()
    }
    pub fn url(&self) -> String {
        self.s.url("target")
    }
    pub fn cache(&self) -> String {
        self.s.join("cache").display().to_string()
    }

    /// Run swiftdup against this target with its cache.
    pub fn sd(&self, args: &[&str]) -> std::process::Output {
        let cache = self.cache();
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--archive-dir", &cache, "--hostname", "opshost"]);
        swiftdup(&a, ENV)
    }

    pub fn sd_ok(&self, args: &[&str]) -> std::process::Output {
        let o = self.sd(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "swiftdup {args:?}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn backup(&self, verb: &str, t: i64, extra: &[&str]) -> std::process::Output {
        let (src, url, t) = (self.src(), self.url(), t.to_string());
        let mut a = vec![verb, &src, &url, "--current-time", &t, "--volsize", "1"];
        a.extend(extra);
        self.sd_ok(&a)
    }

    /// The objects of the sets that start or end at `t`, sorted.
    pub fn names_with(&self, t: i64) -> Vec<String> {
        let ts = timestr(t);
        self.names()
            .into_iter()
            .filter(|n| n.starts_with("duplicity-") && n.contains(&ts))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.s.join("target"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Both tools restore time `t` and match the state kept for it.
    pub fn both_restore(&self, i: usize) {
        self.both_restore_at(TIMES[i], &self.s.join(&format!("states/{i}")));
    }

    /// Restore the state at `t` with swiftdup and with stock duplicity: both give `want`.
    pub fn both_restore_at(&self, t: i64, want: &std::path::Path) {
        let i = t;
        let t = t.to_string();
        let url = self.url();
        let out = self.s.join(&format!("r-sd-{i}-{}", self.names().len()));
        let cache = self.s.join(&format!("cache-r-{i}-{}", self.names().len()));
        swiftdup_ok(
            &[
                "restore",
                &url,
                out.to_str().unwrap(),
                "-t",
                &t,
                "--archive-dir",
                cache.to_str().unwrap(),
            ],
            ENV,
        );
        assert_same_tree(want, &out, false);
        let out = self.s.join(&format!("r-dup-{i}-{}", self.names().len()));
        duplicity_ok(
            &self.s,
            &["restore", "-t", &t, &url, out.to_str().unwrap()],
            ENV,
        );
        assert_same_tree(want, &out, false);
    }
}

/// Source states 0..5 and the five backups: full, inc, full, inc, full.
pub fn history(name: &str) -> Hist {
    let h = Hist {
        s: Scratch::new(name),
    };
    let src = h.s.join("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::create_dir_all(h.s.join("states")).unwrap();
    for (i, &t) in TIMES.iter().enumerate() {
        fs::write(src.join("dir/sub/changing.txt"), format!("state {i}\n")).unwrap();
        fs::write(
            src.join(format!("file{i}.bin")),
            random_bytes(i as u64, 30_000),
        )
        .unwrap();
        if i >= 1 {
            let _ = fs::remove_file(src.join(format!("file{}.bin", i - 1)));
        }
        fs::write(
            src.join("big.bin"),
            random_bytes(7 + i as u64 % 2, 1_500_000),
        )
        .unwrap();
        touch_all(&src, t - 50);
        snapshot(&src, &h.s.join(&format!("states/{i}")));
        let verb = if i % 2 == 0 { "full" } else { "incremental" };
        h.backup(verb, t, &[]);
    }
    h
}

pub fn stdout_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn timestr(t: i64) -> String {
    let s = rfc(t);
    s.replace(['-', ':'], "")
}

pub fn rfc(t: i64) -> String {
    // 1970-based civil date, UTC.
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The one `error` event of a failed run, checked against its exit code.
pub fn failed(o: &std::process::Output, code: i32, error_code: &str) -> String {
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{log}");
    let evs = events(o);
    let errors: Vec<_> = evs.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert_eq!(errors[0]["code"], error_code, "{log}");
    assert_eq!(evs.last().unwrap()["exit_code"], code, "{log}");
    errors[0]["msg"].as_str().unwrap().to_string()
}
