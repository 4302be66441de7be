//! Fuzzing the SQL compiler (issue #9 item 1, "Tests that make this stick"):
//! any text compiles to a query or a typed error, never a panic or a stack
//! overflow; conditions that compile select exactly the rows a reference
//! evaluation selects; and the size and nesting limits hold exactly where
//! they are documented.
//!
//! CI runs a few hundred cases per property. To fuzz longer, set the case
//! count, e.g. `PROPTEST_CASES=20000 cargo test -p worldline-subscriptions
//! --release --test fuzz_sql`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
mod common;

use common::{Row, run, schema, store};
use worldline_datastore::MAX_NESTING_DEPTH;
use worldline_subscriptions::{
    MAX_QUERY_BYTES, MAX_QUERY_TOKENS, QUOTED_QUERY_CHARS, QueryError, compile,
};

/// `cases` cases, unless `PROPTEST_CASES` says otherwise.
fn cases(cases: u32) -> Config {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => Config::default(),
        Err(_) => Config::with_cases(cases),
    }
}

/// The value of `column` in row `id` of `t`, as the reference evaluates it.
fn column_value(id: u32, row: &Row, column: Column) -> i64 {
    match column {
        Column::Id => id.into(),
        Column::A => row.a.into(),
        Column::B => row.b,
    }
}

#[derive(Debug, Clone, Copy)]
enum Column {
    Id,
    A,
    B,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::NotEq => "<>",
            Op::Lt => "<",
            Op::LtEq => "<=",
            Op::Gt => ">",
            Op::GtEq => ">=",
        }
    }

    fn holds(self, left: i64, right: i64) -> bool {
        match self {
            Op::Eq => left == right,
            Op::NotEq => left != right,
            Op::Lt => left < right,
            Op::LtEq => left <= right,
            Op::Gt => left > right,
            Op::GtEq => left >= right,
        }
    }
}

/// A condition on `t`, as the reference evaluates it.
#[derive(Debug, Clone)]
enum Cond {
    /// `column op literal`, or `literal op column` when `flipped`.
    Compare {
        column: Column,
        op: Op,
        literal: i64,
        flipped: bool,
    },
    /// `s = 'literal'` or `s <> 'literal'`.
    Text {
        equal: bool,
        literal: String,
    },
    All(Vec<Cond>),
    Any(Vec<Cond>),
    /// Parentheses that change nothing.
    Paren(Box<Cond>),
}

impl Cond {
    fn holds(&self, id: u32, row: &Row) -> bool {
        match self {
            Cond::Compare {
                column,
                op,
                literal,
                flipped: false,
            } => op.holds(column_value(id, row, *column), *literal),
            Cond::Compare {
                column,
                op,
                literal,
                flipped: true,
            } => op.holds(*literal, column_value(id, row, *column)),
            Cond::Text { equal, literal } => (row.s == *literal) == *equal,
            Cond::All(parts) => parts.iter().all(|p| p.holds(id, row)),
            Cond::Any(parts) => parts.iter().any(|p| p.holds(id, row)),
            Cond::Paren(inner) => inner.holds(id, row),
        }
    }

    /// The condition as SQL, its columns prefixed with `qualifier`.
    fn sql(&self, qualifier: &str) -> String {
        let group = |parts: &[Cond], op: &str| {
            parts
                .iter()
                .map(|p| match p {
                    Cond::All(_) | Cond::Any(_) => format!("({})", p.sql(qualifier)),
                    p => p.sql(qualifier),
                })
                .collect::<Vec<_>>()
                .join(op)
        };
        match self {
            Cond::Compare {
                column,
                op,
                literal,
                flipped,
            } => {
                let column = format!(
                    "{qualifier}{}",
                    match column {
                        Column::Id => "id",
                        Column::A => "a",
                        Column::B => "b",
                    }
                );
                let literal = literal.to_string();
                let (left, right) = if *flipped {
                    (literal, column)
                } else {
                    (column, literal)
                };
                format!("{left} {} {right}", op.sql())
            }
            Cond::Text { equal, literal } => {
                let op = if *equal { "=" } else { "<>" };
                format!("{qualifier}s {op} '{}'", literal.replace('\'', "''"))
            }
            Cond::All(parts) => group(parts, " AND "),
            Cond::Any(parts) => group(parts, " OR "),
            Cond::Paren(inner) => format!("({})", inner.sql(qualifier)),
        }
    }
}

