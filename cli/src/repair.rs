//! `worldline repair`: cut a damaged commit log where the damage starts,
//! with the server stopped, keeping every transaction before it and
//! setting the rest aside.

use std::path::PathBuf;

use clap::Args;
use worldline_host::{HostError, LogCut, Repair, RepairPlan, repair_database};

use crate::hint::hinted;
use crate::start::default_data_dir;

/// Options of `worldline repair`.
#[derive(Args, Debug)]
pub struct RepairArgs {
    /// The database whose commit log is damaged.
    name: String,
    /// The data directory [default: $XDG_DATA_HOME/worldline or ~/.local/share/worldline]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Make the cut. Without it, the command only says what it would do.
    #[arg(long)]
    apply: bool,
}

/// Runs `worldline repair`.
pub fn run(args: RepairArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let Repair {
        plan,
        set_aside,
        lost_id,
    } = repair_database(&data_dir, &args.name, args.apply).map_err(|error| {
        let hint = match &error {
            HostError::NoSuchDatabase(_) => Some(format!(
                "the databases of this data directory are the directories in {} (the server \
                 lists them with `worldline list`); pass --data-dir if the server uses another",
                data_dir.join("databases").display()
            )),
            HostError::DataDirLocked(_) => Some(
                "stop the server first: a repair changes a database's files, which only a \
                 stopped server leaves alone"
                    .to_owned(),
            ),
            _ => None,
        };
        let context = format!("repairing database {}", args.name);
        match hint {
            Some(hint) => hinted(format!("{context}: {error}"), hint),
            None => anyhow::Error::new(error).context(context),
        }
    })?;
    let name = &args.name;
    if let Some(id) = &lost_id {
        println!(
            "database {name}: its database-id file is missing, and every log segment and \
             snapshot names database {id}: {}",
            if args.apply {
                "database-id is written back"
            } else {
                "the repair writes database-id back"
            }
        );
    }
    match plan {
        RepairPlan::Readable { next_offset } => {
            println!(
                "database {name}: the commit log reads back to its end ({}): {}",
                count(next_offset),
                match (&lost_id, args.apply) {
                    (None, _) => "nothing to repair",
                    (Some(_), true) => "start the server",
                    (Some(_), false) => {
                        "nothing else to repair; run again with --apply (with no server on the \
                         data directory) to write database-id"
                    }
                }
            );
            Ok(())
        }
        RepairPlan::Unrepairable(reason) => Err(hinted(
            format!("database {name} cannot be repaired by cutting its log: {reason}"),
            format!(
                "restore the files named from a backup, or start over with \
                 `worldline publish {name} --delete-data`"
            ),
        )),
        RepairPlan::Cut(cut) => {
            describe_cut(name, &cut);
            match set_aside {
                Some(folder) => {
                    let folder = data_dir.join("databases").join(name).join(folder);
                    println!(
                        "done: the log is cut; what it set aside is in {}",
                        folder.display()
                    );
                    println!(
                        "start the server: database {name} recovers with {}",
                        kept(&cut)
                    );
                }
                None => println!(
                    "nothing was changed: run `worldline repair {name} --apply` (with no server \
                     on the data directory) to make the cut"
                ),
            }
            Ok(())
        }
    }
}

/// Prints what the cut keeps, what it sets aside and what is lost.
fn describe_cut(name: &str, cut: &LogCut) {
    println!("database {name}: the commit log is damaged: {}", cut.damage);
    println!("the repair keeps {}", kept(cut));
    println!("and sets aside (copied whole into set-aside/ first; nothing is deleted):");
    match &cut.segment {
        Some(segment) if cut.keep_bytes == 0 => println!(
            "  {segment} (all {} bytes; the log continues in an empty segment)",
            cut.segment_bytes
        ),
        Some(segment) => println!(
            "  {segment} from byte {} to its end (it has {} bytes)",
            cut.keep_bytes, cut.segment_bytes
        ),
        None => println!(
            "  no segment (the log has none from the cut on; it continues in an empty segment)"
        ),
    }
    for file in &cut.set_aside {
        println!("  {file}");
    }
    println!(
        "the database loses every transaction from {} on: clients may have been told they \
         committed",
        cut.keep_below
    );
}

/// The transactions a cut keeps, in words.
fn kept(cut: &LogCut) -> String {
    let from = match cut.snapshot {
        Some(offset) => format!(" (a snapshot of the first {}, then the log)", count(offset)),
        None => String::new(),
    };
    format!("{}{from}", count(cut.keep_below))
}

/// "no transaction", "transaction 0" or "transactions 0 to N-1".
fn count(below: u64) -> String {
    match below {
        0 => "no transaction".to_owned(),
        1 => "transaction 0".to_owned(),
        n => format!("transactions 0 to {}", n - 1),
    }
}
