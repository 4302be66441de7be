//! The query language checked against SQLite: random tables over the
//! column types SQLite stores faithfully (integers, bools, strings, floats,
//! optional integers and strings, identities as blobs) are loaded into a
//! datastore and into an in-memory SQLite database, and random queries of
//! the documented subset (comparisons with literals of every documented
//! form on either side, `AND`, `OR`, parentheses, joins on indexed columns)
//! must select the same multiset of rows from both. A subscription kept up
//! to date by the engine's incremental updates over random transactions
//! must equal both as well.
//!
//! Where the documented semantics differ from SQLite's on purpose
//! (`PROTOCOL.md`, "Supported SQL"), the SQLite side is the documented
//! meaning written in SQLite, not SQLite's reading of our text:
//!
//! - `NULL` is a value below every other: `o = NULL` is `o IS NULL`,
//!   `o <> 3` and `o < 3` also match `NULL`, and a join pairs `NULL` with
//!   `NULL` (`IS` in SQLite);
//! - floats compare in IEEE 754 total order, so `-0.0` is below `0.0` and
//!   NaN above every number (below, with its sign bit set): SQLite
//!   compares through an integer key column holding that order when the
//!   literal is a zero or the value NaN (which SQLite stores as `NULL`),
//!   the only cases where the two orders differ;
//! - a literal takes the type of its column: it is rounded to the nearest
//!   `f32` for an `f32` column, and refused when it is out of the column's
//!   range (an integer outside the type, a float that would be infinite)
//!   or of another type.
//!
//! SQLite receives every literal as a bound parameter holding the value
//! the documentation gives it, so the check covers our reading of the
//! literal's text as well as the comparison.
//!
//! Run longer with `PROPTEST_CASES=2000`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config;
use rusqlite::types::Value as Sql;
use worldline_datastore::{
    AlgebraicType, Datastore, Field, IndexSchema, ModuleSchema, ProductType, Row, TableSchema,
    Value, decode_product, encode_value,
};
use worldline_subscriptions::{QueryError, SubscriptionEngine, compile};

mod common;

use common::apply_update;

/// `cases` cases, unless `PROPTEST_CASES` says otherwise.
fn cases(cases: u32) -> Config {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => Config::default(),
        Err(_) => Config::with_cases(cases),
    }
}

/// The type of a column, as the generators see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int(i128, i128),
    Bool,
    F64,
    F32,
    Str,
    OptI32,
    OptStr,
    Ident,
    Timestamp,
}

impl Kind {
    fn ty(self) -> AlgebraicType {
        match self {
            Kind::Int(0, 0xffff) => AlgebraicType::U16,
            Kind::Int(0, U64_MAX) => AlgebraicType::U64,
            Kind::Int(0, _) => AlgebraicType::U32,
            Kind::Int(-128, 127) => AlgebraicType::I8,
            Kind::Int(..) => AlgebraicType::I64,
            Kind::Bool => AlgebraicType::Bool,
            Kind::F64 => AlgebraicType::F64,
            Kind::F32 => AlgebraicType::F32,
            Kind::Str => AlgebraicType::String,
            Kind::OptI32 => AlgebraicType::Option(Box::new(AlgebraicType::I32)),
            Kind::OptStr => AlgebraicType::Option(Box::new(AlgebraicType::String)),
            Kind::Ident => AlgebraicType::Identity,
            Kind::Timestamp => AlgebraicType::Timestamp,
        }
    }
}

const U16: Kind = Kind::Int(0, 0xffff);
const U32: Kind = Kind::Int(0, u32::MAX as i128);
const I8: Kind = Kind::Int(-128, 127);
const I64: Kind = Kind::Int(i64::MIN as i128, i64::MAX as i128);
const U64_MAX: i128 = u64::MAX as i128;
/// SQLite has no integers above `i64::MAX`: it holds a `u64` as 20
/// decimal digits, which order like the numbers.
const U64: Kind = Kind::Int(0, U64_MAX);

