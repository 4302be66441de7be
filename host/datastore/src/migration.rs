//! Schema migrations for a hot swap: which changes between two versions of
//! a module are compatible ([`plan_migration`]), and carrying a datastore's
//! committed rows and sequences over to the new tables ([`Datastore::migrate`]).
//!
//! Tables, columns, indexes, reducers and procedures are matched by name: table and
//! index ids are positions, which may change between versions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::datastore::Datastore;
use crate::index::KeyDisplay;
use crate::schema::{
    AlgebraicType, IndexSchema, Lifecycle, ModuleSchema, ProcedureSchema, ProductType,
    ReducerSchema, SchemaError, TableSchema,
};
use crate::table::Table;

/// A schema change that a hot swap applies by itself, keeping every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompatibleChange {
    /// A new table; it starts empty.
    TableAdded {
        /// The table's name.
        table: String,
    },
    /// A new index on an existing table, built from its rows (a unique
    /// index fails the migration if two rows share a key).
    IndexAdded {
        /// The table's name.
        table: String,
        /// The index's name.
        index: String,
        /// Its columns' names, in key order.
        columns: Vec<String>,
        /// Whether it is unique.
        unique: bool,
    },
    /// An index that is not the primary key was dropped.
    IndexRemoved {
        /// The table's name.
        table: String,
        /// The index's name.
        index: String,
        /// Its columns' names, in key order.
        columns: Vec<String>,
        /// Whether it was unique.
        unique: bool,
    },
    /// A table became public or private.
    VisibilityChanged {
        /// The table's name.
        table: String,
        /// Whether it is public now.
        public: bool,
    },
    /// A new reducer.
    ReducerAdded {
        /// The reducer's name.
        reducer: String,
        /// Its lifecycle role, if it has one.
        lifecycle: Option<Lifecycle>,
    },
    /// A reducer that the new module no longer has.
    ReducerRemoved {
        /// The reducer's name.
        reducer: String,
        /// The lifecycle role it had, if any.
        lifecycle: Option<Lifecycle>,
    },
    /// A table became the schedule of a reducer, stopped being one, or
    /// schedules another reducer or by other columns. Rows of a new
    /// schedule that are due run at once; rows of a schedule removed stay
    /// and never run.
    ScheduleChanged {
        /// The table's name.
        table: String,
        /// What it scheduled before, if anything, such as
        /// ``reducer `tick` (time `at`, interval `every`)``.
        from: Option<String>,
        /// What it schedules now, if anything.
        to: Option<String>,
    },
    /// A reducer whose parameters or lifecycle role changed.
    ReducerChanged {
        /// The reducer's name.
        reducer: String,
        /// Its parameters before.
        old_params: ProductType,
        /// Its parameters now.
        new_params: ProductType,
        /// Its lifecycle role before.
        old_lifecycle: Option<Lifecycle>,
        /// Its lifecycle role now.
        new_lifecycle: Option<Lifecycle>,
    },
    /// A new procedure.
    ProcedureAdded {
        /// The procedure's name.
        procedure: String,
    },
    /// A procedure that the new module no longer has.
    ProcedureRemoved {
        /// The procedure's name.
        procedure: String,
    },
    /// A procedure whose parameters or return type changed.
    ProcedureChanged {
        /// The procedure's name.
        procedure: String,
        /// Its parameters and return type before.
        old: ProcedureSchema,
        /// Its parameters and return type now.
        new: ProcedureSchema,
    },
}

impl CompatibleChange {
    /// Whether the change only adds: existing clients cannot notice it (a
    /// table, index, reducer or procedure added, or a table made public).
    /// Removing or changing a reducer or procedure, removing an index or
    /// making a table private can break a client built against the old module.
    pub fn is_additive(&self) -> bool {
        match self {
            CompatibleChange::TableAdded { .. }
            | CompatibleChange::IndexAdded { .. }
            | CompatibleChange::ReducerAdded { .. }
            | CompatibleChange::ProcedureAdded { .. }
            | CompatibleChange::ScheduleChanged { .. } => true,
            CompatibleChange::VisibilityChanged { public, .. } => *public,
            CompatibleChange::IndexRemoved { .. }
            | CompatibleChange::ReducerRemoved { .. }
            | CompatibleChange::ReducerChanged { .. }
            | CompatibleChange::ProcedureRemoved { .. }
            | CompatibleChange::ProcedureChanged { .. } => false,
        }
    }
}

