//! Time strings: the `YYYYMMDDTHHMMSSZ` form in remote file names, duplicity's old w3 form,
//! and the user-facing time syntax of `--time`, `remove-older-than` and friends (§1.1, §8.4).
//!
//! Times are whole seconds since the epoch, as everywhere in duplicity. Civil-date math is
//! done by hand (Howard Hinnant's algorithms) so the crate needs no date library.

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Broken-down UTC time: (year, month, day, hour, minute, second).
pub fn utc_parts(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

/// The 16-character time string used in file names: `20231114T221320Z`.
pub fn timestr(t: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// RFC 3339 UTC with seconds, for logs and JSON output.
/// Seconds since the epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn rfc3339(t: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `asctime` form in UTC (`Sun Nov 29 16:03:46 2026`), as duplicity prints times.
pub fn asctime(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = utc_parts(t);
    let wd = DAYS[t.div_euclid(86400).rem_euclid(7) as usize];
    format!(
        "{wd} {} {d:2} {h:02}:{mi:02}:{s:02} {y}",
        MONTHS[mo as usize - 1]
    )
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn checked(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    // Duplicity's own validity checks (§1.1).
    if !(1900 < y && y < 2100 && (1..=12).contains(&mo) && (1..=31).contains(&d)) {
        return None;
    }
    if h > 23 || mi > 59 || s > 61 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + (h * 3600 + mi * 60 + s) as i64)
}

/// Parse the time part of a remote file name (§1.1): the 16-character form, or the old w3
/// form with an offset. Like duplicity, anything else goes through the generic parser, so
/// epoch digits are accepted too; `now` is the reference for intervals.
pub fn parse_name_time(s: &str, now: i64) -> Option<i64> {
    let up = s.to_ascii_uppercase();
    parse_compact(&up)
        .or_else(|| parse_w3(&up, ':'))
        .or_else(|| parse_user_time(&up, now).ok())
}

/// `YYYYMMDDTHHMMSSZ`.
fn parse_compact(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // ASCII only: the slices below are byte offsets (a multi-byte character would panic).
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !s.is_ascii() {
        return None;
    }
    checked(
        num(&s[0..4])? as i64,
        num(&s[4..6])?,
        num(&s[6..8])?,
        num(&s[9..11])?,
        num(&s[11..13])?,
        num(&s[13..15])?,
    )
}

/// `YYYY-MM-DDTHH:MM:SS` + `Z` or `±HH:MM` (the separator can differ in old names).
fn parse_w3(s: &str, sep: char) -> Option<i64> {
    if !s.is_ascii() {
        return None;
    }
    let (date, rest) = s.split_once('T')?;
    let mut dp = date.split('-');
    let (y, mo, d) = (num(dp.next()?)? as i64, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || rest.len() < 8 {
        return None;
    }
    let clock = &rest[..8];
    let zone = &rest[8..];
    let mut cp = clock.split(sep);
    let (h, mi, sec) = (num(cp.next()?)?, num(cp.next()?)?, num(cp.next()?)?);
    let t = checked(y, mo, d, h, mi, sec)?;
    let offset = if zone == "Z" || zone.is_empty() {
        0
    } else {
        let sign = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let z = &zone[1..];
        let (zh, zm) = if z.len() == 5 {
            (num(&z[..2])?, num(&z[3..])?)
        } else {
            return None;
        };
        sign * (zh * 3600 + zm * 60) as i64
    };
    Some(t - offset)
}

/// Parse a user-supplied time (§8.4): `now`, epoch seconds, a w3 datetime, the compact
/// form, an interval before `now` (`3D`, `1h30m`, `2W`), or a date (`YYYY-MM-DD`,
/// `YYYY/MM/DD`, `MM/DD/YYYY`, `MM-DD-YYYY`, `YYYYMMDDZ`).
///
/// Times without a zone are taken as UTC. Duplicity uses the local standard-time offset
/// (ignoring DST, so it is an hour off in summer); containers run in UTC, where the two agree.
pub fn parse_user_time(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "bad time {s:?}: use now, epoch seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[Z|+HH:MM] \
             or an interval like 3D, 2W, 1M, 1h30m"
        )
    };
    if s == "now" {
        return Ok(now);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() != 8 {
        return s.parse::<i64>().map_err(|_| bad());
    }
    if let Some(t) = parse_compact(&s.to_ascii_uppercase()) {
        return Ok(t);
    }
    if s.contains('T') {
        return parse_w3(s, ':').ok_or_else(bad);
    }
    if let Some(t) = parse_date(s) {
        return Ok(t);
    }
    parse_interval(s).map(|d| now - d).ok_or_else(bad)
}

/// An interval string to seconds: one or more `<int><unit>` pairs.
pub fn parse_interval(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'D' => 86400,
            'W' => 7 * 86400,
            'M' => 30 * 86400,
            'Y' => 365 * 86400,
            _ => return None,
        };
        let n: i64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    if !digits.is_empty() || !any {
        return None;
    }
    Some(total)
}

fn parse_date(s: &str) -> Option<i64> {
    if !s.is_ascii() {
        return None;
    }
    let midnight = |y: u32, m: u32, d: u32| checked(y as i64, m, d, 0, 0, 0);
    if let Some(body) = s.strip_suffix('Z') {
        if body.len() == 8 {
            return midnight(num(&body[..4])?, num(&body[4..6])?, num(&body[6..])?);
        }
    }
    for sep in ['-', '/'] {
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 3 {
            continue;
        }
        let (a, b, c) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
        return if parts[0].len() == 4 {
            midnight(a, b, c)
        } else {
            midnight(c, a, b)
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestr_matches_duplicity_fixture_names() {
        // Names from the reference archives (duplicity-format.md, Appendix A).
        assert_eq!(timestr(1700000000), "20231114T221320Z");
        assert_eq!(timestr(1700000100), "20231114T221500Z");
        assert_eq!(timestr(1700000200), "20231114T221640Z");
        assert_eq!(parse_name_time("20231114T221640Z", 0), Some(1700000200));
        assert_eq!(parse_name_time("20231114t221640z", 0), Some(1700000200));
    }

    #[test]
    fn old_w3_names() {
        assert_eq!(
            parse_name_time("2002-04-26T04:22:01-07:00", 0),
            Some(1019820121)
        );
        assert_eq!(parse_name_time("2002-04-26T11:22:01Z", 0), Some(1019820121));
        assert_eq!(parse_name_time("2002-13-26T11:22:01Z", 0), None);
    }

    #[test]
    fn user_times() {
        let now = 1_700_000_000;
        assert_eq!(parse_user_time("now", now), Ok(now));
        assert_eq!(parse_user_time("1600000000", now), Ok(1600000000));
        assert_eq!(parse_user_time("3D", now), Ok(now - 3 * 86400));
        assert_eq!(parse_user_time("1h30m", now), Ok(now - 5400));
        assert_eq!(parse_user_time("2W", now), Ok(now - 14 * 86400));
        assert_eq!(parse_user_time("1M", now), Ok(now - 30 * 86400));
        assert_eq!(parse_user_time("2023-11-14", now), Ok(1699920000));
        assert_eq!(parse_user_time("2023/11/14", now), Ok(1699920000));
        assert_eq!(parse_user_time("11/14/2023", now), Ok(1699920000));
        assert_eq!(parse_user_time("20231114Z", now), Ok(1699920000));
        assert_eq!(parse_user_time("2023-11-14T22:13:20Z", now), Ok(1700000000));
        assert_eq!(
            parse_user_time("2023-11-14T23:13:20+01:00", now),
            Ok(1700000000)
        );
        assert_eq!(parse_user_time("20231114T221320Z", now), Ok(1700000000));
        assert!(parse_user_time("yesterday", now).is_err());
        assert!(parse_user_time("3X", now).is_err());
        assert!(parse_user_time("", now).is_err());
    }

    #[test]
    fn non_ascii_is_refused_not_a_panic() {
        // Found by the fuzzer (fuzz/regressions/time/): byte slices cut a character.
        let now = 1_700_000_000;
        for s in [
            "88888882T3\u{3ac}39|Z",
            "2023-11-14T22:1\u{e9}:20Z",
            "2023-11-14T22:13:20+0\u{e9}00",
            "202\u{e9}114Z",
        ] {
            assert!(parse_user_time(s, now).is_err(), "{s}");
            assert_eq!(parse_name_time(s, now), None, "{s}");
        }
    }

    #[test]
    fn asctime_form() {
        assert_eq!(asctime(1700000000), "Tue Nov 14 22:13:20 2023");
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
    }

    #[test]
    fn civil_round_trip() {
        for d in [-800_000i64, -1, 0, 1, 365, 19_000, 50_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
