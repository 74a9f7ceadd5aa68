//! CSV for spreadsheets: RFC 4180 quoting, also for `;` and tabs (Excel in an Italian or
//! German locale splits on `;`, and a TSV import on tabs: the second part of an unquoted
//! field would start a new cell, possibly a formula), and cells that a spreadsheet would
//! run as a formula (`= + - @`, tab, carriage return or line feed first, also after
//! leading spaces) are prefixed with `'` (CSV injection).

/// Characters that make a cell a formula when they come first.
const FORMULA: [char; 4] = ['=', '+', '-', '@'];

/// One field, quoted when needed.
pub fn field(value: &str) -> String {
    let risky = value.starts_with(['\t', '\r', '\n'])
        || value
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with(FORMULA);
    let v = if risky {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if v.contains([',', ';', '"', '\n', '\r', '\t']) || v.starts_with(' ') || v.ends_with(' ') {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// A record line, CRLF-terminated.
pub fn row<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_formula_injection() {
        assert_eq!(
            row(&["a", "b,c", "say \"hi\""]),
            "a,\"b,c\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("Anna"), "Anna");
        // `;` and tabs split cells in other locales and imports: quoted.
        assert_eq!(field("Rossi; =1+1"), "\"Rossi; =1+1\"");
        assert_eq!(field("a\tb"), "\"a\tb\"");
        assert_eq!(field("\t=cmd"), "\"'\t=cmd\"");
        // A formula behind leading spaces or a line break is still a formula.
        assert_eq!(field("  =SUM(A1)"), "'  =SUM(A1)");
        assert_eq!(field("\n@x"), "\"'\n@x\"");
        assert_eq!(field("+39 055"), "'+39 055");
        assert_eq!(field("a-b"), "a-b");
    }
}