impl fmt::Display for CompatibleChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatibleChange::TableAdded { table } => write!(f, "+ table `{table}`"),
            CompatibleChange::IndexAdded {
                table,
                index,
                columns,
                unique,
            } => write!(
                f,
                "+ {}index `{index}` on `{table}`({})",
                if *unique { "unique " } else { "" },
                columns.join(", ")
            ),
            CompatibleChange::IndexRemoved {
                table,
                index,
                columns,
                unique,
            } => write!(
                f,
                "- {}index `{index}` on `{table}`({})",
                if *unique { "unique " } else { "" },
                columns.join(", ")
            ),
            CompatibleChange::VisibilityChanged { table, public } => write!(
                f,
                "~ table `{table}` is now {}",
                if *public { "public" } else { "private" }
            ),
            CompatibleChange::ScheduleChanged { table, from, to } => match (from, to) {
                (None, Some(to)) => write!(f, "+ table `{table}` schedules {to}"),
                (Some(from), None) => write!(
                    f,
                    "- table `{table}` no longer schedules {from} (its rows stay and do not run)"
                ),
                (from, to) => write!(
                    f,
                    "~ table `{table}` schedules {} (was {})",
                    to.as_deref().unwrap_or("nothing"),
                    from.as_deref().unwrap_or("nothing")
                ),
            },
            // A lifecycle hook moved to a reducer of another name is a
            // removal and an addition: each says which hook it was.
            CompatibleChange::ReducerAdded { reducer, lifecycle } => {
                write!(f, "+ reducer `{reducer}`")?;
                match lifecycle {
                    Some(_) => write!(f, " (lifecycle {})", LifecycleDisplay(*lifecycle)),
                    None => Ok(()),
                }
            }
            CompatibleChange::ReducerRemoved { reducer, lifecycle } => {
                write!(f, "- reducer `{reducer}`")?;
                match lifecycle {
                    Some(_) => write!(f, " (was lifecycle {})", LifecycleDisplay(*lifecycle)),
                    None => Ok(()),
                }
            }
            CompatibleChange::ReducerChanged {
                reducer,
                old_params,
                new_params,
                old_lifecycle,
                new_lifecycle,
            } => {
                write!(f, "~ reducer `{reducer}`")?;
                let mut separator = ":";
                if old_params != new_params {
                    write!(f, "{separator} parameters {old_params} -> {new_params}")?;
                    separator = ",";
                }
                if old_lifecycle != new_lifecycle {
                    write!(
                        f,
                        "{separator} lifecycle {} -> {}",
                        LifecycleDisplay(*old_lifecycle),
                        LifecycleDisplay(*new_lifecycle)
                    )?;
                }
                Ok(())
            }
            CompatibleChange::ProcedureAdded { procedure } => {
                write!(f, "+ procedure `{procedure}`")
            }
            CompatibleChange::ProcedureRemoved { procedure } => {
                write!(f, "- procedure `{procedure}`")
            }
            CompatibleChange::ProcedureChanged {
                procedure,
                old,
                new,
            } => {
                write!(f, "~ procedure `{procedure}`")?;
                let mut separator = ":";
                if old.params != new.params {
                    write!(f, "{separator} parameters {} -> {}", old.params, new.params)?;
                    separator = ",";
                }
                if old.returns != new.returns {
                    write!(f, "{separator} returns {} -> {}", old.returns, new.returns)?;
                }
                Ok(())
            }
        }
    }
}

/// Shows a lifecycle role, or `none`.
struct LifecycleDisplay(Option<Lifecycle>);

impl fmt::Display for LifecycleDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            None => "none",
            Some(Lifecycle::Init) => "init",
            Some(Lifecycle::ClientConnected) => "client_connected",
            Some(Lifecycle::ClientDisconnected) => "client_disconnected",
        })
    }
}

