//! Rust identifiers for the names a module declares.
//!
//! Module names come from any guest language (snake_case from Rust,
//! camelCase or PascalCase from C# and C++), so they are split into words and
//! re-joined in Rust's conventions, reduced to ASCII, kept off keywords, and
//! made unique within their namespace. Postcard encodes fields and variants by
//! position, so renaming them never changes what goes over the wire.

use std::collections::HashSet;

/// Rust's strict and reserved keywords (2015 to 2024 editions).
const KEYWORDS: &[&str] = &[
    "Self", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
    "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
    "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Keywords that cannot be written as raw identifiers (`r#self` is an error).
const NOT_RAW: &[&str] = &["Self", "crate", "self", "super"];

/// The words of `name`: split at characters other than ASCII letters and
/// digits, and where the case changes (`sendMessage`, `HTTPServer`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && match previous {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// `name` in UpperCamelCase (`send_message` → `SendMessage`); `fallback` if
/// `name` has no letters or digits. Never a keyword and never starts with a digit.
pub(crate) fn camel_case(name: &str, fallback: &str) -> String {
    let mut camel = String::new();
    for word in words(name) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            camel.push(first.to_ascii_uppercase());
            camel.extend(chars);
        }
    }
    if camel.is_empty() {
        return fallback.to_owned();
    }
    if camel.starts_with(|c: char| c.is_ascii_digit()) {
        camel.insert(0, 'T');
    }
    if camel == "Self" {
        camel.push_str("Type");
    }
    camel
}

/// `name` in snake_case (`sendMessage` → `send_message`); `fallback` if
/// `name` has no letters or digits. May be a keyword: see [`escape`].
pub(crate) fn snake_case(name: &str, fallback: &str) -> String {
    let snake = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    if snake.is_empty() {
        return fallback.to_owned();
    }
    if snake.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("_{snake}");
    }
    snake
}

/// `ident` as it can be written in Rust: keywords become raw identifiers
/// (`r#type`), or take a trailing underscore where Rust allows no raw form.
pub(crate) fn escape(ident: &str) -> String {
    if !KEYWORDS.contains(&ident) {
        ident.to_owned()
    } else if NOT_RAW.contains(&ident) {
        format!("{ident}_")
    } else {
        format!("r#{ident}")
    }
}

/// The names taken in one namespace (the types of a file, the fields of a
/// struct, the methods on a type).
#[derive(Default)]
pub(crate) struct Namespace {
    taken: HashSet<String>,
}

impl Namespace {
    /// A namespace in which `reserved` are taken already.
    pub(crate) fn with_reserved(reserved: &[&str]) -> Self {
        Self {
            taken: reserved.iter().map(|&r| r.to_owned()).collect(),
        }
    }

    /// Takes the first free name among `candidates`, or else the first
    /// candidate with the smallest free numeric suffix (`name2`, `name3`, ...).
    pub(crate) fn claim(&mut self, candidates: &[String]) -> String {
        let free = candidates.iter().find(|c| !self.taken.contains(*c));
        let name = match free {
            Some(name) => name.clone(),
            None => {
                let base = candidates.first().map_or("name", String::as_str);
                let separator = if base.ends_with(|c: char| c.is_ascii_digit()) {
                    "_"
                } else {
                    ""
                };
                (2..)
                    .map(|n| format!("{base}{separator}{n}"))
                    .find(|c| !self.taken.contains(c))
                    .unwrap_or_default()
            }
        };
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_rust_conventions() {
        assert_eq!(camel_case("user", "T"), "User");
        assert_eq!(camel_case("by_owner_rank", "T"), "ByOwnerRank");
        assert_eq!(camel_case("sendMessage", "T"), "SendMessage");
        assert_eq!(camel_case("HTTPServer", "T"), "HTTPServer");
        assert_eq!(camel_case("9lives", "T"), "T9lives");
        assert_eq!(camel_case("__", "Fallback"), "Fallback");
        assert_eq!(camel_case("self", "T"), "SelfType");
        assert_eq!(camel_case("naïve-name", "T"), "NaVeName");
        assert_eq!(snake_case("send_message", "f"), "send_message");
        assert_eq!(snake_case("sendMessage", "f"), "send_message");
        assert_eq!(snake_case("HTTPServer", "f"), "http_server");
        assert_eq!(snake_case("UserID2", "f"), "user_id2");
        assert_eq!(snake_case("2fa", "f"), "_2fa");
        assert_eq!(snake_case("_", "f"), "f");
    }

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(escape("type"), "r#type");
        assert_eq!(escape("gen"), "r#gen");
        assert_eq!(escape("self"), "self_");
        assert_eq!(escape("crate"), "crate_");
        assert_eq!(escape("text"), "text");
        assert_eq!(escape("union"), "union");
    }

    #[test]
    fn namespaces_hand_out_each_name_once() {
        let mut names = Namespace::with_reserved(&["String"]);
        assert_eq!(
            names.claim(&["String".into(), "StringRow".into()]),
            "StringRow"
        );
        assert_eq!(
            names.claim(&["String".into(), "StringRow".into()]),
            "String2"
        );
        assert_eq!(names.claim(&["Item".into()]), "Item");
        assert_eq!(names.claim(&["Item".into()]), "Item2");
        assert_eq!(names.claim(&["Item".into()]), "Item3");
        assert_eq!(names.claim(&["V2".into()]), "V2");
        assert_eq!(names.claim(&["V2".into()]), "V2_2");
    }
}
