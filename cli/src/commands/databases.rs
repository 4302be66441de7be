//! `worldline describe`, `worldline list` and `worldline delete`.

use clap::Args;
use worldline_host::datastore::{ModuleSchema, TableSchema};
use worldline_transport::http_api::DatabaseInfo;

use super::publish::confirm;
use crate::context::Context;
use crate::output::{print_json, table};

/// Options of `worldline describe`.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The database.
    name: String,
    /// Print the full schema as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `worldline describe`: tables, columns, indexes, reducers,
/// procedures and the hosts procedures may reach.
pub fn describe(args: DescribeArgs, context: Context) -> anyhow::Result<()> {
    let api = context.api();
    let info = api.info(&args.name)?;
    let schema = match (api.schema(&args.name), &info.unavailable) {
        (Ok(schema), None) => schema,
        // Its commit log failed while the server ran: its schema is known.
        (Ok(schema), Some(reason)) => {
            eprintln!(
                "warning: database `{}` is unavailable: {}",
                info.name,
                crate::output::escape_controls_but_lines(reason)
            );
            schema
        }
        // Not recovered at startup: the server's answer says why, and what
        // can bring it back.
        (Err(error), Some(_)) => {
            if args.json {
                print_json(&info)?;
            } else {
                println!("database {} (owner {})", info.name, owner_of(&info));
            }
            return Err(error.into());
        }
        (Err(error), None) => return Err(error.into()),
    };
    if args.json {
        return print_json(&schema);
    }
    println!("database {} (owner {})", info.name, info.owner);
    println!("HTTP allowed for procedures: {}", info.http_allow);
    print!("{}", render_schema(&schema));
    Ok(())
}

/// The schema as a person reads it.
fn render_schema(schema: &ModuleSchema) -> String {
    let mut out = String::new();
    for (id, table) in schema.tables.iter().enumerate() {
        let visibility = if table.public { "public" } else { "private" };
        let schedule = schema
            .schedules
            .iter()
            .find(|s| s.table == id)
            .map(|s| format!(", schedules reducer {}", schema.reducers[s.reducer].name))
            .unwrap_or_default();
        out.push_str(&format!(
            "\ntable {} ({visibility}{schedule})\n",
            table.name
        ));
        for (position, field) in table.columns.fields.iter().enumerate() {
            let mut notes = Vec::new();
            if table.auto_inc.contains(&position) {
                notes.push("auto_inc".to_owned());
            }
            for schedule in schema.schedules.iter().filter(|s| s.table == id) {
                if schedule.at_column == position {
                    notes.push("schedule time".to_owned());
                }
                if schedule.interval_column == Some(position) {
                    notes.push("schedule interval (µs)".to_owned());
                }
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", notes.join(", "))
            };
            out.push_str(&format!(
                "  {}: {}{notes}\n",
                table.column_name(position),
                field.ty
            ));
        }
        for id in 0..table.indexes.len() {
            out.push_str(&format!("  {}\n", index_line(table, id)));
        }
    }
    out.push_str("\nreducers\n");
    for reducer in &schema.reducers {
        let lifecycle = reducer
            .lifecycle
            .map(|l| format!("  [{l:?}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}{}{lifecycle}\n",
            reducer.name, reducer.params
        ));
    }
    if !schema.procedures.is_empty() {
        out.push_str("\nprocedures\n");
        for procedure in &schema.procedures {
            out.push_str(&format!(
                "  {}{} -> {}\n",
                procedure.name, procedure.params, procedure.returns
            ));
        }
    }
    out
}

fn index_line(table: &TableSchema, id: usize) -> String {
    let index = &table.indexes[id];
    let columns: Vec<String> = index
        .columns
        .iter()
        .map(|c| table.column_name(*c))
        .collect();
    let kind = if table.primary_key == Some(id) {
        "primary key"
    } else if index.unique {
        "unique index"
    } else {
        "index"
    };
    format!("{kind} {} ({})", index.name, columns.join(", "))
}

/// Options of `worldline list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print the databases as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `worldline list`.
pub fn list(args: ListArgs, context: Context) -> anyhow::Result<()> {
    let databases = context.api().list()?;
    if args.json {
        // Each with `status` (`ready` or `unavailable`, as the table says),
        // besides `unavailable`'s reason when there is one.
        let listed = databases
            .iter()
            .map(|d| {
                let mut value = serde_json::to_value(d)?;
                if let Some(object) = value.as_object_mut() {
                    let status = if d.unavailable.is_some() {
                        "unavailable"
                    } else {
                        "ready"
                    };
                    object.insert("status".into(), status.into());
                }
                Ok(value)
            })
            .collect::<serde_json::Result<Vec<_>>>()?;
        return print_json(&listed);
    }
    if databases.is_empty() {
        println!("no databases on {}", context.server);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = databases
        .iter()
        .map(|d| {
            let status = match &d.unavailable {
                Some(reason) => format!("unavailable: {}", shorten(reason, MAX_REASON_CHARS)),
                None => "ready".to_owned(),
            };
            vec![
                d.name.clone(),
                owner_of(d),
                d.tables.len().to_string(),
                d.reducers.len().to_string(),
                status,
            ]
        })
        .collect();
    let columns = ["name", "owner", "tables", "reducers", "status"].map(String::from);
    print!("{}", table(&columns, &rows));
    if databases.iter().any(|d| {
        d.unavailable
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    }) {
        println!("(the full reason: `worldline describe NAME` or `worldline list --json`)");
    }
    Ok(())
}

/// How much of an unavailable database's reason `list` shows in its table.
const MAX_REASON_CHARS: usize = 60;

/// `text` cut to `max` characters, with `…` where it was cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

/// A database's owner, or `unknown` when the server could not read it.
fn owner_of(info: &DatabaseInfo) -> String {
    if info.owner.is_empty() {
        "unknown".to_owned()
    } else {
        info.owner.clone()
    }
}

/// Options of `worldline delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The database to delete, with all its data.
    name: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Runs `worldline delete`.
pub fn delete(args: DeleteArgs, mut context: Context) -> anyhow::Result<()> {
    if !args.yes {
        confirm(&format!(
            "This deletes database `{}` on {} with all its data. Continue?",
            args.name, context.server
        ))?;
    }
    context.api_as_identity()?.delete(&args.name)?;
    println!("Deleted database `{}`", args.name);
    Ok(())
}