/// The compatible changes between two versions of a module, in table
/// order (new tables last) and then reducer order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationPlan {
    /// Every change, in a stable order.
    pub changes: Vec<CompatibleChange>,
}

impl MigrationPlan {
    /// Whether the two versions declare the same tables, indexes and
    /// reducers (their order may still differ).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether every change is [additive](CompatibleChange::is_additive).
    pub fn is_additive(&self) -> bool {
        self.changes.iter().all(CompatibleChange::is_additive)
    }
}

impl fmt::Display for MigrationPlan {
    /// One line per change, such as ``+ table `reaction` ``; nothing for an empty plan.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.changes)
    }
}

/// A schema change that would lose or misread stored rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncompatibleChange {
    /// A table the new module does not declare; its rows would be lost.
    TableRemoved {
        /// The table's name.
        table: String,
    },
    /// A column the new module does not declare.
    ColumnRemoved {
        /// The table's name.
        table: String,
        /// The column's name.
        column: String,
    },
    /// A column the old rows do not have.
    ColumnAdded {
        /// The table's name.
        table: String,
        /// The column's name.
        column: String,
        /// Its type.
        ty: AlgebraicType,
    },
    /// A column with a new name in the same place and with the same type.
    ColumnRenamed {
        /// The table's name.
        table: String,
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A column whose type changed.
    ColumnTypeChanged {
        /// The table's name.
        table: String,
        /// The column's name.
        column: String,
        /// The old type.
        from: AlgebraicType,
        /// The new type.
        to: AlgebraicType,
    },
    /// Columns kept by both versions, in a different order.
    ColumnsReordered {
        /// The table's name.
        table: String,
        /// Their names in the old order.
        from: Vec<String>,
        /// Their names in the new order.
        to: Vec<String>,
    },
    /// The primary key is over other columns, or was added or removed.
    PrimaryKeyChanged {
        /// The table's name.
        table: String,
        /// The old key's column names (`None`: no primary key).
        from: Option<Vec<String>>,
        /// The new key's column names (`None`: no primary key).
        to: Option<Vec<String>>,
    },
    /// Other columns are auto-increment.
    AutoIncChanged {
        /// The table's name.
        table: String,
        /// The old auto-increment columns.
        from: Vec<String>,
        /// The new auto-increment columns.
        to: Vec<String>,
    },
}

impl fmt::Display for IncompatibleChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncompatibleChange::TableRemoved { table } => {
                write!(f, "- table `{table}` (removed; its rows would be lost)")
            }
            IncompatibleChange::ColumnRemoved { table, column } => {
                write!(f, "~ table `{table}`: column `{column}` removed")
            }
            IncompatibleChange::ColumnAdded { table, column, ty } => {
                write!(f, "~ table `{table}`: column `{column}` ({ty}) added")
            }
            IncompatibleChange::ColumnRenamed { table, from, to } => {
                write!(f, "~ table `{table}`: column `{from}` renamed to `{to}`")
            }
            IncompatibleChange::ColumnTypeChanged {
                table,
                column,
                from,
                to,
            } => write!(
                f,
                "~ table `{table}`: column `{column}` changed type from {from} to {to}"
            ),
            IncompatibleChange::ColumnsReordered { table, from, to } => write!(
                f,
                "~ table `{table}`: columns reordered from ({}) to ({})",
                from.join(", "),
                to.join(", ")
            ),
            IncompatibleChange::PrimaryKeyChanged { table, from, to } => write!(
                f,
                "~ table `{table}`: primary key changed from {} to {}",
                KeyColumns(from.as_deref()),
                KeyColumns(to.as_deref())
            ),
            IncompatibleChange::AutoIncChanged { table, from, to } => write!(
                f,
                "~ table `{table}`: auto-increment columns changed from ({}) to ({})",
                from.join(", "),
                to.join(", ")
            ),
        }
    }
}

/// Shows a primary key's columns as `(a, b)`, or `none`.
struct KeyColumns<'a>(Option<&'a [String]>);

impl fmt::Display for KeyColumns<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(columns) => write!(f, "({})", columns.join(", ")),
            None => f.write_str("none"),
        }
    }
}

