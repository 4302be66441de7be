//! How results are shown: aligned tables on a terminal, JSON for scripts.

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

/// A cell as a person reads it: strings without quotes, everything else as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// `text` with every control character (and every Unicode bidirectional
/// override, which reorders what follows it on screen, and the invisible
/// byte order mark) written as an escape, so that a cell can neither break a table's lines nor drive the
/// terminal: `\n`, `\r`, `\t`, `\e` for escape, else `\u{..}`.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let needs_escape = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
            )
    };
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{1b}' => escaped.push_str("\\e"),
            c if needs_escape(c) => escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// `text` for a terminal, as [`escape_controls`] but keeping its line
/// breaks: for messages that come from a server, a module or a client (an
/// error, a reducer's own error text), which must not drive the terminal.
pub fn escape_controls_but_lines(text: &str) -> String {
    text.split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders rows under a header, each column as wide as its widest cell
/// shows on a terminal (a CJK character or an emoji takes two columns).
/// Control characters in cells are escaped ([`escape_controls`]).
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    let escape_all = |cells: &[String]| -> Vec<String> {
        cells
            .iter()
            .map(|c| escape_controls(c).into_owned())
            .collect()
    };
    let columns = escape_all(columns);
    let rows: Vec<Vec<String>> = rows.iter().map(|row| escape_all(row)).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.width()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.width());
        }
    }
    // Padded by hand: `format!("{cell:<width$}")` panics on a width above
    // 65,535, which a long cell reaches.
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| {
                let mut padded = cell.clone();
                let fill = width.saturating_sub(cell.width());
                padded.extend(std::iter::repeat_n(' ', fill));
                padded
            })
            .collect();
        padded.join(" | ").trim_end().to_owned()
    };
    let mut out = line(&columns);
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&rule.join("-+-"));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// `count` and `noun`, plural unless the count is 1: `1 table`, `2 tables`.
pub fn count_of(count: impl Into<u64>, noun: &str) -> String {
    let count = count.into();
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let rendered = table(
            &["id".into(), "text".into()],
            &[
                vec!["1".into(), "hello".into()],
                vec!["22".into(), "x".into()],
            ],
        );
        assert_eq!(rendered, "id | text\n---+------\n1  | hello\n22 | x\n");
    }

    // A cell wider than 65,535 characters once panicked the formatter.
    #[test]
    fn a_cell_of_any_length_is_padded() {
        let long = "x".repeat(70_000);
        let rendered = table(
            &["id".into(), "text".into()],
            &[vec!["1".into(), long.clone()], vec!["2".into(), "y".into()]],
        );
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[0], "id | text");
        assert_eq!(lines[1], format!("---+-{}", "-".repeat(70_000)));
        assert_eq!(lines[2], format!("1  | {long}"));
        assert_eq!(lines[3], "2  | y");
    }

    // A row's control characters cannot break the table or drive the terminal.
    #[test]
    fn control_characters_are_escaped_in_tables() {
        let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}\nnext\tcol\u{202e}";
        let rendered = table(&["text".into()], &[vec![hostile.into()]]);
        let escaped = r"\e[2J\e]0;pwned\u{7}\nnext\tcol\u{202e}";
        let rule = "-".repeat(escaped.chars().count());
        assert_eq!(rendered, format!("text\n{rule}\n{escaped}\n"));
        assert!(!rendered.contains('\u{1b}'));
        assert_eq!(rendered.lines().count(), 3);
        assert_eq!(escape_controls("plain ü"), "plain ü");
    }

    #[test]
    fn messages_keep_their_lines_and_lose_their_escapes() {
        assert_eq!(
            escape_controls_but_lines("first\nsecond \u{1b}[31mred\r\u{feff}"),
            "first\nsecond \\e[31mred\\r\\u{feff}"
        );
    }

    #[test]
    fn wide_characters_count_as_the_columns_they_take() {
        let rendered = table(
            &["tag".to_owned(), "n".to_owned()],
            &[
                vec!["健康".to_owned(), "1".to_owned()],
                vec!["tank".to_owned(), "2".to_owned()],
                vec!["hi 👋".to_owned(), "3".to_owned()],
            ],
        );
        let bars: Vec<usize> = rendered
            .lines()
            .filter(|line| !line.starts_with('-'))
            .map(|line| line.split('|').next().unwrap().width())
            .collect();
        assert_eq!(bars, [6, 6, 6, 6], "{rendered}");
    }

    #[test]
    fn one_of_a_thing_is_singular() {
        assert_eq!(count_of(1u64, "table"), "1 table");
        assert_eq!(count_of(0u64, "table"), "0 tables");
        assert_eq!(count_of(2u64, "transaction"), "2 transactions");
    }

    #[test]
    fn strings_lose_their_quotes_and_other_values_stay_json() {
        assert_eq!(cell(&Value::from("hi")), "hi");
        assert_eq!(cell(&serde_json::json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(cell(&Value::Null), "null");
    }
}
