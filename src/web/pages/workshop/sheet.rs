//! Tables for download: one `Sheet` of typed cells written as CSV (RFC 4180, UTF-8) or as
//! an XLSX workbook (rust_xlsxwriter). Times are written in the lab's time zone.
//!
//! Spreadsheet programs run a text cell starting with `= + - @` (and tab or CR) as a
//! formula; a member could name themselves `=HYPERLINK(...)`. In CSV such text gets a
//! leading `'` (OWASP's advice); in XLSX every text is written as a string cell, which
//! is never evaluated.

use jiff::tz::TimeZone;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

/// One cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Num(f64),
    /// UTC seconds, shown in the lab's zone.
    Time(i64),
    Bool(bool),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Cell {
        s.map_or(Cell::Empty, Cell::Text)
    }
}

/// A named table with a header row.
pub struct Sheet {
    pub name: &'static str,
    pub headers: &'static [&'static str],
    pub rows: Vec<Vec<Cell>>,
}

/// A time as exports write it: `2026-11-22 14:03:00`.
fn local(tz: &TimeZone, ts: i64) -> Option<jiff::civil::DateTime> {
    jiff::Timestamp::from_second(ts)
        .ok()
        .map(|t| t.to_zoned(tz.clone()).datetime())
}

// ---------------------------------------------------------------------------------------
// CSV

/// The sheet as CSV: CRLF line ends, fields quoted when needed, formulas neutralised.
pub fn csv(sheet: &Sheet, tz: &TimeZone) -> Vec<u8> {
    let mut out = String::new();
    let header: Vec<String> = sheet.headers.iter().map(|h| csv_text(h)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &sheet.rows {
        let fields: Vec<String> = row.iter().map(|c| csv_cell(c, tz)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn csv_cell(c: &Cell, tz: &TimeZone) -> String {
    match c {
        Cell::Text(s) => csv_text(s),
        Cell::Int(n) => n.to_string(),
        Cell::Num(x) => format!("{x:.3}"),
        Cell::Time(t) => local(tz, *t)
            .map(|d| d.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        Cell::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Cell::Empty => String::new(),
    }
}

/// A text field: a formula-looking start gets `'`, then RFC 4180 quoting.
pub fn csv_text(s: &str) -> String {
    crate::web::csv::field(s)
}

// ---------------------------------------------------------------------------------------
// XLSX

/// The sheets as one workbook: bold frozen header, filters, times as Excel date-times.
pub fn xlsx(sheets: &[Sheet], tz: &TimeZone) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let when = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    for sheet in sheets {
        let ws = book.add_worksheet();
        ws.set_name(sheet.name)?;
        for (c, h) in sheet.headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
            ws.set_column_width(c as u16, 16)?;
        }
        for (r, row) in sheet.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                match cell {
                    Cell::Text(s) => ws.write_string(r, c, s)?,
                    Cell::Int(n) => ws.write_number(r, c, *n as f64)?,
                    Cell::Num(x) => ws.write_number(r, c, *x)?,
                    Cell::Bool(b) => ws.write_boolean(r, c, *b)?,
                    Cell::Time(t) => match local(tz, *t).and_then(|d| excel_time(&d)) {
                        Some(dt) => ws.write_datetime_with_format(r, c, &dt, &when)?,
                        None => ws,
                    },
                    Cell::Empty => ws,
                };
            }
        }
        ws.set_freeze_panes(1, 0)?;
        let last_col = sheet.headers.len().saturating_sub(1) as u16;
        ws.autofilter(0, 0, sheet.rows.len() as u32, last_col)?;
    }
    book.save_to_buffer()
}

/// Excel counts from 1900; anything before it (a zero timestamp) stays empty.
fn excel_time(d: &jiff::civil::DateTime) -> Option<ExcelDateTime> {
    let year = u16::try_from(d.year()).ok()?;
    ExcelDateTime::from_ymd(year, d.month() as u8, d.day() as u8)
        .and_then(|x| x.and_hms(d.hour() as u16, d.minute() as u8, d.second()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Case table: (stored text, CSV field).
    const CSV_CASES: &[(&str, &str)] = &[
        ("Anna", "Anna"),
        ("Rossi, Anna", "\"Rossi, Anna\""),
        ("say \"hi\"", "\"say \"\"hi\"\"\""),
        ("two\nlines", "\"two\nlines\""),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "\"'\tx\""),
        ("Rossi; Anna", "\"Rossi; Anna\""),
        ("a;=1+1", "\"a;=1+1\""),
        (" =1+1", "' =1+1"),
        (
            "=HYPERLINK(\"http://x\",\"y\")",
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
        ),
        ("Niccolò", "Niccolò"),
        (" padded", "\" padded\""),
        ("", ""),
    ];

    #[test]
    fn csv_fields_are_quoted_and_neutralised() {
        for (text, want) in CSV_CASES {
            assert_eq!(csv_text(text), *want, "{text:?}");
        }
    }

    #[test]
    fn csv_rows_use_the_lab_zone_and_crlf() {
        let rome = TimeZone::get("Europe/Rome").unwrap();
        let sheet = Sheet {
            name: "uses",
            headers: &["id", "who", "start", "hours", "open"],
            rows: vec![vec![
                Cell::Int(-1),
                "=1+2".into(),
                Cell::Time(1_795_352_580),
                Cell::Num(1.5),
                Cell::Bool(true),
            ]],
        };
        let text = String::from_utf8(csv(&sheet, &rome)).unwrap();
        assert_eq!(
            text,
            "id,who,start,hours,open\r\n-1,'=1+2,2026-11-22 14:03:00,1.500,yes\r\n"
        );
    }

    #[test]
    fn xlsx_is_a_zip_workbook() {
        let sheet = Sheet {
            name: "members",
            headers: &["name", "since"],
            rows: vec![
                vec!["=evil()".into(), Cell::Time(1_795_352_580)],
                vec![Cell::Empty, Cell::Time(0)],
            ],
        };
        let bytes = xlsx(&[sheet], &TimeZone::UTC).unwrap();
        assert!(bytes.starts_with(b"PK\x03\x04"));
    }
}
