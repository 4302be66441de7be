//! `worldline sql`: run a query once and show the rows.

use clap::Args;

use crate::context::Context;
use crate::output::{cell, print_json, table};

/// Options of `worldline sql`.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The database.
    name: String,
    /// A `SELECT` (`SELECT * FROM t WHERE ...`, or a join on indexed columns).
    query: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `worldline sql`.
pub fn run(args: SqlArgs, context: Context) -> anyhow::Result<()> {
    let result = context.api().sql(&args.name, &args.query)?;
    if args.json {
        return print_json(&result);
    }
    for table_rows in &result.tables {
        let rows: Vec<Vec<String>> = table_rows
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect();
        print!("{}", table(&table_rows.columns, &rows));
        let count = table_rows.rows.len();
        println!("({count} row{})", if count == 1 { "" } else { "s" });
    }
    Ok(())
}