/// Why a new module version cannot take over a database's rows: every
/// incompatible change, in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompatibleSchema {
    /// Every incompatible change (never empty).
    pub changes: Vec<IncompatibleChange>,
}

impl fmt::Display for IncompatibleSchema {
    /// One line per change, such as ``- table `old_stuff` (removed; its rows would be lost)``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.changes)
    }
}

impl std::error::Error for IncompatibleSchema {}

fn write_lines<T: fmt::Display>(f: &mut fmt::Formatter<'_>, lines: &[T]) -> fmt::Result {
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "{line}")?;
    }
    Ok(())
}

/// The changes from `old` to `new`: a plan if every change is compatible,
/// otherwise every incompatible change.
///
/// Compatible: new tables, new indexes (btree or unique), removed indexes
/// other than the primary key, a table's visibility, a table's schedule
/// (added, removed or changed), and reducers added, removed or changed. Incompatible: a table removed; a column removed,
/// added, renamed, retyped or moved; the primary key's columns changed; the
/// auto-increment columns changed. Both schemas should have passed
/// [`ModuleSchema::validate`]; invalid index or key positions are reported
/// as changes rather than panicking.
pub fn plan_migration(
    old: &ModuleSchema,
    new: &ModuleSchema,
) -> Result<MigrationPlan, IncompatibleSchema> {
    let (compatible, incompatible) = diff(old, new);
    if incompatible.is_empty() {
        Ok(MigrationPlan {
            changes: compatible,
        })
    } else {
        Err(IncompatibleSchema {
            changes: incompatible,
        })
    }
}