/// A table's columns: (name, kind, indexed).
type Columns = [(&'static str, Kind, bool)];

/// `r`'s columns: (name, kind, indexed).
const R: [(&str, Kind, bool); 13] = [
    ("id", U32, true),
    ("a", I8, true),
    ("b", Kind::Bool, false),
    ("c", I64, true),
    ("d", U16, false),
    ("f", Kind::F64, true),
    ("g", Kind::F32, false),
    ("s", Kind::Str, true),
    ("o", Kind::OptI32, true),
    ("h", Kind::Ident, true),
    ("ts", Kind::Timestamp, false),
    ("u", U64, true),
    ("os", Kind::OptStr, true),
];

/// `q`'s columns, joined with `r` on `c = k`, `o = o` or `s = s`.
const Q: [(&str, Kind, bool); 5] = [
    ("id", U32, true),
    ("k", I64, true),
    ("o", Kind::OptI32, true),
    ("s", Kind::Str, true),
    ("os", Kind::OptStr, true),
];

/// The join pairs: (column of `r`, column of `q`).
const JOINS: [(usize, usize); 4] = [(3, 1), (8, 2), (7, 3), (12, 4)];

fn table(name: &str, columns: &[(&str, Kind, bool)]) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: ProductType {
            fields: columns
                .iter()
                .map(|(name, kind, _)| Field {
                    name: Some((*name).into()),
                    ty: kind.ty(),
                })
                .collect(),
        },
        primary_key: Some(0),
        indexes: columns
            .iter()
            .enumerate()
            .filter(|(_, (_, _, indexed))| *indexed)
            .map(|(i, (name, _, _))| IndexSchema {
                name: format!("by_{name}"),
                columns: vec![i],
                unique: i == 0,
            })
            .collect(),
        auto_inc: vec![],
        public: true,
    }
}

fn schema() -> ModuleSchema {
    let mut r = table("r", &R);
    // Two-column indexes, read by a prefix when a query pins their first
    // column (which has no index of its own): `(d, a)` and `(ts, s)`.
    for (name, columns) in [("by_d_a", vec![4, 1]), ("by_ts_s", vec![10, 7])] {
        r.indexes.push(IndexSchema {
            name: name.into(),
            columns,
            unique: false,
        });
    }
    ModuleSchema {
        tables: vec![r, table("q", &Q)],
        ..ModuleSchema::default()
    }
}

/// A float's place in IEEE 754 total order, as an integer SQLite can compare.
fn f64_key(f: f64) -> i64 {
    let bits = f.to_bits() as i64;
    if bits < 0 { bits ^ i64::MAX } else { bits }
}

fn f32_key(f: f32) -> i64 {
    let bits = f.to_bits() as i32;
    i64::from(if bits < 0 { bits ^ i32::MAX } else { bits })
}

/// An integer of a column of `kind` as SQLite holds it.
fn int_sql(n: i128, kind: Kind) -> Sql {
    if kind == U64 {
        Sql::Text(format!("{n:020}"))
    } else {
        Sql::Integer(n as i64)
    }
}

/// A column value, held by both stores.
#[derive(Debug, Clone)]
enum Cell {
    Int(i128),
    Bool(bool),
    F64(f64),
    F32(f32),
    Str(String),
    Opt(Option<i32>),
    OptStr(Option<String>),
    Ident([u8; 32]),
    Timestamp(i64),
}

impl Cell {
    fn value(&self, kind: Kind) -> Value {
        match (self, kind.ty()) {
            (Cell::Int(n), AlgebraicType::U16) => Value::U16(*n as u16),
            (Cell::Int(n), AlgebraicType::U32) => Value::U32(*n as u32),
            (Cell::Int(n), AlgebraicType::I8) => Value::I8(*n as i8),
            (Cell::Int(n), AlgebraicType::U64) => Value::U64(*n as u64),
            (Cell::Int(n), _) => Value::I64(*n as i64),
            (Cell::Bool(b), _) => Value::Bool(*b),
            (Cell::F64(f), _) => Value::F64(*f),
            (Cell::F32(f), _) => Value::F32(*f),
            (Cell::Str(s), _) => Value::String(s.as_str().into()),
            (Cell::Opt(o), _) => Value::Option(o.map(|v| Box::new(Value::I32(v)))),
            (Cell::OptStr(o), _) => Value::Option(
                o.as_ref()
                    .map(|v| Box::new(Value::String(v.as_str().into()))),
            ),
            (Cell::Ident(h), _) => Value::Identity(*h),
            (Cell::Timestamp(t), _) => Value::Timestamp(*t),
        }
    }

    /// The SQLite columns holding the value: floats also hold their key.
    fn sql(&self, kind: Kind) -> Vec<Sql> {
        match self {
            Cell::Int(n) => vec![int_sql(*n, kind)],
            Cell::Bool(b) => vec![Sql::Integer(*b as i64)],
            Cell::F64(f) => vec![Sql::Real(*f), Sql::Integer(f64_key(*f))],
            Cell::F32(f) => vec![Sql::Real(f64::from(*f)), Sql::Integer(f32_key(*f))],
            Cell::Str(s) => vec![Sql::Text(s.clone())],
            Cell::Opt(o) => vec![o.map_or(Sql::Null, |v| Sql::Integer(v.into()))],
            Cell::OptStr(o) => vec![o.clone().map_or(Sql::Null, Sql::Text)],
            Cell::Ident(h) => vec![Sql::Blob(h.to_vec())],
            Cell::Timestamp(t) => vec![Sql::Integer(*t)],
        }
    }
}

