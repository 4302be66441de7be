//! How results are shown: aligned tables on a terminal, JSON for scripts.

use serde_json::Value;

/// A cell as a person reads it: strings without quotes, everything else as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Renders rows under a header, each column as wide as its widest cell.
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join(" | ").trim_end().to_owned()
    };
    let mut out = line(columns);
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&rule.join("-+-"));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
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

    #[test]
    fn strings_lose_their_quotes_and_other_values_stay_json() {
        assert_eq!(cell(&Value::from("hi")), "hi");
        assert_eq!(cell(&serde_json::json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(cell(&Value::Null), "null");
    }
}
