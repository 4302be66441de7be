//! `worldline publish`: build a module, upload it, create or hot-swap the database.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use worldline_host::outbound::{ALLOW_LIST_HINT, AllowList};
use worldline_transport::http_api::{MAX_COMPONENT_BYTES, PublishOutcome};

use crate::context::Context;
use crate::hint::hinted;
use crate::module_build;
use crate::output::print_json;

/// Options of `worldline publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The database's name (1 to 64 lowercase letters, digits, `-` or `_`).
    name: String,
    /// The module project to build and publish [default: the current directory].
    #[arg(long, value_name = "DIR", conflicts_with = "wasm")]
    project_path: Option<PathBuf>,
    /// A component built already, published as it is.
    #[arg(long, value_name = "FILE")]
    wasm: Option<PathBuf>,
    /// Delete the database's data and create it afresh (needed when the
    /// new schema is not compatible with the stored data).
    #[arg(long)]
    delete_data: bool,
    /// Do not ask for confirmation before deleting data.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Hosts the module's procedures may send HTTP requests to, e.g.
    /// `api.example.com,*.example.org:443` (a port is optional: without
    /// one, 80 for http and 443 for https). Everything else is denied, and
    /// so are private and loopback addresses whatever the name (such an
    /// entry is kept, with a warning). Replaces the database's list; left
    /// out, a new database allows none and an existing one keeps its list;
    /// `--allow-http ''` clears it. Checked before anything is built or uploaded.
    #[arg(long, value_name = "HOSTS")]
    allow_http: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `worldline publish`.
pub fn run(args: PublishArgs, mut context: Context) -> anyhow::Result<()> {
    crate::api::database_name(&args.name)?;
    if let Some(text) = &args.allow_http {
        check_allow_http(text)?;
    }
    // Nothing to delete in a database that does not exist yet (any other
    // answer, an unreachable server included, still asks).
    let absent = || {
        matches!(
            context.api().info(&args.name),
            Err(crate::api::ApiError::Refused { status: 404, .. })
        )
    };
    // A database that does not exist yet is created, not replaced: should
    // it appear meanwhile, the publish swaps its module and keeps its data.
    let delete_data = args.delete_data && !absent();
    if delete_data && !args.yes {
        confirm(&format!(
            "This deletes every row of database `{}` on {}. Continue?",
            args.name, context.server
        ))?;
    }
    let path = match (&args.wasm, &args.project_path) {
        (Some(wasm), _) => wasm.clone(),
        (None, dir) => module_build::build(&dir.clone().unwrap_or_else(|| PathBuf::from(".")))?,
    };
    check_size(&path)?;
    let wasm = crate::component_file::read(&path)?;
    let api = context.api_as_identity()?;
    eprintln!(
        "Uploading {} ({} KiB) to {}; the server compiles it...",
        path.display(),
        wasm.len().div_ceil(1024),
        api.server()
    );
    let published = api.publish(&args.name, &wasm, delete_data, args.allow_http.as_deref())?;
    if args.json {
        return print_json(&published);
    }
    match published.outcome {
        PublishOutcome::Created => println!(
            "Created database `{}` (owner {})",
            published.name, published.owner
        ),
        PublishOutcome::Replaced => println!(
            "Deleted the data of `{}` and created it afresh (owner {})",
            published.name, published.owner
        ),
        PublishOutcome::Updated if published.changes.is_empty() => println!(
            "Updated database `{}`: the module was swapped; the schema is unchanged",
            published.name
        ),
        PublishOutcome::Updated => {
            println!(
                "Updated database `{}`; schema changes applied:",
                published.name
            );
            for change in &published.changes {
                println!("  {change}");
            }
        }
    }
    Ok(())
}

/// Checks `--allow-http` as the server will, before anything is built or
/// uploaded, and warns (on stderr) about entries the server's address
/// guard refuses whatever the list says.
fn check_allow_http(text: &str) -> anyhow::Result<()> {
    let list = AllowList::parse(text).map_err(|e| hinted(e.to_string(), ALLOW_LIST_HINT))?;
    for guarded in list.guarded_entries() {
        eprintln!(
            "warning: --allow-http entry `{}`: the server refuses connections to {} addresses \
             whatever the list says, so procedures cannot reach it (unless the server was \
             started with `--http-allow-private-address` naming that address and port)",
            guarded.entry, guarded.reason
        );
    }
    Ok(())
}

/// Refuses a component larger than the server accepts before uploading it
/// (a server stops reading an upload past its limit, which a client still
/// sending may see as a broken connection rather than the server's answer).
fn check_size(path: &Path) -> anyhow::Result<()> {
    let Ok(metadata) = std::fs::metadata(path) else {
        // Reading it says what is wrong.
        return Ok(());
    };
    let size = metadata.len();
    if size > MAX_COMPONENT_BYTES as u64 {
        const MIB: f64 = (1 << 20) as f64;
        return Err(hinted(
            format!(
                "{} is {size} bytes ({:.1} MiB), larger than the {} MiB the server accepts for a \
                 component; nothing was uploaded",
                path.display(),
                size as f64 / MIB,
                MAX_COMPONENT_BYTES >> 20
            ),
            "build it in release mode; `wasm-tools strip FILE -o FILE` removes custom sections \
             such as debug information",
        ));
    }
    Ok(())
}

/// Asks on the terminal; without one, refuses and says how to confirm.
pub fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            format!(
                "{} There is no terminal to ask for confirmation on, so nothing was changed",
                question.trim_end_matches(" Continue?")
            ),
            "pass --yes to go ahead without asking",
        ));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(hinted("cancelled", "nothing was changed"))
    }
}
