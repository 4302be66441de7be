//! What a module written with the SDK tells the host in `describe`:
//! procedures with their parameters and return types, and scheduled tables
//! with their `schedule-def`. The module is declared here, as an author
//! would, and described natively (describing touches no host import).

use worldline::__private::{Field, ScheduleDef, TypeNode, describe};
use worldline::{ProcedureContext, ReducerContext, Timestamp, procedure, reducer, table};

/// A repeating job.
#[table(name = job_schedule, scheduled(run_job))]
pub struct JobSchedule {
    #[primary_key]
    #[auto_inc]
    id: u64,
    note: String,
    #[schedule_at]
    at: Timestamp,
    #[schedule_interval]
    every: u64,
}

/// A one-shot reminder: no interval column.
#[table(name = reminder, public, scheduled(remind))]
pub struct Reminder {
    #[primary_key]
    id: u32,
    #[schedule_at]
    due: Timestamp,
}

#[reducer]
fn run_job(_ctx: &ReducerContext, _row: JobSchedule) {}

#[reducer]
fn remind(_ctx: &ReducerContext, _row: Reminder) -> Result<(), String> {
    Ok(())
}

#[procedure]
fn fetch(_ctx: &mut ProcedureContext, url: String, retries: u8) -> Result<Option<u64>, String> {
    Err(format!("{url} {retries}"))
}

#[procedure]
fn nothing(_ctx: &mut ProcedureContext) {}

#[procedure]
fn shared_ctx(ctx: &ProcedureContext) -> Timestamp {
    ctx.timestamp
}

fn field(name: &str, ty: u32) -> Field {
    Field {
        name: Some(name.to_owned()),
        ty,
    }
}

#[test]
fn procedures_are_described_in_name_order_with_params_and_return_types() {
    let module = describe();
    let names: Vec<_> = module.procedures.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["fetch", "nothing", "shared_ctx"]);

    let types = &module.types;
    let fetch = &module.procedures[0];
    assert_eq!(fetch.params.len(), 2);
    assert_eq!(fetch.params[0].name.as_deref(), Some("url"));
    assert_eq!(types[fetch.params[0].ty as usize], TypeNode::String);
    assert_eq!(fetch.params[1].name.as_deref(), Some("retries"));
    assert_eq!(types[fetch.params[1].ty as usize], TypeNode::U8);
    // `Result<Option<u64>, String>` returns `Option<u64>`.
    let TypeNode::Option(inner) = types[fetch.returns as usize] else {
        panic!("fetch returns {:?}", types[fetch.returns as usize]);
    };
    assert_eq!(types[inner as usize], TypeNode::U64);

    let nothing = &module.procedures[1];
    assert!(nothing.params.is_empty());
    assert_eq!(types[nothing.returns as usize], TypeNode::Product(vec![]));

    assert_eq!(
        types[module.procedures[2].returns as usize],
        TypeNode::Timestamp
    );
    // Procedures are not reducers.
    let reducers: Vec<_> = module.reducers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(reducers, ["remind", "run_job"]);
}

#[test]
fn scheduled_tables_name_their_reducer_and_columns() {
    let module = describe();
    let job = module
        .tables
        .iter()
        .find(|t| t.name == "job_schedule")
        .expect("job_schedule is described");
    assert_eq!(
        job.schedule,
        Some(ScheduleDef {
            reducer: "run_job".into(),
            at_column: 2,
            interval_column: Some(3),
        })
    );
    let reminder = module
        .tables
        .iter()
        .find(|t| t.name == "reminder")
        .expect("reminder is described");
    assert_eq!(
        reminder.schedule,
        Some(ScheduleDef {
            reducer: "remind".into(),
            at_column: 1,
            interval_column: None,
        })
    );
    assert!(reminder.public);

    // The scheduled reducer's one parameter is the table's row type.
    let run_job = module
        .reducers
        .iter()
        .find(|r| r.name == "run_job")
        .expect("run_job is described");
    assert_eq!(run_job.params, [field("_row", job.row_type)]);
}
