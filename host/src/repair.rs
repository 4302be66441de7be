//! Repairing a database whose commit log is damaged, with no server
//! running on its data directory (`worldline repair`): see
//! [`RepairPlan`] for what it keeps and what it sets aside.

use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::error::HostError;
use crate::host::{check_database_name, lock_data_dir};
use crate::storage::{self, RepairPlan, set_aside_dir};

/// What [`repair_database`] found, and where it set files aside if it cut the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// What the log holds, and what a repair cuts.
    pub plan: RepairPlan,
    /// Where the files cut off went, relative to the database's directory
    /// (`set-aside/<stamp>`), once the cut is made.
    pub set_aside: Option<String>,
    /// The database's id, in hex, when its `database-id` file was missing
    /// and its log segments and snapshots all name this one: written back
    /// with `apply` (before any cut).
    pub lost_id: Option<String>,
}

/// Finds where the commit log of database `name` in the data directory at
/// `path` stops reading back, as recovery would; if `apply` and the log is
/// damaged, cuts it there (see [`RepairPlan::Cut`]). A missing
/// `database-id` whose database the files all name is written back first. Takes the data
/// directory's lock, so it refuses while a server runs on it.
pub fn repair_database(path: &Path, name: &str, apply: bool) -> Result<Repair, HostError> {
    check_database_name(name)?;
    let io = |source| HostError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let root = Dir::open_ambient_dir(path, ambient_authority()).map_err(io)?;
    let _locks = lock_data_dir(&root, path)?;
    let dir = match root.open_dir(format!("databases/{name}")) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HostError::NoSuchDatabase(name.to_owned()));
        }
        Err(e) => return Err(io(e)),
    };
    let lost_id = storage::lost_database_id(&dir)?;
    let plan = storage::plan_repair(&dir)?;
    if apply && let Some(id) = lost_id {
        storage::restore_database_id(&dir, id)?;
    }
    let set_aside = match (&plan, apply) {
        (RepairPlan::Cut(cut), true) => {
            let stamp = new_stamp(&dir)?;
            storage::apply_repair(&dir, cut, &stamp)?;
            Some(set_aside_dir(&stamp))
        }
        _ => None,
    };
    Ok(Repair {
        plan,
        set_aside,
        lost_id: lost_id.map(|id| id.to_hex()),
    })
}

/// A name for this repair's files under `set-aside/` that no earlier
/// repair used: the seconds since the Unix epoch, then `-2`, `-3`… if
/// that is taken (a copy must never replace one set aside before).
fn new_stamp(dir: &Dir) -> Result<String, HostError> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let taken = |stamp: &str| dir.exists(format!("set-aside/{stamp}"));
    let mut stamp = seconds.to_string();
    let mut n = 1;
    while taken(&stamp) {
        n += 1;
        stamp = format!("{seconds}-{n}");
    }
    Ok(stamp)
}