const STRINGS: [&str; 10] = [
    "",
    "a",
    "A",
    "Z",
    "ab",
    "a\\",
    "it's",
    "é",
    "Ω",
    "\u{10000}",
];
const F64S: [f64; 15] = [
    -f64::NAN,
    f64::NEG_INFINITY,
    -1e300,
    -1.5,
    -0.0,
    0.0,
    0.001,
    0.1,
    0.5,
    1.0,
    2.5,
    1e300,
    f64::MAX,
    f64::INFINITY,
    f64::NAN,
];
/// `1.00000017881393432617187499` lies just below the midpoint of the two
/// f32s after 1.0; as an f64 it rounds onto that midpoint.
const F32_BITS: [u32; 12] = [
    0x7fc0_0000, // NaN
    0xffc0_0000, // NaN, sign bit set
    0x8000_0000,
    0,
    0x3dcc_cccd, // 0.1
    0x3f80_0000, // 1.0
    0x3f80_0001,
    0x3f80_0002,
    0x4b80_0000, // 16777216
    0x7f7f_ffff, // f32::MAX
    0xff80_0000,
    0x7f80_0000,
];

fn ident(n: u8) -> [u8; 32] {
    let mut h = [n; 32];
    h[31] = 0x5a;
    h
}

/// The ends of an integer type's range, and the values either side of
/// `i64::MAX` it holds.
fn edges(lo: i128, hi: i128) -> Vec<i128> {
    let mut edges = vec![lo, lo + 1, hi - 1, hi];
    let middle = [i64::MAX.into(), i128::from(i64::MAX) + 1];
    edges.extend(middle.into_iter().filter(|n| (lo..=hi).contains(n)));
    edges
}

/// A random value of a column.
fn cell(kind: Kind) -> BoxedStrategy<Cell> {
    match kind {
        Kind::Int(lo, hi) => prop_oneof![
            (lo.max(-6)..hi.min(7)).prop_map(Cell::Int),
            proptest::sample::select(edges(lo, hi)).prop_map(Cell::Int),
        ]
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(Cell::Bool).boxed(),
        Kind::F64 => proptest::sample::select(F64S.to_vec())
            .prop_map(Cell::F64)
            .boxed(),
        Kind::F32 => proptest::sample::select(F32_BITS.to_vec())
            .prop_map(|b| Cell::F32(f32::from_bits(b)))
            .boxed(),
        Kind::Str => proptest::sample::select(STRINGS.to_vec())
            .prop_map(|s| Cell::Str(s.into()))
            .boxed(),
        Kind::OptI32 => proptest::option::weighted(
            0.7,
            proptest::sample::select(vec![i32::MIN, -1, 0, 1, 3, i32::MAX]),
        )
        .prop_map(Cell::Opt)
        .boxed(),
        Kind::OptStr => proptest::option::weighted(0.7, proptest::sample::select(STRINGS.to_vec()))
            .prop_map(|s| Cell::OptStr(s.map(Into::into)))
            .boxed(),
        Kind::Ident => (0u8..3).prop_map(|n| Cell::Ident(ident(n))).boxed(),
        Kind::Timestamp => {
            proptest::sample::select(vec![i64::MIN, -1, 0, 1, 1_700_000_000_000_000])
                .prop_map(Cell::Timestamp)
                .boxed()
        }
    }
}

/// A row of `columns` except its id.
fn row(columns: &'static [(&str, Kind, bool)]) -> BoxedStrategy<Vec<Cell>> {
    columns[1..]
        .iter()
        .map(|(_, kind, _)| cell(*kind))
        .collect::<Vec<_>>()
        .boxed()
}

/// A literal: its text in our query and the value the documentation gives
/// it for SQLite, or `None` where the query must be refused.
#[derive(Debug, Clone)]
struct Lit {
    text: String,
    value: Option<LitValue>,
}

#[derive(Debug, Clone)]
enum LitValue {
    Null,
    Int(i128),
    /// A float (as an f64) and its key in total order, at the column's precision.
    Real(f64, i64),
    Text(String),
    Blob(Vec<u8>),
}

/// An integer literal in one of its documented spellings.
fn int_text(n: i128, form: u8) -> String {
    match (form % 4, n < 0) {
        (1, false) => format!("00{n}"),
        (1, true) => format!("- {}", -n),
        (2, _) => format!("{n}L"),
        _ => format!("{n}"),
    }
}

