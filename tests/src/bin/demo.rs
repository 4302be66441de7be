//! The bank example, end to end and in-process: builds nothing itself (the
//! build script compiled `guest-rust/examples/bank` to a component), creates a
//! database from it, and shows transfers committing and failing.

use std::process::ExitCode;

use worldline_host::{CallContext, CallError, Database, Engine, EngineConfig};
use worldline_tests::{ALICE, Account, OWNER, args, guest_path, guest_wasm, rows};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(EngineConfig {
        reducer_deadline: std::time::Duration::from_secs(1),
        ..EngineConfig::default()
    })?;
    let wasm = guest_wasm("bank");
    println!(
        "Loading {} ({} KiB)",
        guest_path("bank").display(),
        wasm.len() / 1024
    );
    let mut db = Database::create(&engine, &wasm, OWNER)?;
    let schema = db.schema();
    for table in &schema.tables {
        let columns: Vec<String> = table
            .columns
            .fields
            .iter()
            .map(|f| format!("{}: {}", f.name.as_deref().unwrap_or("?"), f.ty))
            .collect();
        println!("  table {} ({})", table.name, columns.join(", "));
    }
    let reducers: Vec<&str> = schema.reducers.iter().map(|r| r.name.as_str()).collect();
    println!("  reducers: {}", reducers.join(", "));

    let ctx = CallContext::new(ALICE);
    println!("\nseed(3, 100)");
    db.call_reducer("seed", &args(&(3u32, 100i64)), ctx)?;
    show(&db);

    println!("\ntransfer(0 -> 1, 30)");
    let outcome = db.call_reducer("transfer", &args(&(0u32, 1u32, 30i64)), ctx)?;
    let changed: usize = outcome.delta.tables.iter().map(|t| t.inserts.len()).sum();
    println!(
        "  committed in {:?}, {changed} rows rewritten",
        outcome.duration
    );
    show(&db);

    for (label, call) in [
        (
            "transfer(2 -> 0, 500): more than the balance",
            args(&(2u32, 0u32, 500i64)),
        ),
        (
            "transfer(0 -> 9, 10): no such account",
            args(&(0u32, 9u32, 10i64)),
        ),
    ] {
        println!("\n{label}");
        report(db.call_reducer("transfer", &call, ctx).map(drop));
    }
    println!("\npanic_after_write(1): the reducer writes, then panics");
    report(
        db.call_reducer("panic_after_write", &args(&(1u32,)), ctx)
            .map(drop),
    );
    println!("\nspin(): an endless loop, stopped at the deadline");
    report(db.call_reducer("spin", &args(&()), ctx).map(drop));

    println!("\nAfter the failures nothing changed:");
    show(&db);
    let total: i64 = rows::<Account>(&db, "account")
        .iter()
        .map(|a| a.balance)
        .sum();
    println!("  total balance {total} (was 300)");
    if total != 300 {
        return Err("the total balance changed".into());
    }
    Ok(())
}

fn show(db: &Database) {
    for account in rows::<Account>(db, "account") {
        println!("  account {} balance {}", account.id, account.balance);
    }
}

fn report(result: Result<(), CallError>) {
    match result {
        Ok(()) => println!("  committed"),
        Err(err) => println!("  rejected: {err}"),
    }
}
