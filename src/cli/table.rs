//! Plain-text output for the list commands: aligned tables, UTC times and durations,
//! without extra crates. Cells are escaped (`input::plain`), so a name imported with a
//! newline cannot break a row.

use super::input::plain;
use std::fmt::Write as _;

/// Columns padded to their widest cell, two spaces apart, one header row.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells.iter().map(|c| plain(c)).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header = self.header.iter().map(|h| h.to_string());
        for row in std::iter::once(header.collect::<Vec<_>>()).chain(self.rows.iter().cloned()) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{cell:<w$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// UTC time from Unix seconds: `2026-11-22 14:03:00Z`.
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `utc`, or `none` for a missing time.
pub fn utc_or(ts: Option<i64>, none: &str) -> String {
    ts.map_or_else(|| none.to_string(), utc)
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, valid for every i64 day count that `utc` can produce).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration as `H:MM:SS`.
pub fn duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    format!("{sign}{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// "yes" or nothing, for flag columns.
pub fn yes(flag: bool) -> String {
    if flag { "yes" } else { "" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_dates() {
        for (ts, want) in [
            (0, "1970-01-01 00:00:00Z"),
            (951_782_400, "2000-02-29 00:00:00Z"),
            (1_700_000_000, "2023-11-14 22:13:20Z"),
            (1_795_356_180, "2026-11-22 14:03:00Z"),
            (4_107_542_399, "2100-02-28 23:59:59Z"),
            (-1, "1969-12-31 23:59:59Z"),
        ] {
            assert_eq!(utc(ts), want, "{ts}");
        }
        // Garbage from an old database prints, it does not panic.
        let _ = utc(i64::MAX);
        let _ = utc(i64::MIN);
    }

    #[test]
    fn durations_and_tables() {
        assert_eq!(duration(0), "0:00:00");
        assert_eq!(duration(3_723), "1:02:03");
        assert_eq!(duration(-61), "-0:01:01");
        let _ = duration(i64::MIN);
        let mut t = Table::new(&["ID", "NAME", "X"]);
        t.row(vec!["1".into(), "Anna\nRossi".into(), "".into()]);
        t.row(vec!["10".into(), "Bo".into(), "yes".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME         X\n1   Anna\\nRossi\n10  Bo           yes\n"
        );
    }
}