fn lit(kind: Kind) -> BoxedStrategy<Lit> {
    match kind {
        Kind::Int(..) | Kind::OptI32 => {
            let (lo, hi) = match kind {
                Kind::Int(lo, hi) => (lo, hi),
                _ => (i32::MIN.into(), i32::MAX.into()),
            };
            let int = (
                prop_oneof![
                    12 => -7i128..8,
                    6 => proptest::sample::select(edges(lo, hi)),
                    1 => proptest::sample::select(vec![lo - 1, hi + 1, -1000, 1000]),
                ],
                any::<u8>(),
            )
                .prop_map(move |(n, form)| Lit {
                    text: int_text(n, form),
                    value: (lo..=hi).contains(&n).then_some(LitValue::Int(n)),
                });
            if kind == Kind::OptI32 {
                prop_oneof![
                    5 => int,
                    1 => Just(Lit { text: "NULL".into(), value: Some(LitValue::Null) }),
                ]
                .boxed()
            } else {
                prop_oneof![
                    30 => int,
                    1 => Just(Lit { text: "1.0".into(), value: None }),
                    1 => Just(Lit { text: "NULL".into(), value: None }),
                ]
                .boxed()
            }
        }
        Kind::Timestamp => prop_oneof![
            20 => proptest::sample::select(vec![i64::MIN, -1, 0, 1, 2, 1_700_000_000_000_000, i64::MAX])
                .prop_map(|n| Lit { text: n.to_string(), value: Some(LitValue::Int(n.into())) }),
            1 => Just(Lit { text: "'2024-01-01'".into(), value: None }),
        ]
        .boxed(),
        Kind::Bool => prop_oneof![
            20 => proptest::sample::select(vec!["TRUE", "FALSE", "true", "False"]).prop_map(|t| Lit {
                text: t.into(),
                value: Some(LitValue::Int(t.eq_ignore_ascii_case("true").into())),
            }),
            1 => proptest::sample::select(vec!["1", "'true'", "-TRUE"])
                .prop_map(|t| Lit { text: t.into(), value: None }),
        ]
        .boxed(),
        Kind::F64 | Kind::F32 => {
            let texts = vec![
                "0", "-0", "0.0", "- 0.0", "1", "1.", ".5", "-1.5", "2.5e0", "1e3", "1L",
                "1e300", "-1e300", "1E-3", "0.1", "1.7976931348623157e308", "1e400", "-1e400",
                "1e-400", "1.00000017881393432617187499", "1.0000001", "16777217",
                "3.4028235e38", "3.4028236e38", "1e39", "-1e39",
            ];
            let refused = vec!["'1'", "TRUE", "NULL", "1e"];
            prop_oneof![
                20 => proptest::sample::select(texts).prop_map(move |t| float_lit(t, kind)),
                1 => proptest::sample::select(refused)
                    .prop_map(|t| Lit { text: t.into(), value: None }),
            ]
            .boxed()
        }
        Kind::Str => {
            let mut strings: Vec<&str> = STRINGS.to_vec();
            strings.extend(["b", "a\\'", "Aa"]);
            prop_oneof![
                20 => proptest::sample::select(strings).prop_map(|s| Lit {
                    text: format!("'{}'", s.replace('\'', "''")),
                    value: Some(LitValue::Text(s.into())),
                }),
                1 => proptest::sample::select(vec!["1", "\"a\"", "NULL", "X'61'"])
                    .prop_map(|t| Lit { text: t.into(), value: None }),
            ]
            .boxed()
        }
        // A string literal, or NULL (which a string column refuses).
        Kind::OptStr => lit(Kind::Str)
            .prop_map(|lit| match lit.text.as_str() {
                "NULL" => Lit {
                    text: lit.text,
                    value: Some(LitValue::Null),
                },
                _ => lit,
            })
            .boxed(),
        Kind::Ident => prop_oneof![
            20 => (0u8..4, 0u8..5).prop_map(|(n, form)| {
                let h = ident(n);
                let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
                let text = match form {
                    0 => format!("0x{hex}"),
                    1 => format!("'{hex}'"),
                    2 => format!("X'{hex}'"),
                    3 => format!("'0x{}'", hex.to_uppercase()),
                    _ => format!("x'0x{hex}'"),
                };
                Lit { text, value: Some(LitValue::Blob(h.to_vec())) }
            }),
            1 => proptest::sample::select(vec!["0x00", "'zz'", "1", "NULL"])
                .prop_map(|t| Lit { text: t.into(), value: None }),
        ]
        .boxed(),
    }
}

