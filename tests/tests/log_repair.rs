//! `worldline repair` on a real data directory: a commit log damaged in
//! the middle keeps its database unavailable (the server says to run
//! `worldline repair`); the repair refuses while a server holds the data
//! directory, says what it would keep and set aside without changing
//! anything, and with `--apply` cuts the log where the damage starts, so
//! that the database serves again with exactly the transfers before it,
//! takes new ones and keeps them across a restart.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;
use worldline_tests::crash::{apply, balances_in_sql_answer};
use worldline_tests::process::{Http, ServerProcess, worldline_binary};
use worldline_tests::{TempDir, files_under, guest_wasm};

/// Runs `worldline repair bank --data-dir data` with `extra` arguments.
fn repair(data: &Path, extra: &[&str]) -> Output {
    Command::new(worldline_binary())
        .args(["repair", "bank", "--data-dir"])
        .arg(data)
        .args(extra)
        .output()
        .expect("running worldline repair")
}

/// Its standard output, which it must print with exit status 0.
fn repaired(data: &Path, extra: &[&str]) -> String {
    let output = repair(data, extra);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Publishes `bank` on a server on `data`, seeds `accounts` accounts with
/// `balance` each, makes `transfers` (from, to, amount) one at a time and
/// kills the server: the owner's client and the balances after each
/// acknowledged transfer, from none on.
fn bank_after(
    data: &Path,
    accounts: u32,
    balance: i64,
    transfers: impl Iterator<Item = (u32, u32, i64)>,
) -> (Http, Vec<Vec<i64>>) {
    let server = ServerProcess::start(data);
    let http = Http::new_identity(&server.http);
    http.publish("bank", &guest_wasm("bank"));
    http.call_ok("bank", "seed", &json!([accounts, balance]));
    let mut history = vec![vec![balance; accounts as usize]];
    for (from, to, amount) in transfers {
        http.call_ok("bank", "transfer", &json!([from, to, amount]));
        let mut next = history.last().expect("a state").clone();
        apply(&mut next, (from, to, amount));
        history.push(next);
    }
    server.kill();
    (http, history)
}

/// Starts the server on `data` and checks that `bank` serves one of the
/// states in `history`, then takes a transfer that a restart keeps: how
/// many transfers that state holds. `http` is the owner's client.
fn serves_an_acknowledged_state(data: &Path, http: &Http, history: &[Vec<i64>]) -> usize {
    let server = ServerProcess::start(data);
    let http = Http::new(&server.http, http.token());
    let (status, state, body) = balances(&http);
    assert_eq!(status, 200, "{body}");
    let transfers = history
        .iter()
        .position(|acknowledged| *acknowledged == state)
        .unwrap_or_else(|| panic!("{state:?} is no acknowledged state"));
    // It takes new transfers, which a restart keeps.
    http.call_ok("bank", "transfer", &json!([0, 1, 5]));
    let mut expected = state;
    apply(&mut expected, (0, 1, 5));
    server.kill();
    let server = ServerProcess::start(data);
    let http = Http::new(&server.http, http.token());
    assert_eq!(balances(&http).1, expected);
    server.kill();
    transfers
}

/// `bank`'s balances over HTTP: the status and, if 200, the balances.
fn balances(http: &Http) -> (u16, Vec<i64>, String) {
    let (status, body) = http
        .post(
            "/v1/database/bank/sql",
            "text/plain",
            b"SELECT * FROM account",
        )
        .expect("an answer");
    let balances = if status == 200 {
        balances_in_sql_answer(&body)
    } else {
        Vec::new()
    };
    (status, balances, body)
}

#[test]
fn a_log_damaged_in_the_middle_is_cut_by_repair_keeping_every_transfer_before_it() {
    let dir = TempDir::new("worldline-log-repair");
    let data = dir.path().join("data");
    let transfers = (0..40u32).map(|i| (i % 4, (i + 1) % 4, i64::from(1 + i % 3)));
    let (http, history) = bank_after(&data, 4, 100, transfers);

    // A bit flipped two thirds into the segment's records (past them, the
    // segment holds zeros written ahead).
    let segment = data.join("databases/bank/log/00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("reading the segment");
    let end = bytes.iter().rposition(|&b| b != 0).expect("records");
    let damaged_at = end * 2 / 3;
    bytes[damaged_at] ^= 0x10;
    std::fs::write(&segment, &bytes).expect("damaging the segment");

    // The server serves, without the database, and says what to run.
    let server = ServerProcess::start(&data);
    let http = Http::new(&server.http, http.token());
    let (status, _, body) = balances(&http);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("log/00000000000000000000.seg is corrupt at byte")
            && body.contains("`worldline repair bank`"),
        "{body}"
    );
    // The repair refuses while a server holds the data directory.
    let output = repair(&data, &["--apply"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another Worldline server"),
        "{stderr}"
    );
    server.kill();
    assert_eq!(std::fs::read(&segment).expect("the segment"), bytes);

    // A dry run says what it would do and changes nothing.
    let before = files_under(&data.join("databases/bank"));
    let plan = repaired(&data, &[]);
    assert!(
        plan.contains("database bank: the commit log is damaged: log/00000000000000000000.seg is corrupt at byte")
            && plan.contains("nothing was changed: run `worldline repair bank --apply`"),
        "{plan}"
    );
    assert!(
        before == files_under(&data.join("databases/bank")),
        "a dry run changed files"
    );

    let done = repaired(&data, &["--apply"]);
    assert!(
        done.contains("done: the log is cut; what it set aside is in "),
        "{done}"
    );
    let aside = std::fs::read_dir(data.join("databases/bank/set-aside"))
        .expect("set-aside/")
        .next()
        .expect("one repair's directory")
        .expect("an entry")
        .path();
    assert_eq!(
        std::fs::read(aside.join("log/00000000000000000000.seg")).expect("the copy"),
        bytes,
        "the damaged segment is set aside as it was"
    );
    let kept = std::fs::read(&segment).expect("the cut segment");
    assert!(
        kept.len() < damaged_at && bytes.starts_with(&kept),
        "{}",
        kept.len()
    );

    // The database serves the state after some transfer before the damage.
    let transfers = serves_an_acknowledged_state(&data, &http, &history);
    assert!(
        transfers > 0 && transfers < 40,
        "{transfers} transfers kept"
    );
    let again = repaired(&data, &[]);
    assert!(again.contains("nothing to repair"), "{again}");
    // A database the data directory does not hold is named.
    let output = Command::new(worldline_binary())
        .args(["repair", "nope", "--data-dir"])
        .arg(&data)
        .output()
        .expect("running worldline repair");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no database named `nope`"), "{stderr}");
}

/// A database's directory lost its `database-id` (the log and snapshots
/// are its own): the server says so, not that they belong to another
/// database, and the repair writes it back with every transfer kept. Then
/// every log segment is deleted: the repair continues the log from the
/// newest snapshot, with the transfers it holds.
#[test]
fn a_lost_database_id_is_written_back_and_an_emptied_log_continues_from_the_snapshot() {
    let dir = TempDir::new("worldline-id-repair");
    let data = dir.path().join("data");
    let database = data.join("databases/bank");
    // Past the server's snapshot interval (200 transactions); each state
    // tells how many transfers it holds.
    let (http, history) = bank_after(&data, 2, 1000, (0..230).map(|_| (0, 1, 1)));
    assert!(
        files_under(&database.join("snapshots"))
            .iter()
            .any(|(path, _)| path.extension().is_some_and(|e| e == "snap")),
        "a snapshot was taken"
    );

    std::fs::remove_file(database.join("database-id")).expect("removing database-id");
    let server = ServerProcess::start(&data);
    let http = Http::new(&server.http, http.token());
    let (status, _, body) = balances(&http);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("database-id file is missing")
            && body.contains("`worldline repair bank --apply`")
            && !body.contains("belongs to another database"),
        "{body}"
    );
    server.kill();
    let plan = repaired(&data, &[]);
    assert!(
        plan.contains(
            "its database-id file is missing, and every log segment and snapshot names database "
        ) && plan.contains("the repair writes database-id back"),
        "{plan}"
    );
    assert!(!database.join("database-id").exists(), "a dry run wrote it");
    let done = repaired(&data, &["--apply"]);
    assert!(done.contains("database-id is written back"), "{done}");
    let server = ServerProcess::start(&data);
    let http = Http::new(&server.http, http.token());
    assert_eq!(balances(&http).1, *history.last().expect("a state"));
    server.kill();

    for entry in std::fs::read_dir(database.join("log")).expect("log/") {
        std::fs::remove_file(entry.expect("an entry").path()).expect("removing a segment");
    }
    let server = ServerProcess::start(&data);
    let http = Http::new(&server.http, http.token());
    let (status, _, body) = balances(&http);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("`worldline repair bank`"), "{body}");
    server.kill();
    let done = repaired(&data, &["--apply"]);
    assert!(
        done.contains("no segment (the log has none from the cut on")
            && done.contains("start the server: database bank recovers with"),
        "{done}"
    );
    let transfers = serves_an_acknowledged_state(&data, &http, &history);
    assert!(transfers > 150, "{transfers} transfers kept");
}
