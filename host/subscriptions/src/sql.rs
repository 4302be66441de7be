//! Parsing SQL with `sqlparser` and compiling it against a module schema.
//!
//! Queries come from anyone, so their size and nesting are bounded before
//! anything recursive sees them: the text by [`MAX_QUERY_BYTES`], its tokens
//! by [`MAX_QUERY_TOKENS`] (which also bounds how deep the parser's tree of a
//! flat `a OR b OR ...` chain can be), and parentheses and brackets by
//! [`MAX_NESTING_DEPTH`]. Chains of `AND` or `OR` compile to one n-ary node,
//! so conditions nest only as deep as the query's parentheses, and compiling
//! and evaluating them recurse no deeper than [`MAX_NESTING_DEPTH`].

use std::fmt::Display;
use std::num::IntErrorKind;

use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, FunctionArguments, GroupByExpr, JoinConstraint, JoinOperator,
    LimitClause, ObjectNamePart, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableFactor, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use worldline_datastore::{
    AlgebraicType, MAX_NESTING_DEPTH, ModuleSchema, TableId, TableSchema, Value, excerpt,
};

use crate::clauses;
use crate::predicate::{Comparison, Predicate};

/// Why a query was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The text is not SQL.
    #[error("not valid SQL: {0}")]
    Syntax(String),
    /// Valid SQL that Worldline does not support (yet); the message names the construct.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// No table or column has this name.
    #[error("{0}")]
    UnknownName(String),
    /// A literal does not fit the column it is compared with.
    #[error("{0}")]
    BadLiteral(String),
    /// The table is private and the caller is not the database owner.
    #[error("table `{0}` is private: only the database owner may query it")]
    Private(String),
    /// The query is longer than [`MAX_QUERY_BYTES`] or has more than
    /// [`MAX_QUERY_TOKENS`] tokens.
    #[error("the query is too large: {0}")]
    TooLarge(String),
    /// The query nests parentheses, brackets, `AND`/`OR` or operators such
    /// as `NOT` more than [`MAX_NESTING_DEPTH`] levels deep.
    #[error(
        "the query is nested too deeply: at most {MAX_NESTING_DEPTH} levels of parentheses, \
         brackets, AND/OR and NOT are accepted"
    )]
    TooDeep,
}

/// The longest query accepted, in bytes of SQL text (16 KiB).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Most tokens a query may have: names, keywords, literals, operators and
/// punctuation, not counting whitespace and comments. `id = 7 OR` is four,
/// so a condition can hold about a thousand comparisons.
pub const MAX_QUERY_TOKENS: usize = 4096;

/// The parser's own limit on how deeply it recurses. A level of a condition
/// can take it two (the operand of `AND`, then the parenthesis around it),
/// and a statement takes a few before its condition.
const PARSER_RECURSION_LIMIT: usize = 2 * MAX_NESTING_DEPTH + 16;

/// How many characters of a query, or of a part of one, an error message quotes.
pub const QUOTED_QUERY_CHARS: usize = 200;

/// `text` (a query, or an error about one) as error messages quote it: whole
/// if it has at most [`QUOTED_QUERY_CHARS`] characters, else its first
/// [`QUOTED_QUERY_CHARS`] characters followed by `…`.
pub fn query_excerpt(text: &str) -> String {
    excerpt(text, QUOTED_QUERY_CHARS)
}

impl QueryError {
    /// The same error, its message cut short if it is long: messages quote
    /// excerpts of the query, and around them say what is wrong.
    fn clipped(self) -> Self {
        let clip = |text: String| excerpt(&text, 2 * QUOTED_QUERY_CHARS);
        match self {
            QueryError::Syntax(text) => QueryError::Syntax(clip(text)),
            QueryError::Unsupported(text) => QueryError::Unsupported(clip(text)),
            QueryError::UnknownName(text) => QueryError::UnknownName(clip(text)),
            QueryError::BadLiteral(text) => QueryError::BadLiteral(clip(text)),
            QueryError::Private(text) => QueryError::Private(clip(text)),
            QueryError::TooLarge(text) => QueryError::TooLarge(text),
            QueryError::TooDeep => QueryError::TooDeep,
        }
    }
}