fn column() -> impl Strategy<Value = Column> {
    prop_oneof![Just(Column::Id), Just(Column::A), Just(Column::B)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::NotEq),
        Just(Op::Lt),
        Just(Op::LtEq),
        Just(Op::Gt),
        Just(Op::GtEq),
    ]
}

/// A comparison; literals of unsigned columns are not negative.
fn leaf() -> impl Strategy<Value = Cond> {
    prop_oneof![
        4 => (column(), op(), -6i64..20, any::<bool>()).prop_map(|(column, op, literal, flipped)| {
            let literal = match column {
                Column::B => literal,
                Column::Id | Column::A => literal.abs(),
            };
            Cond::Compare { column, op, literal, flipped }
        }),
        1 => (any::<bool>(), prop_oneof![Just("r1"), Just("r2"), Just("it's"), Just("")])
            .prop_map(|(equal, literal)| Cond::Text { equal, literal: literal.to_owned() }),
    ]
}

fn condition() -> impl Strategy<Value = Cond> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..6).prop_map(Cond::All),
            prop::collection::vec(inner.clone(), 2..6).prop_map(Cond::Any),
            inner.prop_map(|c| Cond::Paren(Box::new(c))),
        ]
    })
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (
            0u32..12,
            -6i64..6,
            prop_oneof![Just("r1"), Just("r2"), Just("it's"), Just("")],
        )
            .prop_map(|(a, b, s)| Row {
                a,
                b,
                s: s.to_owned(),
            }),
        0..24,
    )
}

/// The ids of `rows` that satisfy `cond`, each `copies(id, row)` times.
fn expected(rows: &[Row], cond: &Cond, copies: impl Fn(&Row) -> usize) -> Vec<u32> {
    (0u32..)
        .zip(rows)
        .filter(|(id, row)| cond.holds(*id, row))
        .flat_map(|(id, row)| std::iter::repeat_n(id, copies(row)))
        .collect()
}

/// An error message is short whatever the query: it quotes excerpts.
fn assert_short(error: &QueryError) -> Result<(), TestCaseError> {
    let length = error.to_string().chars().count();
    prop_assert!(length <= 2 * QUOTED_QUERY_CHARS + 40, "{length}: {error}");
    Ok(())
}

