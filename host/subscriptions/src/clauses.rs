//! The parts of a parsed query the compiler does not implement, refused by
//! name. `sqlparser` accepts the clauses of many dialects (`TOP`, `QUALIFY`,
//! `TABLESAMPLE`, `|>` pipes, ...); a query using one must be refused, never
//! run with the clause dropped. Each check destructures its whole AST node,
//! so a field added by a new `sqlparser` is a compile error here until it is
//! either refused or known to be harmless.

use sqlparser::ast::{
    Distinct, Join, Query, Select, SelectFlavor, TableAlias, TableFactor, WildcardAdditionalOptions,
};

use crate::sql::QueryError;

fn unsupported(what: &str) -> Result<(), QueryError> {
    Err(QueryError::Unsupported(what.to_owned()))
}

/// Refuses the clauses around the `SELECT` other than those the compiler
/// checks itself (`WITH`, `ORDER BY`, `LIMIT`, `FETCH`).
pub(crate) fn query(query: &Query) -> Result<(), QueryError> {
    let Query {
        with: _,
        body: _,
        order_by: _,
        limit_clause: _,
        fetch: _,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    if !locks.is_empty() {
        return unsupported("FOR UPDATE and other locking clauses");
    }
    if for_clause.is_some() {
        return unsupported("FOR XML, FOR JSON and FOR BROWSE");
    }
    if settings.is_some() {
        return unsupported("SETTINGS");
    }
    if format_clause.is_some() {
        return unsupported("FORMAT");
    }
    if !pipe_operators.is_empty() {
        return unsupported("pipe operators (`|>`)");
    }
    Ok(())
}

/// Refuses the clauses of a `SELECT` other than those the compiler checks
/// itself (the projection, `FROM`, `WHERE`, `GROUP BY`, `HAVING`); `DISTINCT`
/// is refused too, and `ALL` (the default) accepted.
pub(crate) fn select(select: &Select) -> Result<(), QueryError> {
    let Select {
        select_token: _,
        optimizer_hints,
        distinct,
        select_modifiers,
        top,
        top_before_distinct: _,
        projection: _,
        exclude,
        into,
        from: _,
        lateral_views,
        prewhere,
        selection: _,
        connect_by,
        group_by: _,
        cluster_by,
        distribute_by,
        sort_by,
        having: _,
        named_window,
        qualify,
        window_before_qualify: _,
        value_table_mode,
        flavor,
    } = select;
    match distinct {
        None | Some(Distinct::All) => {}
        Some(_) => return unsupported("DISTINCT"),
    }
    if !optimizer_hints.is_empty() {
        return unsupported("optimizer hints");
    }
    if select_modifiers.is_some() {
        return unsupported("SELECT modifiers such as HIGH_PRIORITY");
    }
    if top.is_some() {
        return unsupported("TOP");
    }
    if exclude.is_some() {
        return unsupported("EXCLUDE (rows are sent whole)");
    }
    if into.is_some() {
        return unsupported("SELECT INTO");
    }
    if !lateral_views.is_empty() {
        return unsupported("LATERAL VIEW");
    }
    if prewhere.is_some() {
        return unsupported("PREWHERE (use WHERE)");
    }
    if !connect_by.is_empty() {
        return unsupported("CONNECT BY");
    }
    if !cluster_by.is_empty() || !distribute_by.is_empty() || !sort_by.is_empty() {
        return unsupported("CLUSTER BY, DISTRIBUTE BY and SORT BY");
    }
    if !named_window.is_empty() {
        return unsupported("WINDOW");
    }
    if qualify.is_some() {
        return unsupported("QUALIFY");
    }
    if value_table_mode.is_some() {
        return unsupported("SELECT AS VALUE and SELECT AS STRUCT");
    }
    match flavor {
        SelectFlavor::Standard => Ok(()),
        SelectFlavor::FromFirst | SelectFlavor::FromFirstNoSelect => {
            unsupported("FROM before SELECT (write `SELECT ... FROM ...`)")
        }
    }
}

/// Refuses what may follow a table's name in `FROM` or `JOIN` other than an
/// alias without a column list.
pub(crate) fn table(factor: &TableFactor) -> Result<(), QueryError> {
    let TableFactor::Table {
        name: _,
        alias,
        args,
        with_hints,
        version,
        with_ordinality,
        partitions,
        json_path,
        sample,
        index_directives,
        inheritance,
    } = factor
    else {
        return unsupported("subqueries and table functions in FROM");
    };
    if let Some(TableAlias { columns, .. }) = alias
        && !columns.is_empty()
    {
        return unsupported("column lists in a table alias");
    }
    if args.is_some() {
        return unsupported("table arguments");
    }
    if !with_hints.is_empty() || !index_directives.is_empty() {
        return unsupported("table and index hints");
    }
    if version.is_some() {
        return unsupported("FOR SYSTEM_TIME and other table versions");
    }
    if *with_ordinality {
        return unsupported("WITH ORDINALITY");
    }
    if !partitions.is_empty() {
        return unsupported("PARTITION");
    }
    if json_path.is_some() {
        return unsupported("JSON paths on a table");
    }
    if sample.is_some() {
        return unsupported("TABLESAMPLE");
    }
    if inheritance.is_some() {
        return unsupported("ONLY and other inheritance clauses");
    }
    Ok(())
}

/// Refuses `GLOBAL JOIN`; the join's table is checked by [`table`].
pub(crate) fn join(join: &Join) -> Result<(), QueryError> {
    let Join {
        relation,
        global,
        join_operator: _,
    } = join;
    if *global {
        return unsupported("GLOBAL JOIN");
    }
    table(relation)
}

/// Refuses the options of `*` (`EXCLUDE`, `EXCEPT`, `REPLACE`, `RENAME`,
/// `ILIKE`, an alias): rows are sent whole.
pub(crate) fn wildcard(options: &WildcardAdditionalOptions) -> Result<(), QueryError> {
    let WildcardAdditionalOptions {
        wildcard_token: _,
        opt_ilike,
        opt_exclude,
        opt_except,
        opt_replace,
        opt_rename,
        opt_alias,
    } = options;
    if opt_ilike.is_some()
        || opt_exclude.is_some()
        || opt_except.is_some()
        || opt_replace.is_some()
        || opt_rename.is_some()
        || opt_alias.is_some()
    {
        return unsupported("options after `*` such as EXCLUDE or REPLACE (rows are sent whole)");
    }
    Ok(())
}