/// A query ready to evaluate: rows of `table` that satisfy `predicate`
/// and, for a join, have matching rows in the joined table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompiledQuery {
    pub(crate) table: TableId,
    pub(crate) predicate: Option<Predicate>,
    pub(crate) join: Option<Join>,
}

/// `JOIN other ON table.column = other.other_column`, both columns indexed.
/// The query yields a row of `table` once per matching row of `other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Join {
    pub(crate) column: usize,
    pub(crate) index: usize,
    pub(crate) other: TableId,
    pub(crate) other_column: usize,
    pub(crate) other_index: usize,
    pub(crate) other_predicate: Option<Predicate>,
}

/// A table as a query names it.
struct Scope<'a> {
    id: TableId,
    table: &'a TableSchema,
    qualifier: String,
}

impl<'a> Scope<'a> {
    fn resolve(
        schema: &'a ModuleSchema,
        relation: &TableFactor,
        owner: bool,
    ) -> Result<Self, QueryError> {
        clauses::table(relation)?;
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(unsupported("subqueries and table functions in FROM"));
        };
        let [ObjectNamePart::Identifier(table_name)] = name.0.as_slice() else {
            return Err(unsupported(format!(
                "qualified table name `{}`",
                quoted(name)
            )));
        };
        let id = schema.table_id(&table_name.value).ok_or_else(|| {
            QueryError::UnknownName(format!("no table named `{}`", quoted(&table_name.value)))
        })?;
        let table = &schema.tables[id];
        if !table.public && !owner {
            return Err(QueryError::Private(table.name.clone()));
        }
        let qualifier = alias
            .as_ref()
            .map_or(table.name.clone(), |a| a.name.value.clone());
        Ok(Self {
            id,
            table,
            qualifier,
        })
    }

    /// The single-column index on `column`, which a join needs.
    fn index_on(&self, column: usize) -> Result<usize, QueryError> {
        self.table
            .indexes
            .iter()
            .position(|i| i.columns == [column])
            .ok_or_else(|| {
                unsupported(format!(
                    "joining on `{}.{}`, which has no index of its own",
                    quoted(&self.qualifier),
                    self.table.column_name(column)
                ))
            })
    }
}

impl CompiledQuery {
    /// The table the query reads.
    pub fn table(&self) -> TableId {
        self.table
    }
}

fn unsupported(what: impl Into<String>) -> QueryError {
    QueryError::Unsupported(what.into())
}

/// Compiles `sql` against `schema`. `owner` says whether the caller owns
/// the database, which private tables require.
///
/// Never panics and recurses only to a bounded depth, whatever `sql` is:
/// queries over the size limits ([`MAX_QUERY_BYTES`], [`MAX_QUERY_TOKENS`])
/// are refused with [`QueryError::TooLarge`] before they are parsed, and
/// nesting beyond [`MAX_NESTING_DEPTH`] with [`QueryError::TooDeep`]. Error
/// messages quote at most [`QUOTED_QUERY_CHARS`] characters of the query.
pub fn compile(sql: &str, schema: &ModuleSchema, owner: bool) -> Result<CompiledQuery, QueryError> {
    compile_query(sql, schema, owner).map_err(QueryError::clipped)
}