/// A float literal's documented value: the number in its text rounded to
/// the nearest value of the column's type, refused if that is infinite.
fn float_lit(text: &str, kind: Kind) -> Lit {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text),
    };
    let digits = digits.strip_suffix('L').unwrap_or(digits);
    let value = if kind == Kind::F32 {
        let f: f32 = digits.parse().unwrap();
        let f = if negative { -f } else { f };
        (!f.is_infinite()).then(|| LitValue::Real(f.into(), f32_key(f)))
    } else {
        let f: f64 = digits.parse().unwrap();
        let f = if negative { -f } else { f };
        (!f.is_infinite()).then(|| LitValue::Real(f, f64_key(f)))
    };
    Lit {
        text: text.into(),
        value,
    }
}

const OPS: [&str; 6] = ["=", "<>", "<", "<=", ">", ">="];

/// `column op literal` (or `literal op' column`), or a column no table has.
#[derive(Debug, Clone)]
struct Atom {
    column: Option<usize>,
    op: usize,
    lit: Lit,
    literal_first: bool,
    spelling: bool,
}

#[derive(Debug, Clone)]
enum Cond {
    Atom(Atom),
    /// The parts, and whether to leave out the parentheses the grouping
    /// does not need.
    And(Vec<Cond>, bool),
    Or(Vec<Cond>, bool),
}

fn atom(columns: &'static [(&str, Kind, bool)]) -> BoxedStrategy<Atom> {
    let known = (0..columns.len())
        .prop_flat_map(move |c| {
            (
                Just(c),
                0..OPS.len(),
                lit(columns[c].1),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(c, op, lit, literal_first, spelling)| Atom {
            column: Some(c),
            op,
            lit,
            literal_first,
            spelling,
        });
    prop_oneof![
        100 => known,
        1 => Just(Atom {
            column: None,
            op: 0,
            lit: Lit { text: "1".into(), value: Some(LitValue::Int(1)) },
            literal_first: false,
            spelling: false,
        }),
    ]
    .boxed()
}

fn cond(columns: &'static [(&str, Kind, bool)]) -> BoxedStrategy<Cond> {
    atom(columns)
        .prop_map(Cond::Atom)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                (
                    proptest::collection::vec(inner.clone(), 2..4),
                    any::<bool>()
                )
                    .prop_map(|(p, bare)| Cond::And(p, bare)),
                (proptest::collection::vec(inner, 2..4), any::<bool>())
                    .prop_map(|(p, bare)| Cond::Or(p, bare)),
            ]
        })
        .boxed()
}

impl Atom {
    /// Our text, `column` writing a column's reference.
    fn ours(&self, column: &dyn Fn(&str) -> String, columns: &[(&str, Kind, bool)]) -> String {
        let name = column(self.column.map_or("nope", |c| columns[c].0));
        let op = match (OPS[self.op], self.spelling) {
            ("=", true) => "==",
            ("<>", true) => "!=",
            (op, _) => op,
        };
        if self.literal_first {
            let flipped = match op {
                "<" => ">",
                "<=" => ">=",
                ">" => "<",
                ">=" => "<=",
                op => op,
            };
            format!("{} {flipped} {name}", self.lit.text)
        } else {
            format!("{name} {op} {}", self.lit.text)
        }
    }

    /// The documented meaning in SQLite, its parameters pushed onto
    /// `params`; `None` if the query must be refused.
    fn sqlite(
        &self,
        qualifier: &str,
        columns: &[(&str, Kind, bool)],
        params: &mut Vec<Sql>,
    ) -> Option<String> {
        let (name, kind, _) = columns[self.column?];
        let op = OPS[self.op];
        let column = format!("{qualifier}.{name}");
        let optional = matches!(kind, Kind::OptI32 | Kind::OptStr);
        let below = matches!(op, "<>" | "<" | "<=");
        let mut param = |value: Sql| {
            params.push(value);
            format!("?{}", params.len())
        };
        Some(match self.lit.value.clone()? {
            LitValue::Null => match op {
                "=" => format!("{column} IS NULL"),
                "<>" => format!("{column} IS NOT NULL"),
                _ => return None,
            },
            LitValue::Real(f, key) if f.abs() == 0.0 => {
                format!("{column}_key {op} {}", param(Sql::Integer(key)))
            }
            // SQLite stores NaN as NULL: compare it by its key.
            LitValue::Real(f, key) => format!(
                "CASE WHEN {column} IS NULL THEN {column}_key {op} {} ELSE {column} {op} {} END",
                param(Sql::Integer(key)),
                param(Sql::Real(f))
            ),
            // NULL is below every value, and not equal to any.
            LitValue::Int(n) if optional && below => {
                format!(
                    "({column} IS NULL OR {column} {op} {})",
                    param(int_sql(n, kind))
                )
            }
            LitValue::Text(s) if optional && below => {
                format!(
                    "({column} IS NULL OR {column} {op} {})",
                    param(Sql::Text(s))
                )
            }
            LitValue::Int(n) => format!("{column} {op} {}", param(int_sql(n, kind))),
            LitValue::Text(s) => format!("{column} {op} {}", param(Sql::Text(s))),
            LitValue::Blob(b) => format!("{column} {op} {}", param(Sql::Blob(b))),
        })
    }
}