/// Words and symbols of SQL, most of which Worldline does not support.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "SELECT", "*", "FROM", "WHERE", "t", "u", "t.*", "u.*", "id", "a", "b", "s", "t.id",
        "u.t_id", "t.a", "JOIN", "ON", "AND", "OR", "NOT", "=", "<>", "<", "<=", ">", ">=", "(",
        ")", "[", "]", "{", "}", "1", "-", "-1", "1.5e3", "0x00", "'x'", "''", "NULL", "true", "+",
        "::", "IS", "IN", "BETWEEN", "LIMIT", "ORDER", "BY", "GROUP", ",", ";", "\"q\"", "user",
        "--", "/*", "*/", "$1", "?", "LEFT", "UNION", "WITH", "AS", "x", "CASE", "WHEN", "THEN",
        "END", "EXISTS", "DISTINCT", "count", "@", "#", "'", "\\", "é", "\u{0}",
    ])
}

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary text is a query or a typed error with a short message.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        if let Err(error) = compile(&text, &schema(), false) {
            assert_short(&error)?;
        }
    }

    /// SQL-like token soup, with or without the `SELECT * FROM t WHERE`
    /// that gets it past the first checks, is a query or a typed error.
    #[test]
    fn token_soup_never_panics(
        prefix in any::<bool>(),
        tokens in prop::collection::vec(token(), 0..80),
        spaced in any::<bool>(),
    ) {
        let soup = tokens.join(if spaced { " " } else { "" });
        let sql = if prefix { format!("SELECT * FROM t WHERE {soup}") } else { soup };
        if let Err(error) = compile(&sql, &schema(), false) {
            assert_short(&error)?;
        }
    }

    /// A random condition selects exactly the rows the reference selects,
    /// alone or on the first table of a join.
    #[test]
    fn conditions_select_what_the_reference_selects(
        cond in condition(),
        rows in rows(),
        join in any::<bool>(),
        partners in 0u32..8,
    ) {
        let store = store(&rows, partners);
        let (sql, wanted) = if join {
            let sql = format!(
                "SELECT t.* FROM t JOIN u ON t.a = u.t_id WHERE ({}) AND u.id < {partners}",
                cond.sql("t.")
            );
            // `u` has one row per id below `partners`, with `t_id = id % 4`.
            let copies = |row: &Row| (0..partners).filter(|id| id % 4 == row.a).count();
            (sql, expected(&rows, &cond, copies))
        } else {
            let sql = format!("SELECT * FROM t WHERE {}", cond.sql(""));
            (sql, expected(&rows, &cond, |_| 1))
        };
        match run(&sql, &store) {
            Ok(ids) => prop_assert_eq!(ids, wanted, "{}", sql),
            Err(error) => prop_assert!(false, "{sql}: {error}"),
        }
    }

    /// `c0 AND (c1 OR (c2 AND ...))`: accepted up to the nesting limit and
    /// evaluated right, refused with `TooDeep` past it.
    #[test]
    fn alternating_nesting_is_refused_exactly_past_the_limit(
        levels in 1usize..MAX_NESTING_DEPTH + 20,
        leaves in prop::collection::vec(leaf(), MAX_NESTING_DEPTH + 21),
        rows in rows(),
    ) {
        let mut leaves = leaves.into_iter();
        let mut cond = leaves.next().unwrap();
        for level in (0..levels).rev() {
            let parts = vec![leaves.next().unwrap(), cond];
            cond = if level % 2 == 0 { Cond::All(parts) } else { Cond::Any(parts) };
        }
        let sql = format!("SELECT * FROM t WHERE {}", cond.sql(""));
        // The condition is level 1; the comparisons under the last operator are `levels + 1` deep.
        match run(&sql, &store(&rows, 0)) {
            Ok(ids) => {
                prop_assert!(levels < MAX_NESTING_DEPTH);
                prop_assert_eq!(ids, expected(&rows, &cond, |_| 1));
            }
            Err(error) => {
                prop_assert!(levels >= MAX_NESTING_DEPTH, "{levels}: {error}");
                prop_assert_eq!(error, QueryError::TooDeep);
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(32))]

    /// A flat chain of up to 2,000 comparisons: accepted within the size
    /// limits and evaluated right, refused with `TooLarge` beyond them.
    #[test]
    fn flat_chains_are_refused_exactly_past_the_size_limits(
        leaves in prop::collection::vec(leaf(), 1..2_000),
        any_of in any::<bool>(),
        rows in rows(),
    ) {
        let cond = if any_of { Cond::Any(leaves) } else { Cond::All(leaves) };
        let sql = format!("SELECT * FROM t WHERE {}", cond.sql(""));
        let tokens = Tokenizer::new(&GenericDialect {}, &sql)
            .tokenize()
            .unwrap()
            .iter()
            .filter(|token| !matches!(token, Token::Whitespace(_)))
            .count();
        match run(&sql, &store(&rows, 0)) {
            Ok(ids) => {
                prop_assert!(sql.len() <= MAX_QUERY_BYTES && tokens <= MAX_QUERY_TOKENS);
                prop_assert_eq!(ids, expected(&rows, &cond, |_| 1));
            }
            Err(error) => {
                prop_assert!(sql.len() > MAX_QUERY_BYTES || tokens > MAX_QUERY_TOKENS, "{error}");
                prop_assert!(matches!(error, QueryError::TooLarge(_)), "{error}");
            }
        }
    }
}