/// Parses `sql` after checking its size and bracket depth on its tokens,
/// so that the parser never sees more than the limits allow.
fn parse(sql: &str) -> Result<Vec<Statement>, QueryError> {
    if sql.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLarge(format!(
            "it is {} bytes long; at most {MAX_QUERY_BYTES} bytes are accepted",
            sql.len()
        )));
    }
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| QueryError::Syntax(ParserError::from(e).to_string()))?;
    let (mut count, mut depth) = (0usize, 0usize);
    for token in &tokens {
        match &token.token {
            Token::Whitespace(Whitespace::SingleLineComment { comment, .. })
                if comment
                    .split('\r')
                    .skip(1)
                    .any(|after| !after.is_empty() && !after.starts_with('\n')) =>
            {
                return Err(QueryError::Syntax(
                    "a `--` comment runs to a line feed, and this one holds a carriage return \
                     without one: what follows it on that line would be ignored; end the line \
                     with a line feed"
                        .into(),
                ));
            }
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                if depth > MAX_NESTING_DEPTH {
                    return Err(QueryError::TooDeep);
                }
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
        count += 1;
        if count > MAX_QUERY_TOKENS {
            return Err(QueryError::TooLarge(format!(
                "it has more than {MAX_QUERY_TOKENS} tokens (names, literals, operators and \
                 punctuation); split it into several queries"
            )));
        }
    }
    Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => QueryError::TooDeep,
            e => QueryError::Syntax(e.to_string()),
        })
}

fn compile_query(
    sql: &str,
    schema: &ModuleSchema,
    owner: bool,
) -> Result<CompiledQuery, QueryError> {
    let mut statements = parse(sql)?;
    let statement = match (statements.pop(), statements.is_empty()) {
        (Some(statement), true) => statement,
        (None, _) => return Err(QueryError::Syntax("no query".into())),
        (Some(_), false) => return Err(unsupported("more than one statement")),
    };
    let Statement::Query(query) = statement else {
        return Err(unsupported("statements other than SELECT"));
    };
    clauses::query(&query)?;
    if query.with.is_some() {
        return Err(unsupported("WITH"));
    }
    if query.order_by.is_some() {
        return Err(unsupported("ORDER BY"));
    }
    match &query.limit_clause {
        // `OFFSET N` and `LIMIT ALL OFFSET N` have an offset and no limit.
        Some(LimitClause::LimitOffset {
            limit: None,
            offset: Some(_),
            ..
        }) => return Err(unsupported("OFFSET")),
        Some(_) => return Err(unsupported("LIMIT")),
        None if query.fetch.is_some() => return Err(unsupported("FETCH")),
        None => {}
    }
    let SetExpr::Select(select) = *query.body else {
        return Err(unsupported("UNION, VALUES and other set expressions"));
    };
    clauses::select(&select)?;
    if !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || select.having.is_some()
    {
        return Err(unsupported("GROUP BY and HAVING"));
    }
    let [from] = select.from.as_slice() else {
        if select.from.is_empty() {
            return Err(unsupported("a query without FROM (name the table to read)"));
        }
        return Err(unsupported("selecting from several tables (use JOIN)"));
    };
    let scope = Scope::resolve(schema, &from.relation, owner)?;
    for join in &from.joins {
        clauses::join(join)?;
    }
    for item in &select.projection {
        if let SelectItem::Wildcard(options) | SelectItem::QualifiedWildcard(_, options) = item {
            clauses::wildcard(options)?;
        }
    }
    // `*`, or `T.*` naming the first table (quoted or not).
    let projected = |item: &SelectItem| match item {
        SelectItem::Wildcard(_) => true,
        SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
            matches!(name.0.as_slice(), [ObjectNamePart::Identifier(table)]
                if table.value == scope.qualifier)
        }
        _ => false,
    };
    match (from.joins.as_slice(), select.projection.as_slice()) {
        ([], [item]) if projected(item) => {
            let predicate = select
                .selection
                .as_ref()
                .map(|expr| compile_predicate(expr, &[&scope], 1))
                .transpose()?;
            Ok(CompiledQuery {
                table: scope.id,
                predicate,
                join: None,
            })
        }
        ([join], [item @ SelectItem::QualifiedWildcard(..)]) if projected(item) => {
            let other = Scope::resolve(schema, &join.relation, owner)?;
            if other.qualifier == scope.qualifier {
                return Err(
                    if join_aliased(&from.relation) || join_aliased(&join.relation) {
                        QueryError::UnknownName(format!(
                            "both joined tables are called `{}`: give them different aliases",
                            quoted(&scope.qualifier)
                        ))
                    } else {
                        unsupported("joining a table with itself without aliases")
                    },
                );
            }
            let on = match &join.join_operator {
                JoinOperator::Join(JoinConstraint::On(on))
                | JoinOperator::Inner(JoinConstraint::On(on)) => on,
                _ => return Err(unsupported("joins other than `JOIN ... ON a.x = b.y`")),
            };
            let (column, other_column) = join_columns(on, &scope, &other)?;
            let mut predicate = Vec::new();
            let mut other_predicate = Vec::new();
            for conjunct in select.selection.iter().flat_map(conjuncts) {
                // Each conjunct is one level below the `AND` that joins them.
                let compiled = compile_predicate(conjunct, &[&scope, &other], 2)?;
                let target = match tables_named(conjunct, &[&scope, &other])?.as_slice() {
                    [0] => &mut predicate,
                    [1] => &mut other_predicate,
                    _ => {
                        return Err(unsupported(format!(
                            "a condition on both joined tables: `{}`",
                            quoted(conjunct)
                        )));
                    }
                };
                target.push(compiled);
            }
            Ok(CompiledQuery {
                table: scope.id,
                predicate: Predicate::all(predicate),
                join: Some(Join {
                    column,
                    index: scope.index_on(column)?,
                    other: other.id,
                    other_column,
                    other_index: other.index_on(other_column)?,
                    other_predicate: Predicate::all(other_predicate),
                }),
            })
        }
        ([_], _) => Err(unsupported(format!(
            "a join must select `{}.*` (rows of the first table)",
            scope.qualifier
        ))),
        (_, _) if from.joins.len() > 1 => Err(unsupported("more than one JOIN")),
        ([], [SelectItem::QualifiedWildcard(kind, _)]) => Err(QueryError::UnknownName(format!(
            "`{}` names no table of the query (it reads `{}`)",
            quoted(kind),
            quoted(&scope.qualifier)
        ))),
        _ => Err(unsupported(
            "selecting columns other than `*` (rows are sent whole)",
        )),
    }
}