impl Cond {
    fn ours(&self, column: &dyn Fn(&str) -> String, columns: &[(&str, Kind, bool)]) -> String {
        let (parts, bare, joiner) = match self {
            Cond::Atom(atom) => return atom.ours(column, columns),
            Cond::And(parts, bare) => (parts, *bare, " AND "),
            Cond::Or(parts, bare) => (parts, *bare, " OR "),
        };
        let in_and = matches!(self, Cond::And(..));
        parts
            .iter()
            .map(|part| {
                let text = part.ours(column, columns);
                // Only an OR inside an AND needs its parentheses.
                let needed = in_and && matches!(part, Cond::Or(..));
                if matches!(part, Cond::Atom(_)) || (bare && !needed) {
                    text
                } else {
                    format!("({text})")
                }
            })
            .collect::<Vec<_>>()
            .join(joiner)
    }

    fn sqlite(
        &self,
        qualifier: &str,
        columns: &[(&str, Kind, bool)],
        params: &mut Vec<Sql>,
    ) -> Option<String> {
        let (parts, joiner) = match self {
            Cond::Atom(atom) => return atom.sqlite(qualifier, columns, params),
            Cond::And(parts, _) => (parts, " AND "),
            Cond::Or(parts, _) => (parts, " OR "),
        };
        let parts = parts
            .iter()
            .map(|p| Some(format!("({})", p.sqlite(qualifier, columns, params)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(parts.join(joiner))
    }
}

/// A query: a filter on `r`, or `r`'s rows joined with `q`'s or with `r`'s
/// own (under an alias).
#[derive(Debug, Clone)]
struct Query {
    /// The join: its pair of columns, whether `ON` names them the other way
    /// round, and whether it joins `r` with itself.
    on: Option<(usize, bool, bool)>,
    /// How columns are named: 0 qualified by the table's name, 1 by an
    /// alias, 2 unqualified where that is unambiguous.
    style: u8,
    r: Option<Cond>,
    q: Option<Cond>,
}

/// Self-joins on `r`'s indexed columns.
const SELF_JOINS: [(usize, usize); 6] = [(0, 0), (3, 3), (8, 8), (7, 7), (5, 5), (12, 12)];

fn query() -> impl Strategy<Value = Query> {
    let maybe = |c: BoxedStrategy<Cond>| proptest::option::weighted(0.85, c);
    prop_oneof![
        6 => (maybe(cond(&R)), 0u8..3).prop_map(|(r, style)| Query { on: None, style, r, q: None }),
        2 => (0..JOINS.len(), any::<bool>(), maybe(cond(&R)), maybe(cond(&Q)), 0u8..3)
            .prop_map(|(join, swap, r, q, style)| Query { on: Some((join, swap, false)), style, r, q }),
        1 => (0..SELF_JOINS.len(), any::<bool>(), maybe(cond(&R)), maybe(cond(&R)), 0u8..3)
            .prop_map(|(join, swap, r, q, style)| Query { on: Some((join, swap, true)), style, r, q }),
    ]
}

impl Query {
    /// The joined table's columns and the join's pair of columns.
    fn other(&self) -> Option<(&'static Columns, usize, usize)> {
        let (join, _, itself) = self.on?;
        Some(if itself {
            (&R, SELF_JOINS[join].0, SELF_JOINS[join].1)
        } else {
            (&Q, JOINS[join].0, JOINS[join].1)
        })
    }

    fn ours(&self) -> String {
        let where_ = |parts: Vec<String>| {
            if parts.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", parts.join(" AND "))
            }
        };
        let Some((columns, rc, qc)) = self.other() else {
            let (from, qualifier) = match self.style {
                0 => ("r", "r."),
                1 => ("r AS x", "x."),
                _ => ("r", ""),
            };
            let column = |name: &str| format!("{qualifier}{name}");
            let filter = self.r.as_ref().map(|c| c.ours(&column, &R));
            return format!(
                "SELECT * FROM {from}{}",
                where_(filter.into_iter().collect())
            );
        };
        let itself = std::ptr::eq(columns, &R[..]);
        let other_name = if itself { "r" } else { "q" };
        // A table joined with itself needs an alias on one side.
        let (first, second, from) = match (self.style, itself) {
            (1, _) => ("x", "y", format!("r x JOIN {other_name} AS y")),
            (_, true) => ("r", "y", "r JOIN r AS y".to_owned()),
            _ => ("r", "q", "r JOIN q".to_owned()),
        };
        let in_both =
            |name: &str| R.iter().any(|c| c.0 == name) && columns.iter().any(|c| c.0 == name);
        let style = self.style;
        let naming = |qualifier: &'static str| {
            move |name: &str| {
                if style == 2 && !in_both(name) {
                    name.to_owned()
                } else {
                    format!("{qualifier}.{name}")
                }
            }
        };
        let (left, right) = (naming(first), naming(second));
        let (a, b) = (left(R[rc].0), right(columns[qc].0));
        let on = if self.on.is_some_and(|(_, swap, _)| swap) {
            format!("{b} = {a}")
        } else {
            format!("{a} = {b}")
        };
        let parts = [
            self.r.as_ref().map(|c| format!("({})", c.ours(&left, &R))),
            self.q
                .as_ref()
                .map(|c| format!("({})", c.ours(&right, columns))),
        ];
        format!(
            "SELECT {first}.* FROM {from} ON {on}{}",
            where_(parts.into_iter().flatten().collect())
        )
    }

    /// The documented meaning in SQLite (selecting `r.id`) and its
    /// parameters; `None` if the query must be refused.
    fn sqlite(&self) -> Option<(String, Vec<Sql>)> {
        let mut params = Vec::new();
        let mut parts = Vec::new();
        if let Some(c) = &self.r {
            parts.push(format!("({})", c.sqlite("x", &R, &mut params)?));
        }
        let mut from = "r AS x".to_owned();
        if let Some((columns, rc, qc)) = self.other() {
            if let Some(c) = &self.q {
                parts.push(format!("({})", c.sqlite("y", columns, &mut params)?));
            }
            let other = if std::ptr::eq(columns, &R[..]) {
                "r"
            } else {
                "q"
            };
            // A join pairs NULL with NULL, and compares floats in total order.
            let key = if columns[qc].1 == Kind::F64 {
                "_key"
            } else {
                ""
            };
            from = format!(
                "{from} JOIN {other} AS y ON x.{}{key} IS y.{}{key}",
                R[rc].0, columns[qc].0
            );
        }
        let filter = if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        };
        Some((format!("SELECT x.id FROM {from}{filter}"), params))
    }
}