/// Every change from `old` to `new` a hot swap lists, compatible or not,
/// one line each, the incompatible ones first (for telling what differs
/// between two descriptions that should be the same, where a swap's plan
/// or refusal would leave out the compatible ones); `None` if there is
/// none (the two may still differ in what a swap does not list: the order
/// of tables, reducers or columns, or a name listed twice).
pub fn describe_changes(old: &ModuleSchema, new: &ModuleSchema) -> Option<String> {
    let (compatible, incompatible) = diff(old, new);
    let lines: Vec<String> = incompatible
        .iter()
        .map(ToString::to_string)
        .chain(compatible.iter().map(ToString::to_string))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The compatible and the incompatible changes from `old` to `new`.
fn diff(
    old: &ModuleSchema,
    new: &ModuleSchema,
) -> (Vec<CompatibleChange>, Vec<IncompatibleChange>) {
    let mut compatible = Vec::new();
    let mut incompatible = Vec::new();
    for old_table in &old.tables {
        match new.tables.iter().find(|t| t.name == old_table.name) {
            Some(new_table) => {
                diff_table(old_table, new_table, &mut compatible, &mut incompatible);
            }
            None => incompatible.push(IncompatibleChange::TableRemoved {
                table: old_table.name.clone(),
            }),
        }
    }
    for new_table in &new.tables {
        if !old.tables.iter().any(|t| t.name == new_table.name) {
            compatible.push(CompatibleChange::TableAdded {
                table: new_table.name.clone(),
            });
        }
    }
    diff_schedules(old, new, &mut compatible);
    diff_reducers(&old.reducers, &new.reducers, &mut compatible);
    diff_procedures(&old.procedures, &new.procedures, &mut compatible);
    (compatible, incompatible)
}

/// The column names of `columns`, as positions of `table` (`#n` for a
/// position without a name).
fn column_names(table: &TableSchema, columns: &[usize]) -> Vec<String> {
    columns.iter().map(|&c| table.column_name(c)).collect()
}

fn diff_table(
    old: &TableSchema,
    new: &TableSchema,
    compatible: &mut Vec<CompatibleChange>,
    incompatible: &mut Vec<IncompatibleChange>,
) {
    let table = &old.name;
    diff_columns(old, new, incompatible);

    let primary_key = |schema: &TableSchema| {
        schema.primary_key.map(|pk| match schema.indexes.get(pk) {
            Some(index) => column_names(schema, &index.columns),
            None => vec![format!("index #{pk}")],
        })
    };
    let (old_pk, new_pk) = (primary_key(old), primary_key(new));
    let pk_changed = old_pk != new_pk;
    if pk_changed {
        incompatible.push(IncompatibleChange::PrimaryKeyChanged {
            table: table.clone(),
            from: old_pk,
            to: new_pk,
        });
    }

    let old_auto_inc = column_names(old, &old.auto_inc);
    let new_auto_inc = column_names(new, &new.auto_inc);
    let as_set = |names: &[String]| names.iter().cloned().collect::<BTreeSet<_>>();
    if as_set(&old_auto_inc) != as_set(&new_auto_inc) {
        incompatible.push(IncompatibleChange::AutoIncChanged {
            table: table.clone(),
            from: old_auto_inc,
            to: new_auto_inc,
        });
    }

    // Indexes are the same when name, columns (by name) and uniqueness match.
    let described = |schema: &TableSchema, index: &IndexSchema| {
        (
            index.name.clone(),
            column_names(schema, &index.columns),
            index.unique,
        )
    };
    let old_indexes: Vec<_> = old.indexes.iter().map(|i| described(old, i)).collect();
    let new_indexes: Vec<_> = new.indexes.iter().map(|i| described(new, i)).collect();
    for (position, (index, columns, unique)) in old_indexes.iter().enumerate() {
        // A changed primary key is reported above; its index is not a separate change.
        let is_changed_pk = old.primary_key == Some(position) && pk_changed;
        if !new_indexes.contains(&old_indexes[position]) && !is_changed_pk {
            compatible.push(CompatibleChange::IndexRemoved {
                table: table.clone(),
                index: index.clone(),
                columns: columns.clone(),
                unique: *unique,
            });
        }
    }
    for (position, (index, columns, unique)) in new_indexes.iter().enumerate() {
        let is_changed_pk = new.primary_key == Some(position) && pk_changed;
        if !old_indexes.contains(&new_indexes[position]) && !is_changed_pk {
            compatible.push(CompatibleChange::IndexAdded {
                table: table.clone(),
                index: index.clone(),
                columns: columns.clone(),
                unique: *unique,
            });
        }
    }

    if old.public != new.public {
        compatible.push(CompatibleChange::VisibilityChanged {
            table: table.clone(),
            public: new.public,
        });
    }
}

/// Reports every difference between the two column lists: removed, added,
/// renamed in place, retyped and reordered columns.
fn diff_columns(old: &TableSchema, new: &TableSchema, incompatible: &mut Vec<IncompatibleChange>) {
    if old.columns == new.columns {
        return;
    }
    let table = &old.name;
    let name = |schema: &TableSchema, position: usize| schema.column_name(position);
    let old_names: Vec<String> = (0..old.columns.fields.len())
        .map(|c| name(old, c))
        .collect();
    let new_names: Vec<String> = (0..new.columns.fields.len())
        .map(|c| name(new, c))
        .collect();
    let mut removed: Vec<usize> = (0..old_names.len())
        .filter(|&c| !new_names.contains(&old_names[c]))
        .collect();
    let mut added: Vec<usize> = (0..new_names.len())
        .filter(|&c| !old_names.contains(&new_names[c]))
        .collect();
    // A column that disappears where a new one of the same type appears was renamed.
    let mut renamed = Vec::new();
    removed.retain(|&position| {
        let same_place = added.iter().position(|&a| {
            a == position && new.columns.fields[a].ty == old.columns.fields[position].ty
        });
        match same_place {
            Some(at) => {
                renamed.push(position);
                added.remove(at);
                false
            }
            None => true,
        }
    });
    for position in removed {
        incompatible.push(IncompatibleChange::ColumnRemoved {
            table: table.clone(),
            column: old_names[position].clone(),
        });
    }
    for position in renamed {
        incompatible.push(IncompatibleChange::ColumnRenamed {
            table: table.clone(),
            from: old_names[position].clone(),
            to: new_names[position].clone(),
        });
    }
    for position in added {
        incompatible.push(IncompatibleChange::ColumnAdded {
            table: table.clone(),
            column: new_names[position].clone(),
            ty: new.columns.fields[position].ty.clone(),
        });
    }
    for (position, column) in old_names.iter().enumerate() {
        if let Some(at) = new_names.iter().position(|n| n == column) {
            let (from, to) = (&old.columns.fields[position].ty, &new.columns.fields[at].ty);
            if from != to {
                incompatible.push(IncompatibleChange::ColumnTypeChanged {
                    table: table.clone(),
                    column: column.clone(),
                    from: from.clone(),
                    to: to.clone(),
                });
            }
        }
    }
    let kept_old: Vec<&String> = old_names.iter().filter(|n| new_names.contains(n)).collect();
    let kept_new: Vec<&String> = new_names.iter().filter(|n| old_names.contains(n)).collect();
    if kept_old != kept_new {
        incompatible.push(IncompatibleChange::ColumnsReordered {
            table: table.clone(),
            from: kept_old.into_iter().cloned().collect(),
            to: kept_new.into_iter().cloned().collect(),
        });
    }
}

/// What table `table` of `schema` schedules, for people: ``reducer `tick`
/// (time `at`, interval `every`)``; `None` if it is not a schedule.
fn describe_schedule(schema: &ModuleSchema, table: usize) -> Option<String> {
    let schedule = schema.schedules.iter().find(|s| s.table == table)?;
    let columns = schema.tables.get(table)?;
    let reducer = schema
        .reducers
        .get(schedule.reducer)
        .map_or_else(|| format!("#{}", schedule.reducer), |r| r.name.clone());
    let interval = schedule.interval_column.map_or_else(
        || ", no interval".to_owned(),
        |c| format!(", interval `{}`", columns.column_name(c)),
    );
    Some(format!(
        "reducer `{reducer}` (time `{}`{interval})",
        columns.column_name(schedule.at_column)
    ))
}

/// A [`CompatibleChange::ScheduleChanged`] for every table kept whose
/// schedule changed, and every table added as a schedule.
fn diff_schedules(old: &ModuleSchema, new: &ModuleSchema, compatible: &mut Vec<CompatibleChange>) {
    for (position, table) in new.tables.iter().enumerate() {
        let to = describe_schedule(new, position);
        let from = old
            .tables
            .iter()
            .position(|t| t.name == table.name)
            .and_then(|old_position| describe_schedule(old, old_position));
        if from != to {
            compatible.push(CompatibleChange::ScheduleChanged {
                table: table.name.clone(),
                from,
                to,
            });
        }
    }
}

fn diff_reducers(
    old: &[ReducerSchema],
    new: &[ReducerSchema],
    compatible: &mut Vec<CompatibleChange>,
) {
    compatible.extend(
        diff_by_name(old, new, |r| &r.name).map(|change| match change {
            ByName::Removed(reducer) => CompatibleChange::ReducerRemoved {
                reducer: reducer.name.clone(),
                lifecycle: reducer.lifecycle,
            },
            ByName::Changed(reducer, now) => CompatibleChange::ReducerChanged {
                reducer: reducer.name.clone(),
                old_params: reducer.params.clone(),
                new_params: now.params.clone(),
                old_lifecycle: reducer.lifecycle,
                new_lifecycle: now.lifecycle,
            },
            ByName::Added(reducer) => CompatibleChange::ReducerAdded {
                reducer: reducer.name.clone(),
                lifecycle: reducer.lifecycle,
            },
        }),
    );
}

fn diff_procedures(
    old: &[ProcedureSchema],
    new: &[ProcedureSchema],
    compatible: &mut Vec<CompatibleChange>,
) {
    compatible.extend(
        diff_by_name(old, new, |p| &p.name).map(|change| match change {
            ByName::Removed(procedure) => CompatibleChange::ProcedureRemoved {
                procedure: procedure.name.clone(),
            },
            ByName::Changed(procedure, now) => CompatibleChange::ProcedureChanged {
                procedure: procedure.name.clone(),
                old: procedure.clone(),
                new: now.clone(),
            },
            ByName::Added(procedure) => CompatibleChange::ProcedureAdded {
                procedure: procedure.name.clone(),
            },
        }),
    );
}

/// What became of one item of a list matched by name against another.
enum ByName<'a, T> {
    /// Only in the old list.
    Removed(&'a T),
    /// In both, different: old, then new.
    Changed(&'a T, &'a T),
    /// Only in the new list.
    Added(&'a T),
}

/// The items of `old` removed or changed in `new` (in `old`'s order), then
/// those `new` adds (in its order), matched by `name`.
fn diff_by_name<'a, T: PartialEq>(
    old: &'a [T],
    new: &'a [T],
    name: impl Fn(&T) -> &str + Copy + 'a,
) -> impl Iterator<Item = ByName<'a, T>> + 'a {
    let gone_or_changed = old.iter().filter_map(move |before| {
        match new.iter().find(|now| name(now) == name(before)) {
            None => Some(ByName::Removed(before)),
            Some(now) if now != before => Some(ByName::Changed(before, now)),
            Some(_) => None,
        }
    });
    let added = new
        .iter()
        .filter(move |now| !old.iter().any(|before| name(before) == name(now)))
        .map(ByName::Added);
    gone_or_changed.chain(added)
}

/// Why [`Datastore::migrate`] could not carry the rows over. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// A transaction is open; migrate between transactions.
    #[error("cannot migrate inside a transaction; commit or roll it back first")]
    InTransaction,
    /// The new tables do not form a valid schema.
    #[error("the new tables are invalid: {0}")]
    InvalidSchema(#[from] SchemaError),
    /// The new tables cannot hold the old rows.
    #[error("the new schema is incompatible:\n{0}")]
    Incompatible(#[from] IncompatibleSchema),
    /// Two existing rows have the same key in a new unique index.
    #[error("cannot build unique index `{index}` on table `{table}`: two rows have the key {key}")]
    UniqueViolation {
        /// The table's name.
        table: String,
        /// The new unique index.
        index: String,
        /// The shared key, as readable values.
        key: String,
    },
}

impl Datastore {
    /// A new datastore with `new_tables` holding this one's committed rows:
    /// each table keeps the rows of the table with the same name (in
    /// insertion order) and the positions of its sequences; new tables
    /// start empty; indexes are built from the rows.
    ///
    /// `new_tables` must be a compatible next version of [`tables`](Self::tables)
    /// (see [`plan_migration`]). Fails, leaving this datastore as it is, if
    /// a transaction is open, the schema is invalid or incompatible, or
    /// existing rows violate a new unique index.
    pub fn migrate(&self, new_tables: &[TableSchema]) -> Result<Datastore, MigrationError> {
        if self.in_transaction {
            return Err(MigrationError::InTransaction);
        }
        let new = ModuleSchema {
            tables: new_tables.to_vec(),
            reducers: Vec::new(),
            procedures: Vec::new(),
            schedules: Vec::new(),
        };
        new.validate()?;
        let old = ModuleSchema {
            tables: self.tables().to_vec(),
            reducers: Vec::new(),
            procedures: Vec::new(),
            schedules: Vec::new(),
        };
        plan_migration(&old, &new)?;
        let by_name: BTreeMap<&str, &Table> = self
            .tables
            .iter()
            .map(|table| (table.name(), table))
            .collect();
        let mut migrated = Datastore::new(new.tables);
        let mut columns = Vec::new();
        for target in &mut migrated.tables {
            let Some(source) = by_name.get(target.name()) else {
                continue;
            };
            for (_, row) in source.rows.iter() {
                columns.clear();
                target
                    .decode_row(row, &mut columns)
                    .expect("compatible tables have identical columns");
                for index in target.indexes.iter().filter(|i| i.is_unique()) {
                    let key = index.key_in(&columns);
                    if index.get(&key).is_some() {
                        return Err(MigrationError::UniqueViolation {
                            table: target.name().to_owned(),
                            index: index.name().to_owned(),
                            key: KeyDisplay(&key).to_string(),
                        });
                    }
                }
                target.put(row, &columns);
            }
            // Sequences are in `auto_inc` order; match them by column name.
            for (position, &column) in target.schema.auto_inc.iter().enumerate() {
                let name = target.schema.column_name(column);
                let old = source
                    .schema
                    .auto_inc
                    .iter()
                    .position(|&c| source.schema.column_name(c) == name);
                if let Some(old) = old {
                    target.sequences[position].next = source.sequences[old].next;
                }
            }
        }
        Ok(migrated)
    }
}