/// Whether `relation` is given an alias (`FROM item AS a`).
fn join_aliased(relation: &TableFactor) -> bool {
    matches!(relation, TableFactor::Table { alias: Some(_), .. })
}

/// An expression (or part of a query) as an error message quotes it.
fn quoted(expr: &(impl Display + ?Sized)) -> String {
    query_excerpt(&expr.to_string())
}

/// `expr` without the parentheses around it.
fn unnest(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// The operands of a chain of `op` (`a OR b OR c`, however parenthesised),
/// left to right. The parser nests a long chain as deeply as it is long, so
/// this walks it with a stack of its own rather than by recursion.
fn chain<'e>(expr: &'e Expr, op: &BinaryOperator) -> Vec<&'e Expr> {
    let mut operands = Vec::new();
    let mut pending = vec![expr];
    while let Some(expr) = pending.pop() {
        match unnest(expr) {
            Expr::BinaryOp {
                left,
                op: operator,
                right,
            } if operator == op => {
                pending.push(right);
                pending.push(left);
            }
            operand => operands.push(operand),
        }
    }
    operands
}

/// The top-level `AND`ed parts of a condition.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    chain(expr, &BinaryOperator::And)
}

/// Which of `scopes` (by position) an expression's columns belong to,
/// sorted and deduplicated. Walks the expression without recursion.
fn tables_named(expr: &Expr, scopes: &[&Scope]) -> Result<Vec<usize>, QueryError> {
    let mut found = Vec::new();
    let mut pending = vec![expr];
    while let Some(expr) = pending.pop() {
        if let Some((scope, _)) = column(expr, scopes)? {
            found.push(scope);
        }
        match expr {
            Expr::BinaryOp { left, right, .. } => {
                pending.push(left);
                pending.push(right);
            }
            Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => pending.push(inner),
            _ => {}
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// The columns of `ON a.x = b.y`, as (column of `scope`, column of `other`).
fn join_columns(on: &Expr, scope: &Scope, other: &Scope) -> Result<(usize, usize), QueryError> {
    let on = match on {
        Expr::Nested(inner) => inner,
        other => other,
    };
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = on
    else {
        return Err(unsupported(format!(
            "the join condition `{}` (use `a.x = b.y`)",
            quoted(on)
        )));
    };
    let scopes = [scope, other];
    match (column(left, &scopes)?, column(right, &scopes)?) {
        (Some((0, a)), Some((1, b))) | (Some((1, b)), Some((0, a))) => {
            let (ta, tb) = (
                &scope.table.columns.fields[a].ty,
                &other.table.columns.fields[b].ty,
            );
            if ta != tb {
                return Err(QueryError::BadLiteral(format!(
                    "the join compares {ta} with {tb}"
                )));
            }
            Ok((a, b))
        }
        _ => Err(unsupported(format!(
            "the join condition `{}` (it must compare a column of each table)",
            quoted(on)
        ))),
    }
}

/// Compiles a condition `depth` levels deep (the whole `WHERE` is level 1).
fn compile_predicate(
    expr: &Expr,
    scopes: &[&Scope],
    depth: usize,
) -> Result<Predicate, QueryError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(QueryError::TooDeep);
    }
    let expr = unnest(expr);
    match expr {
        Expr::BinaryOp {
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            ..
        } => {
            let operands = chain(expr, op)
                .into_iter()
                .map(|operand| compile_predicate(operand, scopes, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(match op {
                BinaryOperator::And => Predicate::And(operands),
                _ => Predicate::Or(operands),
            })
        }
        Expr::BinaryOp { left, op, right } => {
            let comparison = match op {
                BinaryOperator::Eq => Comparison::Eq,
                BinaryOperator::NotEq => Comparison::NotEq,
                BinaryOperator::Lt => Comparison::Lt,
                BinaryOperator::LtEq => Comparison::LtEq,
                BinaryOperator::Gt => Comparison::Gt,
                BinaryOperator::GtEq => Comparison::GtEq,
                other => return Err(unsupported(format!("the operator `{other}`"))),
            };
            match (column(left, scopes)?, column(right, scopes)?) {
                (Some((scope, column)), None) => {
                    compare(scopes[scope].table, column, comparison, right)
                }
                (None, Some((scope, column))) => {
                    compare(scopes[scope].table, column, comparison.flipped(), left)
                }
                (Some(_), Some(_)) => Err(unsupported(format!(
                    "comparing two columns: `{}`",
                    quoted(expr)
                ))),
                (None, None) => Err(unsupported(format!(
                    "a comparison without a column: `{}`",
                    quoted(expr)
                ))),
            }
        }
        other => Err(unsupported(format!("the condition `{}`", quoted(other)))),
    }
}

/// The column an expression names, if it is a column reference: the
/// position of its table in `scopes` and its column there.
fn column(expr: &Expr, scopes: &[&Scope]) -> Result<Option<(usize, usize)>, QueryError> {
    let expr = unnest(expr);
    let (qualifier, name) = match expr {
        Expr::Identifier(ident) => (None, &ident.value),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [scope, ident] => (Some(&scope.value), &ident.value),
            _ => {
                return Err(QueryError::UnknownName(format!(
                    "no column `{}`",
                    quoted(expr)
                )));
            }
        },
        // Names that are also SQL keywords parsed as niladic functions
        // (`user`, `current_date`, ...): `user.identity` is a column of `user`.
        Expr::CompoundFieldAccess { root, access_chain } => {
            match (bare_name(root), access_chain.as_slice()) {
                (Some(scope), [AccessExpr::Dot(Expr::Identifier(ident))]) => {
                    (Some(scope), &ident.value)
                }
                _ => return Ok(None),
            }
        }
        other => match bare_name(other) {
            Some(name) => (None, name),
            None => return Ok(None),
        },
    };
    let mut found = scopes.iter().enumerate().filter_map(|(position, scope)| {
        let named = qualifier.is_none_or(|q| *q == scope.qualifier);
        let column = scope.table.column_id(name).filter(|_| named)?;
        Some((position, column))
    });
    match (found.next(), found.next()) {
        (Some(hit), None) => Ok(Some(hit)),
        (Some(_), Some(_)) => Err(QueryError::UnknownName(format!(
            "column `{}` is ambiguous: qualify it with its table",
            quoted(name)
        ))),
        (None, _) => Err(QueryError::UnknownName(match qualifier {
            Some(q) if !scopes.iter().any(|s| s.qualifier == *q) => {
                format!("no table `{}` in the query (`{}`)", quoted(q), quoted(expr))
            }
            _ => format!(
                "no column `{}` in {}{}",
                quoted(expr),
                scopes
                    .iter()
                    .map(|s| if s.qualifier == s.table.name {
                        format!("`{}`", s.table.name)
                    } else {
                        format!("`{}` (`{}`)", s.qualifier, s.table.name)
                    })
                    .collect::<Vec<_>>()
                    .join(" or "),
                string_hint(expr)
            ),
        })),
    }
}

/// For a name in double quotes, which SQL reads as a column's name: how
/// to write the string that was most likely meant.
fn string_hint(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) if ident.quote_style == Some('"') => format!(
            " (double quotes name a column; write a string in single quotes: '{}')",
            quoted(&ident.value.replace('\'', "''"))
        ),
        _ => String::new(),
    }
}