/// A change to one table: a row upserted under its id, or deleted.
#[derive(Debug, Clone)]
enum Op {
    UpsertR(u32, Vec<Cell>),
    DeleteR(u32),
    UpsertQ(u32, Vec<Cell>),
    DeleteQ(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..6, row(&R)).prop_map(|(id, cells)| Op::UpsertR(id, cells)),
        1 => (0u32..6).prop_map(Op::DeleteR),
        2 => (0u32..4, row(&Q)).prop_map(|(id, cells)| Op::UpsertQ(id, cells)),
        1 => (0u32..4).prop_map(Op::DeleteQ),
    ]
}

/// The datastore and SQLite, holding the same rows.
struct Stores {
    store: Datastore,
    sqlite: rusqlite::Connection,
}

fn sqlite_columns(columns: &[(&str, Kind, bool)]) -> Vec<String> {
    let mut names = Vec::new();
    for (name, kind, _) in columns {
        names.push((*name).to_owned());
        if matches!(kind, Kind::F64 | Kind::F32) {
            names.push(format!("{name}_key"));
        }
    }
    names
}

impl Stores {
    fn new() -> Self {
        let sqlite = rusqlite::Connection::open_in_memory().unwrap();
        for (name, columns) in [("r", &R[..]), ("q", &Q[..])] {
            // No declared types: no affinity converts what is stored.
            let mut names = sqlite_columns(columns);
            names[0].push_str(" PRIMARY KEY");
            sqlite
                .execute(&format!("CREATE TABLE {name} ({})", names.join(", ")), [])
                .unwrap();
        }
        Self {
            store: Datastore::new(schema().tables),
            sqlite,
        }
    }

