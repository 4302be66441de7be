//! A crash test against the real server (#9, "a crash test against the real
//! server"): `worldline start --durability every` runs the bank example while
//! concurrent clients over HTTP, WebSocket and QUIC make transfers; the test
//! SIGKILLs the server at random moments, restarts it on the same data
//! directory (every other restart is itself killed at a random moment of
//! its startup), and checks the recovered balances exactly.
//!
//! Every client makes one transfer at a time and records each one the server
//! acknowledged (HTTP `200`, or `Committed` over the wire protocol), and the
//! one it had in flight when the connection died, whose outcome is unknown.
//! The bank's `transfer` has no per-transfer record, so the check derives
//! balances: after each restart they must equal the balances before the
//! round plus the effect of every acknowledged transfer plus the effect of
//! some subset of the in-flight ones (at most one per client), and the total
//! must be unchanged. Balances are large enough that no transfer is refused,
//! so every acknowledgement is a committed transfer.
//!
//! `WORLDLINE_SERVER_CRASH_KILLS` sets the number of kills (default 5); the
//! seed of the kill times and transfers is printed, and
//! `WORLDLINE_SERVER_CRASH_SEED` replays one.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use worldline_client::{Client, ClientError, ConnectOptions, Trust};
use worldline_tests::process::{Http, ServerProcess, worldline_binary};
use worldline_tests::{TempDir, guest_wasm};
use worldline_transport::ReducerStatus;

/// The database the bank example is published as.
const DATABASE: &str = "bank";
/// Accounts seeded: few, so that transfers contend for the same rows.
const ACCOUNTS: u32 = 8;
/// Each account's opening balance: no transfer ever lacks the funds.
const INITIAL_BALANCE: i64 = 1_000_000_000;
/// Clients per round over each transport.
const HTTP_CLIENTS: u64 = 2;
const WEBSOCKET_CLIENTS: u64 = 2;
const QUIC_CLIENTS: u64 = 1;
/// How long a killed server's QUIC clients take to give up on it.
const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request may take before the test gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The balances of every account, by id.
fn balances(http: &Http) -> Vec<i64> {
    let path = format!("/v1/database/{DATABASE}/sql");
    let answer = http.post_ok(&path, "text/plain", b"SELECT * FROM account");
    let rows = answer["tables"][0]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("an SQL answer with rows: {answer}"));
    let mut balances = vec![None; ACCOUNTS as usize];
    for row in rows {
        let id = row[0].as_u64().expect("an account id") as usize;
        balances[id] = row[1].as_i64();
    }
    balances
        .into_iter()
        .map(|b| b.expect("every account has a balance"))
        .collect()
}

/// One transfer a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transfer {
    from: u32,
    to: u32,
    amount: i64,
}

impl Transfer {
    fn random(rng: &mut StdRng) -> Self {
        let from = rng.random_range(0..ACCOUNTS);
        Self {
            from,
            to: (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS,
            amount: rng.random_range(1..=1000),
        }
    }

    fn apply(self, balances: &mut [i64]) {
        balances[self.from as usize] -= self.amount;
        balances[self.to as usize] += self.amount;
    }
}

/// What one client saw in one round.
#[derive(Debug, Default)]
struct Record {
    /// Transfers the server acknowledged: they must all be in the recovered state.
    acked: Vec<Transfer>,
    /// The transfer in flight when the connection died: it may or may not be.
    in_flight: Option<Transfer>,
}

/// Makes transfers over HTTP until the server stops answering.
fn http_client(http: Http, mut rng: StdRng) -> Record {
    let mut record = Record::default();
    let path = format!("/v1/database/{DATABASE}/call/transfer");
    loop {
        let transfer = Transfer::random(&mut rng);
        let args = json!([transfer.from, transfer.to, transfer.amount]).to_string();
        match http.post(&path, "application/json", args.as_bytes()) {
            Ok((200, _)) => record.acked.push(transfer),
            // The server died before answering: outcome unknown. (A 503
            // saying the outcome is unknown would be one too.)
            Err(_) | Ok((503, _)) => {
                record.in_flight = Some(transfer);
                return record;
            }
            Ok((status, text)) => panic!("transfer {transfer:?} over HTTP: {status} {text}"),
        }
    }
}

/// Makes transfers over the wire protocol until the connection ends.
async fn wire_client(options: ConnectOptions, mut rng: StdRng) -> Record {
    let mut record = Record::default();
    let client = match Client::connect(options).await {
        Ok(client) => client,
        // Killed before this client got in: it made no transfer.
        Err(ClientError::Connect(_) | ClientError::Closed(_)) => return record,
        Err(e) => panic!("connecting: {e}"),
    };
    loop {
        let transfer = Transfer::random(&mut rng);
        let args = (transfer.from, transfer.to, transfer.amount);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.call("transfer", &args))
            .await
            .unwrap_or_else(|_| panic!("transfer {transfer:?} was never answered"));
        match answer {
            Ok(outcome) => match outcome.status {
                ReducerStatus::Committed => record.acked.push(transfer),
                ReducerStatus::OutcomeUnknown(_) => {
                    record.in_flight = Some(transfer);
                    return record;
                }
                ReducerStatus::Failed(why) => panic!("transfer {transfer:?} failed: {why}"),
            },
            Err(ClientError::Closed(_)) => {
                record.in_flight = Some(transfer);
                return record;
            }
            Err(e) => panic!("transfer {transfer:?}: {e}"),
        }
    }
}