/// The name in an identifier, or in a keyword the parser read as a
/// function without arguments.
fn bare_name(expr: &Expr) -> Option<&String> {
    match expr {
        Expr::Identifier(ident) => Some(&ident.value),
        Expr::Function(function) if matches!(function.args, FunctionArguments::None) => {
            match function.name.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => Some(&ident.value),
                _ => None,
            }
        }
        _ => None,
    }
}

fn compare(
    table: &TableSchema,
    column: usize,
    op: Comparison,
    literal: &Expr,
) -> Result<Predicate, QueryError> {
    let ty = &table.columns.fields[column].ty;
    let literal = unnest(literal);
    let literal = literal_value(literal, ty).map_err(|problem| {
        QueryError::BadLiteral(format!(
            "column `{}` is {ty}: {problem}",
            table.column_name(column)
        ))
    })?;
    if matches!(literal, Value::Option(None)) && !matches!(op, Comparison::Eq | Comparison::NotEq) {
        return Err(unsupported("ordering comparisons with NULL"));
    }
    Ok(Predicate::Compare {
        column,
        op,
        literal,
    })
}

/// A SQL literal as a value of the column type `ty`.
fn literal_value(expr: &Expr, ty: &AlgebraicType) -> Result<Value, String> {
    if let AlgebraicType::Option(inner) = ty {
        return match expr {
            Expr::Value(v) if v.value == SqlValue::Null => Ok(Value::Option(None)),
            _ => Ok(Value::Option(Some(Box::new(literal_value(expr, inner)?)))),
        };
    }
    if matches!(expr, Expr::Value(v) if v.value == SqlValue::Null) {
        return Err("a column of this type is never NULL".into());
    }
    let (negative, expr) = match expr {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (true, unnest(expr)),
        other => (false, other),
    };
    let Expr::Value(value) = expr else {
        return Err(format!("`{}` is not a literal", quoted(expr)));
    };
    let value = &value.value;
    let number = || -> Result<&str, String> {
        match value {
            SqlValue::Number(text, _) => Ok(text.as_str()),
            other => Err(format!("expected a number, found {}", found(other))),
        }
    };
    let sign = if negative { "-" } else { "" };
    // The digits as a magnitude, so that every u128 and the i128 minimum
    // can be written.
    let magnitude = || -> Result<u128, String> {
        let text = number()?;
        text.parse()
            .map_err(|e: std::num::ParseIntError| match e.kind() {
                IntErrorKind::PosOverflow => format!("{sign}{} is out of range", quoted(text)),
                _ => format!("`{sign}{}` is not an integer", quoted(text)),
            })
    };
    let integer = || -> Result<i128, String> {
        let n = magnitude()?;
        let signed = if negative {
            0i128.checked_sub_unsigned(n)
        } else {
            i128::try_from(n).ok()
        };
        signed.ok_or_else(|| format!("{sign}{n} is out of range"))
    };
    use AlgebraicType as T;
    Ok(match ty {
        T::U8 => Value::U8(narrow(integer()?)?),
        T::U16 => Value::U16(narrow(integer()?)?),
        T::U32 => Value::U32(narrow(integer()?)?),
        T::U64 => Value::U64(narrow(integer()?)?),
        T::U128 if !negative => Value::U128(magnitude()?),
        T::U128 => Value::U128(narrow(integer()?)?),
        T::I8 => Value::I8(narrow(integer()?)?),
        T::I16 => Value::I16(narrow(integer()?)?),
        T::I32 => Value::I32(narrow(integer()?)?),
        T::I64 => Value::I64(narrow(integer()?)?),
        T::I128 => Value::I128(integer()?),
        T::Timestamp => Value::Timestamp(narrow(integer()?)?),
        T::F32 => Value::F32(float(number()?, negative)?),
        T::F64 => Value::F64(float(number()?, negative)?),
        T::Bool if !negative => match value {
            SqlValue::Boolean(b) => Value::Bool(*b),
            other => {
                return Err(format!("expected true or false, found {}", found(other)));
            }
        },
        T::String if !negative => match value {
            SqlValue::SingleQuotedString(s) => Value::String(s.as_str().into()),
            other => {
                return Err(format!(
                    "expected a 'quoted string', found {}",
                    found(other)
                ));
            }
        },
        T::Identity if !negative => Value::Identity(hex_bytes(value)?),
        T::ConnectionId if !negative => Value::ConnectionId(hex_bytes(value)?),
        T::Bool | T::String | T::Identity | T::ConnectionId => {
            return Err("a minus sign applies only to numbers".into());
        }
        other => return Err(format!("comparing {other} columns is not supported")),
    })
}