    fn apply(&mut self, ops: &[Op]) -> worldline_datastore::TxDelta {
        self.store.begin().unwrap();
        for op in ops {
            let (table, id, cells) = match op {
                Op::UpsertR(id, cells) => (0, *id, Some(cells)),
                Op::DeleteR(id) => (0, *id, None),
                Op::UpsertQ(id, cells) => (1, *id, Some(cells)),
                Op::DeleteQ(id) => (1, *id, None),
            };
            let (name, columns) = if table == 0 {
                ("r", &R[..])
            } else {
                ("q", &Q[..])
            };
            let mut key = Vec::new();
            encode_value(&Value::U32(id), &mut key);
            match cells {
                None => {
                    self.store.delete(table, 0, &key).unwrap();
                    self.sqlite
                        .execute(&format!("DELETE FROM {name} WHERE id = ?1"), [id])
                        .unwrap();
                }
                Some(cells) => {
                    let cells: Vec<Cell> = std::iter::once(Cell::Int(id.into()))
                        .chain(cells.iter().cloned())
                        .collect();
                    let mut bytes = Vec::new();
                    for (cell, (_, kind, _)) in cells.iter().zip(columns) {
                        encode_value(&cell.value(*kind), &mut bytes);
                    }
                    if self.store.find(table, 0, &key).unwrap().is_some() {
                        self.store.update(table, 0, &bytes).unwrap();
                    } else {
                        self.store.insert(table, &bytes).unwrap();
                    }
                    let values: Vec<Sql> = cells
                        .iter()
                        .zip(columns)
                        .flat_map(|(cell, (_, kind, _))| cell.sql(*kind))
                        .collect();
                    let holes = vec!["?"; values.len()].join(", ");
                    self.sqlite
                        .execute(
                            &format!("INSERT OR REPLACE INTO {name} VALUES ({holes})"),
                            rusqlite::params_from_iter(values),
                        )
                        .unwrap();
                }
            }
        }
        self.store.commit()
    }

    /// The ids of `r`'s rows SQLite selects, sorted (with repeats for joins).
    fn sqlite_ids(&self, sql: &str, params: &[Sql]) -> Vec<u32> {
        let mut statement = self.sqlite.prepare(sql).unwrap();
        let mut ids: Vec<u32> = statement
            .query_map(rusqlite::params_from_iter(params), |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The ids of rows of `r`, sorted.
fn ids(rows: &[Row]) -> Vec<u32> {
    let columns = &schema().tables[0].columns;
    let mut ids: Vec<u32> = rows
        .iter()
        .map(|row| match decode_product(columns, row).unwrap()[0] {
            Value::U32(id) => id,
            _ => unreachable!(),
        })
        .collect();
    ids.sort_unstable();
    ids
}

proptest! {
    #![proptest_config(cases(256))]

    /// Every query selects what SQLite selects under the documented
    /// semantics, or is refused exactly where the documentation refuses
    /// it; and subscriptions kept up to date by incremental updates equal
    /// a fresh evaluation after every transaction.
    #[test]
    fn queries_select_what_sqlite_selects_and_stay_exact(
        seed in proptest::collection::vec(op(), 0..14),
        queries in proptest::collection::vec(query(), 1..10),
        transactions in proptest::collection::vec(proptest::collection::vec(op(), 1..5), 0..6),
    ) {
        let schema = schema();
        let mut stores = Stores::new();
        stores.apply(&seed);
        let mut engine = SubscriptionEngine::default();
        let mut subscribed = Vec::new();
        for query in &queries {
            let sql = query.ours();
            match (compile(&sql, &schema, false), query.sqlite()) {
                (Ok(compiled), Some(reference)) => {
                    let id = engine.subscribe(compiled);
                    let cache = engine.initial_rows(id, &stores.store);
                    subscribed.push((sql, reference, id, cache));
                }
                (Err(QueryError::BadLiteral(_) | QueryError::UnknownName(_) | QueryError::Unsupported(_) | QueryError::Syntax(_)), None) => {}
                (Err(e), Some(_)) => prop_assert!(false, "{sql}: refused ({e}), but the documentation accepts it"),
                (Err(e), None) => prop_assert!(false, "{sql}: refused with an unexpected kind of error: {e:?}"),
                (Ok(_), None) => prop_assert!(false, "{sql}: accepted, but the documentation refuses it"),
            }
        }
        for step in std::iter::once(None).chain(transactions.iter().map(Some)) {
            if let Some(ops) = step {
                let delta = stores.apply(ops);
                let updates: BTreeMap<_, _> = engine.evaluate(&delta, &stores.store).into_iter().collect();
                for (_, _, id, cache) in &mut subscribed {
                    if let Some(update) = updates.get(id) {
                        apply_update(cache, update);
                    }
                }
            }
            for (sql, (reference, params), id, cache) in &subscribed {
                let expected = stores.sqlite_ids(reference, params);
                let fresh = ids(&engine.initial_rows(*id, &stores.store));
                prop_assert_eq!(&fresh, &expected, "fresh evaluation of {}\nSQLite: {}", sql, reference);
                prop_assert_eq!(&ids(cache), &expected, "incremental updates of {}", sql);
            }
        }
    }
}