/// Runs every client against `server` until it is killed after `delay`;
/// returns what each client recorded.
async fn round(
    server: ServerProcess,
    token: &str,
    delay: Duration,
    rng: &mut StdRng,
) -> Vec<Record> {
    let mut blocking = Vec::new();
    for _ in 0..HTTP_CLIENTS {
        let http = Http::new(&server.http, Some(token));
        let rng = StdRng::seed_from_u64(rng.random());
        blocking.push(tokio::task::spawn_blocking(move || http_client(http, rng)));
    }
    let ws_url = server.ws_url();
    let mut wire = Vec::new();
    for i in 0..WEBSOCKET_CLIENTS + QUIC_CLIENTS {
        let options = if i < WEBSOCKET_CLIENTS {
            ConnectOptions::websocket(&ws_url, DATABASE)
        } else {
            let trust = Trust::Fingerprint(server.fingerprint);
            // A killed server closes no QUIC connection: notice its silence soon.
            ConnectOptions::quic(server.quic, trust, DATABASE).with_idle_timeout(QUIC_IDLE_TIMEOUT)
        }
        .with_token(token);
        wire.push(tokio::spawn(wire_client(
            options,
            StdRng::seed_from_u64(rng.random()),
        )));
    }
    tokio::time::sleep(delay).await;
    tokio::task::block_in_place(|| server.kill());
    let mut records = Vec::new();
    for task in blocking.into_iter().chain(wire) {
        records.push(task.await.expect("a client panicked"));
    }
    records
}

/// Whether `recovered` is `expected` plus the effect of some subset of
/// `in_flight`; the subset found, as a bit mask, if so.
fn explained(expected: &[i64], in_flight: &[Transfer], recovered: &[i64]) -> Option<u32> {
    (0..1u32 << in_flight.len()).find(|mask| {
        let mut balances = expected.to_vec();
        for (i, transfer) in in_flight.iter().enumerate() {
            if mask & (1 << i) != 0 {
                transfer.apply(&mut balances);
            }
        }
        balances == recovered
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transfers_survive_sigkill_of_the_real_server() {
    let kills: usize = std::env::var("WORLDLINE_SERVER_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("WORLDLINE_SERVER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("server crash test: seed {seed} (WORLDLINE_SERVER_CRASH_SEED replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    tokio::task::block_in_place(worldline_binary);
    let dir = TempDir::new("worldline-server-crash");

    // Publish the bank example and open the accounts.
    let server = tokio::task::block_in_place(|| ServerProcess::start(dir.path()));
    let http = tokio::task::block_in_place(|| {
        let http = Http::new_identity(&server.http);
        http.publish(DATABASE, &guest_wasm("bank"));
        http.call_ok(DATABASE, "seed", &json!([ACCOUNTS, INITIAL_BALANCE]));
        http
    });
    let token = http.token().expect("a token").to_owned();
    let mut before = vec![INITIAL_BALANCE; ACCOUNTS as usize];
    assert_eq!(tokio::task::block_in_place(|| balances(&http)), before);

    let mut server = server;
    let (mut total_acked, mut total_in_flight, mut total_applied) = (0, 0, 0);
    for kill in 0..kills {
        let delay = Duration::from_millis(rng.random_range(200..1500));
        let records = round(server, &token, delay, &mut rng).await;
        // Every other restart is killed too, at a random moment of its recovery.
        let kill_while_starting = rng
            .random_bool(0.5)
            .then(|| Duration::from_millis(rng.random_range(0..400)));
        server = tokio::task::block_in_place(|| {
            if let Some(after) = kill_while_starting {
                ServerProcess::kill_while_starting(dir.path(), after);
            }
            ServerProcess::start(dir.path())
        });
        let http = Http::new(&server.http, Some(&token));
        let recovered = tokio::task::block_in_place(|| balances(&http));
        assert_eq!(
            recovered.iter().sum::<i64>(),
            i64::from(ACCOUNTS) * INITIAL_BALANCE,
            "kill {kill}: money appeared or vanished: {recovered:?}"
        );
        let mut expected = before.clone();
        let acked: Vec<Transfer> = records.iter().flat_map(|r| r.acked.clone()).collect();
        acked.iter().for_each(|t| t.apply(&mut expected));
        let in_flight: Vec<Transfer> = records.iter().filter_map(|r| r.in_flight).collect();
        let Some(mask) = explained(&expected, &in_flight, &recovered) else {
            panic!(
                "kill {kill} (after {delay:?}; seed {seed}): the recovered balances {recovered:?} \
                 are not the {} acknowledged transfers applied to {before:?} (giving \
                 {expected:?}) plus any subset of the in-flight {in_flight:?}",
                acked.len()
            );
        };
        let restart = match kill_while_starting {
            Some(after) => format!(" (and a restart killed after {after:?})"),
            None => String::new(),
        };
        eprintln!(
            "kill {kill} after {delay:?}{restart}: {} acknowledged transfers recovered, {} of {} \
             in flight took effect",
            acked.len(),
            mask.count_ones(),
            in_flight.len()
        );
        total_acked += acked.len();
        total_in_flight += in_flight.len();
        total_applied += mask.count_ones() as usize;
        before = recovered;
    }
    tokio::task::block_in_place(|| server.kill());
    assert!(
        total_acked > 0,
        "no transfer was acknowledged in {kills} rounds"
    );
    eprintln!(
        "{kills} kills: {total_acked} acknowledged transfers, all recovered (lost: 0); \
         {total_applied} of {total_in_flight} in-flight transfers took effect"
    );
}