/// A number literal as a float of the column's type `F`, rounded once to
/// the nearest `F` (reading it as an `f64` and narrowing that to an `f32`
/// would round twice, and could land on the other neighbour). A number too
/// large for `F`, which rounding would make infinite, is out of range, as
/// for integers; one too small for it rounds to zero.
fn float<F>(text: &str, negative: bool) -> Result<F, String>
where
    F: std::str::FromStr + std::ops::Neg<Output = F> + Into<f64> + Copy,
{
    let magnitude: F = text
        .parse()
        .map_err(|_| format!("`{}` is not a number", quoted(text)))?;
    if magnitude.into().is_infinite() {
        let sign = if negative { "-" } else { "" };
        return Err(format!("{sign}{} is out of range", quoted(text)));
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// A literal of the wrong kind as an error message names it. The parser
/// reads `0x10` as the hex string `X'10'`: a message quoting that would
/// show a literal the query never had, so hex is named as hex, with the
/// columns it is read for.
fn found(value: &SqlValue) -> String {
    match value {
        SqlValue::HexStringLiteral(digits) => format!(
            "the hex `0x{}` (hex is read only for identity and connection id columns)",
            quoted(digits)
        ),
        other => format!("`{}`", quoted(other)),
    }
}

/// An integer literal narrowed to the column's integer type.
fn narrow<N: TryFrom<i128>>(n: i128) -> Result<N, String> {
    N::try_from(n).map_err(|_| format!("{n} is out of range"))
}

/// `0x...` hex (as a number-like token, `X'...'` or a quoted string) as N bytes.
fn hex_bytes<const N: usize>(value: &SqlValue) -> Result<[u8; N], String> {
    let text = match value {
        SqlValue::Number(text, _)
        | SqlValue::SingleQuotedString(text)
        | SqlValue::HexStringLiteral(text) => text,
        other => {
            return Err(format!(
                "expected 0x followed by {} hex digits, found `{}`",
                2 * N,
                quoted(other)
            ));
        }
    };
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 2 * N || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected {} hex digits, found `{}`",
            2 * N,
            quoted(text)
        ));
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).map_err(|e| e.to_string())?, 16)
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}
