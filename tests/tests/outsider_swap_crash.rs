//! An outsider's attack on the recorded schema (`databases/<name>/schema.json`)
//! with the real `worldline` binary:
//!
//! 1. hot swap under load (`chat` -> `chat-v2`, the pair `hot_swap.rs` uses)
//!    with the server SIGKILLed before, during and after the swap: after each
//!    restart the database serves, every acknowledged message is there, the
//!    module is the old or the new one (the new one if the swap was
//!    acknowledged), and `schema.json` names the SHA-256 of `module.wasm`;
//! 2. a `schema.json` edited after a clean stop (a table gains an index):
//!    the database is unavailable with a reason about `describe`, answers
//!    503, the other database serves; restoring the file brings it back;
//! 3. garbage in `schema.json` (not JSON, empty, whitespace, `{}`, a
//!    description that does not hold together, 70 MB): the server starts,
//!    names the file in the reason, the other database serves, nothing
//!    panics; a removed file is recorded again;
//! 4. (ignored: shows a bug) a first publish killed midway.
//!
//! The server runs as its own process here (not `ServerProcess`) so that
//! its standard error can be read for "panicked".

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use worldline_tests::process::{Http, worldline_binary};
use worldline_tests::{TempDir, guest_wasm};

/// A `worldline start` whose standard error goes to a file.
struct Server {
    child: Child,
    http: String,
    /// What it printed up to its ready line.
    startup: Vec<String>,
    stderr: PathBuf,
}

impl Server {
    /// Asserts that database `name` is listed as available (not unavailable).
    fn assert_available(&self, name: &str) {
        assert_eq!(
            unavailable_in_list(&self.http, name),
            None,
            "{:#?}",
            self.startup
        );
    }

    /// Starts the server on `dir/data`, its standard error appended to
    /// `dir/stderr.log`, and waits for its ready line.
    fn start(dir: &Path) -> Self {
        let stderr = dir.join("stderr.log");
        let err_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .expect("opening the stderr file");
        let mut child = Command::new(worldline_binary())
            .args(["start", "--durability", "every", "--snapshot-every", "50"])
            .args(["--listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .expect("running worldline start");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut startup = Vec::new();
        let mut http = None;
        let mut ready = false;
        for line in lines.by_ref() {
            let line = line.expect("reading the server's output");
            if let Some(rest) = line.strip_prefix("worldline: HTTP and WebSocket on ") {
                http = rest.split_whitespace().next().map(str::to_owned);
            }
            let is_ready = line.starts_with("worldline: ready");
            startup.push(line);
            if is_ready {
                ready = true;
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let server = Self {
            child,
            http: http.unwrap_or_default(),
            startup,
            stderr,
        };
        assert!(
            ready && !server.http.is_empty(),
            "the server did not get ready; it printed {:#?}; stderr: {}",
            server.startup,
            server.stderr_text()
        );
        server
    }

    /// Starts the server on `dir/data` and SIGKILLs it `after` that long,
    /// most likely while it recovers.
    fn kill_while_starting(dir: &Path, after: Duration) {
        let mut child = Command::new(worldline_binary())
            .args([
                "start",
                "--listen",
                "127.0.0.1:0",
                "--quic-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running worldline start");
        std::thread::sleep(after);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping the server");
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn assert_no_panic(&self) {
        let text = self.stderr_text();
        assert!(!text.contains("panicked"), "the server panicked:\n{text}");
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the server");
        self.assert_no_panic();
    }

    /// SIGINT, then waits (at most 20 s) for a clean exit.
    fn stop(mut self) {
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) },
            0
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                assert!(status.success(), "the server exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.assert_no_panic();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET base+path`: the status and the text.
fn get(base: &str, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut response = agent
        .get(format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let text = response
        .body_mut()
        .read_to_string()
        .expect("reading the answer");
    (response.status().as_u16(), text)
}

fn get_json(base: &str, path: &str) -> Value {
    let (status, text) = get(base, path);
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The hot swap's HTTP answer (status and body, or why there was none), once it came.
type SwapAnswer = Arc<Mutex<Option<Result<(u16, String), String>>>>;

fn db_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("data/databases").join(name)
}

/// The reducer names `GET /v1/database/NAME` lists (or `None` if it says
/// the database is unavailable).
fn reducers(base: &str, name: &str) -> Result<Vec<String>, String> {
    let info = get_json(base, &format!("/v1/database/{name}"));
    if let Some(reason) = info.get("unavailable") {
        return Err(reason.to_string());
    }
    let list = info["reducers"]
        .as_array()
        .unwrap_or_else(|| panic!("reducers in {info}"));
    Ok(list
        .iter()
        .map(|r| match r {
            Value::String(s) => s.clone(),
            other => other["name"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}

/// The `unavailable` reason `GET /v1/database` lists for `name`, if any.
fn unavailable_in_list(base: &str, name: &str) -> Option<String> {
    let list = get_json(base, "/v1/database");
    let entry = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"));
    entry
        .get("unavailable")
        .map(|r| r.as_str().unwrap_or_default().to_owned())
}

/// The texts of every message in the chat database.
fn messages(http: &Http, db: &str) -> Vec<String> {
    let answer = http.post_ok(
        &format!("/v1/database/{db}/sql"),
        "text/plain",
        b"SELECT * FROM message",
    );
    let table = &answer["tables"][0];
    let text_col = table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|c| c == "text" || c["name"] == "text")
        .unwrap_or_else(|| panic!("a text column in {table}"));
    table["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row[text_col].as_str().expect("a text").to_owned())
        .collect()
}

/// The sum of every bank balance.
fn bank_total(http: &Http) -> i64 {
    let answer = http.post_ok(
        "/v1/database/bank/sql",
        "text/plain",
        b"SELECT * FROM account",
    );
    answer["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row[1].as_i64().expect("a balance"))
        .sum()
}

/// Checks that `schema.json` names the SHA-256 of `module.wasm`.
fn assert_schema_file_matches_module(dir: &Path, name: &str) {
    let module = std::fs::read(db_dir(dir, name).join("module.wasm")).expect("module.wasm");
    let file = std::fs::read(db_dir(dir, name).join("schema.json")).expect("schema.json");
    let stored: Value = serde_json::from_slice(&file).expect("schema.json is JSON");
    assert_eq!(
        stored["module_sha256"].as_str(),
        Some(sha256(&module).as_str()),
        "schema.json names another module than module.wasm"
    );
}

const ACCOUNTS: u32 = 6;
const BALANCE: i64 = 1_000_000;

/// Publishes `chat` and `bank` (seeded) on a fresh server.
fn publish_both(server: &Server) -> Http {
    let http = Http::new_identity(&server.http);
    http.publish("chat", &guest_wasm("chat"));
    http.publish("bank", &guest_wasm("bank"));
    http.call_ok("bank", "seed", &json!([ACCOUNTS, BALANCE]));
    http
}

/// Copies `cache/components` of a warm data directory into `to`, so that a
/// swap there takes milliseconds instead of a compile.
fn copy_cache(from: &Path, to: &Path) {
    let src = from.join("data/cache/components");
    let dst = to.join("data/cache/components");
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
}

/// What the load threads saw.
#[derive(Default)]
struct Load {
    acked_messages: Vec<String>,
    acked_transfers: u64,
    unexpected: Vec<String>,
}

/// Sends chat messages and bank transfers until the server stops answering.
fn run_load(
    base: String,
    token: String,
    tag: String,
    load: Arc<Mutex<Load>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let chat = {
        let (base, token, load) = (base.clone(), token.clone(), load.clone());
        std::thread::spawn(move || {
            let text = |i: u32| format!("{tag}-{i}");
            call_until_refused(
                &Http::new(&base, Some(&token)),
                ("chat", "send_message"),
                &load,
                |i| json!([text(i)]),
                |load, i| load.acked_messages.push(text(i)),
            );
        })
    };
    let bank = std::thread::spawn(move || {
        call_until_refused(
            &Http::new(&base, Some(&token)),
            ("bank", "transfer"),
            &load,
            |i| json!([i % ACCOUNTS, (i + 1) % ACCOUNTS, 1 + i as i64 % 7]),
            |load, _| load.acked_transfers += 1,
        );
    });
    vec![chat, bank]
}

/// Calls `reducer` of `database` with `args(i)` for i = 0, 1, ... until the
/// server stops answering or answers other than 200 (recorded in
/// `load.unexpected`); `acked(load, i)` records each call answered 200.
fn call_until_refused(
    http: &Http,
    (database, reducer): (&str, &str),
    load: &Mutex<Load>,
    args: impl Fn(u32) -> Value,
    acked: impl Fn(&mut Load, u32),
) {
    let path = format!("/v1/database/{database}/call/{reducer}");
    for i in 0u32.. {
        let body = args(i).to_string();
        match http.post(&path, "application/json", body.as_bytes()) {
            Ok((200, _)) => acked(&mut load.lock().unwrap(), i),
            Ok((status, body)) => {
                let unexpected = format!("{database} {status} {body}");
                load.lock().unwrap().unexpected.push(unexpected);
                return;
            }
            Err(_) => return,
        }
    }
}

#[test]
fn hot_swap_killed_before_during_and_after_keeps_acknowledged_data() {
    // A warm directory: its component cache holds chat, chat-v2 and bank.
    let warm = TempDir::new("outsider-swap-warm");
    {
        let server = Server::start(warm.path());
        let http = publish_both(&server);
        let swap_started = Instant::now();
        http.publish("chat", &guest_wasm("chat-v2"));
        eprintln!("cold swap took {:?}", swap_started.elapsed());
        server.stop();
    }
    let old = guest_wasm("chat");
    let new = guest_wasm("chat-v2");
    // When to kill, with a warm component cache or not.
    let cases: &[(Kill, bool)] = &[
        (Kill::After(-30), true),
        (Kill::After(0), true),
        (Kill::After(2), true),
        (Kill::After(8), true),
        (Kill::After(25), true),
        (Kill::When("module.wasm"), true),
        (Kill::When("module.wasm"), true),
        (Kill::When("schema.json"), true),
        (Kill::When("snapshots"), true),
        (Kill::When("snapshots"), true),
        (Kill::When("snapshots"), false),
        (Kill::When("module.wasm"), false),
        (Kill::When("schema.json"), false),
        (Kill::After(40), false),
        (Kill::After(300), false),
    ];
    let mut swapped = 0;
    let mut inconsistent_on_disk = 0;
    for (round, &(kill, warm_cache)) in cases.iter().enumerate() {
        let dir = TempDir::new("outsider-swap");
        if warm_cache {
            copy_cache(warm.path(), dir.path());
        }
        let server = Server::start(dir.path());
        let http = publish_both(&server);
        let token = http.token().unwrap().to_owned();
        let load = Arc::new(Mutex::new(Load::default()));
        let threads = run_load(
            server.http.clone(),
            token.clone(),
            format!("r{round}"),
            load.clone(),
        );
        std::thread::sleep(Duration::from_millis(60));
        let swap_answer: SwapAnswer = Arc::default();
        let chat_dir = db_dir(dir.path(), "chat");
        let before = (
            std::fs::read(chat_dir.join("module.wasm")).unwrap(),
            std::fs::read(chat_dir.join("schema.json")).unwrap(),
        );
        let swap_thread = (!matches!(kill, Kill::After(ms) if ms < 0)).then(|| {
            let (base, token, new, answer) = (
                server.http.clone(),
                token.clone(),
                new.clone(),
                swap_answer.clone(),
            );
            std::thread::spawn(move || {
                let result = Http::new(&base, Some(&token))
                    .post("/v1/database/chat", "application/wasm", &new)
                    .map_err(|e| e.to_string());
                *answer.lock().unwrap() = Some(result);
            })
        });
        match kill {
            Kill::After(ms) => std::thread::sleep(Duration::from_millis(ms.unsigned_abs())),
            Kill::When("snapshots") => {
                // Kill the moment a new snapshot appears (the swap writes one).
                let names = |d: &Path| -> Vec<String> {
                    std::fs::read_dir(d.join("snapshots"))
                        .map(|r| {
                            r.filter_map(|e| e.ok())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let old = names(&chat_dir);
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && names(&chat_dir).iter().all(|n| old.contains(n))
                {
                }
            }
            Kill::When(file) => {
                // Kill the moment the file's content changes (or after 5 s).
                let path = chat_dir.join(file);
                let old = if file == "module.wasm" {
                    &before.0
                } else {
                    &before.1
                };
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    if len != old.len() as u64 || std::fs::read(&path).is_ok_and(|b| &b != old) {
                        break;
                    }
                }
            }
        }
        let answered_before_kill = swap_answer.lock().unwrap().clone();
        server.kill();
        for thread in threads {
            thread.join().unwrap();
        }
        if let Some(t) = swap_thread {
            t.join().unwrap();
        }
        let load = std::mem::take(&mut *load.lock().unwrap());
        assert!(
            load.unexpected.is_empty(),
            "round {round}: unexpected answers {:?}",
            load.unexpected
        );

        // What the crash left on disk, before any restart touches it.
        let module = std::fs::read(db_dir(dir.path(), "chat").join("module.wasm")).unwrap();
        let on_disk: Value = serde_json::from_slice(
            &std::fs::read(db_dir(dir.path(), "chat").join("schema.json")).unwrap(),
        )
        .expect("schema.json after the crash is JSON");
        let disk_consistent = on_disk["module_sha256"].as_str() == Some(sha256(&module).as_str());
        inconsistent_on_disk += !disk_consistent as u32;
        assert!(
            module == old || module == new,
            "round {round}: module.wasm is neither chat nor chat-v2"
        );

        if !disk_consistent {
            // The restart re-records the schema: kill it while it does.
            for ms in [5, 20, 60] {
                Server::kill_while_starting(dir.path(), Duration::from_millis(ms));
            }
        }
        let server = Server::start(dir.path());
        let listed = reducers(&server.http, "chat").unwrap_or_else(|reason| {
            panic!(
                "round {round}: chat is unavailable after the crash: {reason}\n{:#?}",
                server.startup
            )
        });
        assert_eq!(unavailable_in_list(&server.http, "chat"), None);
        assert_eq!(unavailable_in_list(&server.http, "bank"), None);
        let is_new = listed.iter().any(|r| r == "react");
        assert_eq!(
            is_new,
            module == new,
            "round {round}: the reducers are not module.wasm's"
        );
        if let Some(Ok((status, text))) = &answered_before_kill {
            assert!(
                (200..300).contains(status),
                "round {round}: the swap failed: {status} {text}"
            );
            assert!(
                is_new,
                "round {round}: an acknowledged swap was lost in the crash"
            );
        }
        swapped += is_new as u32;
        assert_schema_file_matches_module(dir.path(), "chat");

        let http = Http::new(&server.http, Some(&token));
        let stored = messages(&http, "chat");
        for text in &load.acked_messages {
            assert!(
                stored.contains(text),
                "round {round}: acknowledged message {text} is lost"
            );
        }
        assert_eq!(
            bank_total(&http),
            ACCOUNTS as i64 * BALANCE,
            "round {round}: money"
        );
        eprintln!(
            "round {round}: kill {kill:?} (warm cache {warm_cache}); \
             {} messages, {} transfers acknowledged; swap answered before the kill: {}; \
             on disk after the crash schema.json {} module.wasm ({}); restart: {}",
            load.acked_messages.len(),
            load.acked_transfers,
            answered_before_kill.is_some(),
            if disk_consistent {
                "matched"
            } else {
                "did NOT match"
            },
            if module == new { "chat-v2" } else { "chat" },
            server
                .startup
                .iter()
                .filter(|l| l.contains("chat"))
                .cloned()
                .collect::<Vec<_>>()
                .join(" | "),
        );

        // The database goes on working: a call, the swap (again, or now),
        // and a clean restart that trusts the recorded schema.
        http.call_ok("chat", "send_message", &json!(["after"]));
        http.publish("chat", &new);
        assert_schema_file_matches_module(dir.path(), "chat");
        server.stop();
        let server = Server::start(dir.path());
        assert!(
            reducers(&server.http, "chat")
                .unwrap()
                .iter()
                .any(|r| r == "react")
        );
        let stored = messages(&http_for(&server, &token), "chat");
        assert!(stored.iter().any(|t| t == "after"));
        for text in &load.acked_messages {
            assert!(
                stored.contains(text),
                "round {round}: message {text} lost after the second swap"
            );
        }
        server.stop();
    }
    eprintln!(
        "{swapped} of {} rounds came back with chat-v2; {inconsistent_on_disk} crashes left \
         schema.json naming another module than module.wasm",
        cases.len()
    );
}

/// When a round kills the server.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This many milliseconds after the swap request is sent (negative:
    /// before it is sent; it is not sent then).
    After(i64),
    /// The moment this file of the database changes.
    When(&'static str),
}

fn http_for(server: &Server, token: &str) -> Http {
    Http::new(&server.http, Some(token))
}

/// Adds an index on `message.text` to the `message` table of a stored
/// `schema.json`.
fn add_index(stored: &mut Value) {
    let tables = stored["schema"]["tables"].as_array_mut().expect("tables");
    let message = tables
        .iter_mut()
        .find(|t| t["name"] == "message")
        .expect("message");
    let text = message["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "text")
        .expect("a text column");
    let indexes = message["indexes"].as_array_mut().expect("indexes");
    let mut index = indexes[0].clone();
    index["name"] = json!("message_text_idx");
    index["columns"] = json!([text]);
    index["unique"] = json!(false);
    indexes.push(index);
}

/// Checks, with the server running, that `chat` is unavailable with a
/// reason containing `needle`, answers 503, and `bank` serves.
fn assert_chat_unavailable(server: &Server, http: &Http, needle: &str) -> String {
    let reason = unavailable_in_list(&server.http, "chat")
        .unwrap_or_else(|| panic!("chat is not unavailable; startup: {:#?}", server.startup));
    assert!(
        reason.contains(needle),
        "the reason does not mention {needle:?}: {reason}"
    );
    assert!(reducers(&server.http, "chat").is_err());
    assert!(
        server
            .startup
            .iter()
            .any(|l| l.contains("chat is UNAVAILABLE")),
        "{:#?}",
        server.startup
    );
    let (status, text) = http
        .post(
            "/v1/database/chat/call/send_message",
            "application/json",
            br#"["x"]"#,
        )
        .unwrap();
    assert_eq!(status, 503, "a call to the unavailable chat: {text}");
    assert!(text.contains("unavailable"), "{text}");
    let (status, text) = http
        .post(
            "/v1/database/chat/sql",
            "text/plain",
            b"SELECT * FROM message",
        )
        .unwrap();
    assert_eq!(status, 503, "SQL on the unavailable chat: {text}");
    let (status, _) = get(&server.http, "/v1/database/chat/schema");
    assert_eq!(status, 503);
    http.call_ok("bank", "transfer", &json!([0, 1, 5]));
    assert_eq!(bank_total(http), ACCOUNTS as i64 * BALANCE);
    server.assert_no_panic();
    reason
}

/// Publishes `chat` (with `messages` messages sent) and `bank` on a server
/// on `dir`, then stops it; returns the publisher's token, chat's
/// `schema.json` and what it holds.
fn stopped_with_chat(dir: &Path, messages: usize) -> (String, PathBuf, Vec<u8>) {
    let server = Server::start(dir);
    let http = publish_both(&server);
    let token = http.token().unwrap().to_owned();
    for i in 0..messages {
        http.call_ok("chat", "send_message", &json!([format!("m{i}")]));
    }
    server.stop();
    let file = db_dir(dir, "chat").join("schema.json");
    let original = std::fs::read(&file).unwrap();
    (token, file, original)
}

#[test]
fn an_edited_schema_file_makes_the_database_unavailable_until_restored() {
    let dir = TempDir::new("outsider-schema-tamper");
    let (token, file, original) = stopped_with_chat(dir.path(), 20);
    let mut stored: Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(
        stored["module_sha256"].as_str().unwrap(),
        sha256(&guest_wasm("chat")),
        "schema.json names the published module"
    );

    // A table gains an index.
    add_index(&mut stored);
    std::fs::write(&file, serde_json::to_vec(&stored).unwrap()).unwrap();
    let server = Server::start(dir.path());
    let http = http_for(&server, &token);
    let reason = assert_chat_unavailable(&server, &http, "describe");
    eprintln!("an added index: {reason}");
    assert!(
        reason.contains("message_text_idx") || reason.contains("index"),
        "{reason}"
    );
    // The file was not rewritten while the database is unavailable.
    assert_eq!(
        std::fs::read(&file).unwrap(),
        serde_json::to_vec(&stored).unwrap()
    );
    server.stop();

    // A column retyped (an incompatible difference).
    let mut retyped: Value = serde_json::from_slice(&original).unwrap();
    let tables = retyped["schema"]["tables"].as_array_mut().unwrap();
    let message = tables.iter_mut().find(|t| t["name"] == "message").unwrap();
    for column in message["columns"].as_array_mut().unwrap() {
        if column["name"] == "text" {
            column["type"] = json!("u64");
        }
    }
    std::fs::write(&file, serde_json::to_vec(&retyped).unwrap()).unwrap();
    let server = Server::start(dir.path());
    let http = http_for(&server, &token);
    let reason = assert_chat_unavailable(&server, &http, "describe");
    eprintln!("a retyped column: {reason}");
    server.stop();

    // The same description written differently (pretty-printed) is the same.
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&original).unwrap()).unwrap();
    std::fs::write(&file, &pretty).unwrap();
    let server = Server::start(dir.path());
    server.assert_available("chat");
    server.stop();

    // Restored: it serves again with its data.
    std::fs::write(&file, &original).unwrap();
    let server = Server::start(dir.path());
    let http = http_for(&server, &token);
    server.assert_available("chat");
    let stored = messages(&http, "chat");
    for i in 0..20 {
        assert!(stored.contains(&format!("m{i}")));
    }
    http.call_ok("chat", "send_message", &json!(["again"]));
    server.stop();

    // An edited description that names another module's hash is replaced
    // by the current one (documented: a file from another module).
    let mut other = stored_value(&original);
    add_index(&mut other);
    other["module_sha256"] = json!("00".repeat(32));
    std::fs::write(&file, serde_json::to_vec(&other).unwrap()).unwrap();
    let server = Server::start(dir.path());
    server.assert_available("chat");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        original,
        "schema.json recorded again"
    );
    assert_eq!(messages(&http_for(&server, &token), "chat").len(), 21);
    server.stop();

    // module.wasm replaced by an incompatible module (chat-breaking: no
    // `user` table, `message.text` a u64): schema.json names another
    // module, so the start records chat-breaking's schema and validates the
    // stored rows against it. They do not fit: unavailable, not served.
    let module = db_dir(dir.path(), "chat").join("module.wasm");
    std::fs::write(&module, guest_wasm("chat-breaking")).unwrap();
    let server = Server::start(dir.path());
    let reason = unavailable_in_list(&server.http, "chat");
    eprintln!(
        "chat-breaking under chat's rows: {reason:?}\n{:#?}",
        server.startup
    );
    server.assert_no_panic();
    assert!(
        reason.is_some(),
        "chat's rows were served under chat-breaking's schema"
    );
    assert_chat_unavailable(&server, &http_for(&server, &token), "");
    server.stop();
    // Restoring module.wasm brings it back with its data.
    std::fs::write(&module, guest_wasm("chat")).unwrap();
    let server = Server::start(dir.path());
    server.assert_available("chat");
    assert_eq!(messages(&http_for(&server, &token), "chat").len(), 21);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        original,
        "schema.json recorded again"
    );
    server.stop();
}

fn stored_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn garbage_schema_files_never_stop_the_server() {
    let dir = TempDir::new("outsider-schema-garbage");
    let (token, file, original) = stopped_with_chat(dir.path(), 5);
    let hash = sha256(&guest_wasm("chat"));

    let huge = {
        let mut bytes = vec![b' '; 70_000_000];
        bytes[..1].copy_from_slice(b"{");
        bytes
    };
    let mut garbage: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"this is not json at all \x00\xff".to_vec()),
        ("empty (0 bytes)", Vec::new()),
        ("whitespace", b" \n\t ".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("JSON null", b"null".to_vec()),
        ("truncated", original[..original.len() / 2].to_vec()),
        ("70 MB", huge),
    ];
    // Descriptions under the module's own hash that do not hold together:
    // they must be refused as a reason, not crash the comparison.
    let nonsense: Vec<(&str, Value)> = {
        let base = stored_value(&original);
        let message_at = base["schema"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .position(|t| t["name"] == "message")
            .unwrap();
        let mut out_of_range_index = base.clone();
        out_of_range_index["schema"]["tables"][message_at]["indexes"][0]["columns"] = json!([99]);
        let mut out_of_range_pk = base.clone();
        out_of_range_pk["schema"]["tables"][message_at]["primary_key"] = json!(99);
        let mut out_of_range_auto_inc = base.clone();
        out_of_range_auto_inc["schema"]["tables"][message_at]["auto_inc"] = json!([99]);
        let mut no_tables = base.clone();
        no_tables["schema"]["tables"] = json!([]);
        let mut duplicate_table = base.clone();
        let copy = duplicate_table["schema"]["tables"][message_at].clone();
        duplicate_table["schema"]["tables"]
            .as_array_mut()
            .unwrap()
            .push(copy);
        let mut no_columns = base.clone();
        no_columns["schema"]["tables"][message_at]["columns"] = json!([]);
        vec![
            ("an index on column 99", out_of_range_index),
            ("a primary key of column 99", out_of_range_pk),
            ("auto_inc column 99", out_of_range_auto_inc),
            ("no tables", no_tables),
            ("a duplicated table", duplicate_table),
            ("a table without columns", no_columns),
        ]
    };
    for (what, value) in nonsense {
        assert_eq!(value["module_sha256"].as_str(), Some(hash.as_str()));
        garbage.push((what, serde_json::to_vec(&value).unwrap()));
    }
    for (what, bytes) in &garbage {
        std::fs::write(&file, bytes).unwrap();
        let server = Server::start(dir.path());
        let http = http_for(&server, &token);
        let reason = unavailable_in_list(&server.http, "chat")
            .unwrap_or_else(|| panic!("{what}: chat is available; {:#?}", server.startup));
        eprintln!("{what}: {}", reason.replace("the module's `describe` now returns another schema than it did when the module was published or swapped in (kept in schema.json); `describe` must be deterministic, as the stored rows were written for the schema it returned then.", "[describe changed]"));
        if !what.contains("column") && !what.contains("table") {
            assert!(reason.contains("schema.json"), "{what}: {reason}");
        }
        assert_chat_unavailable(&server, &http, "");
        server.stop();
        assert_eq!(
            &std::fs::read(&file).unwrap(),
            bytes,
            "{what}: the file was rewritten"
        );
    }

    // Removed: the start records the current description and serves.
    std::fs::remove_file(&file).unwrap();
    let server = Server::start(dir.path());
    server.assert_available("chat");
    assert_eq!(std::fs::read(&file).unwrap(), original);
    assert_eq!(messages(&http_for(&server, &token), "chat").len(), 5);
    server.stop();

    // Replaced by a directory: reported, not a panic.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let server = Server::start(dir.path());
    let reason = unavailable_in_list(&server.http, "chat");
    eprintln!("a directory: {reason:?}");
    server.assert_no_panic();
    server.stop();
    std::fs::remove_dir(&file).unwrap();

    // Garbage again; the owner replaces the database: a publish without
    // `delete_data` is refused with 503, with it the database is created
    // anew and its schema.json names the new module.
    std::fs::write(&file, b"garbage").unwrap();
    let server = Server::start(dir.path());
    let http = http_for(&server, &token);
    assert!(unavailable_in_list(&server.http, "chat").is_some());
    let v2 = guest_wasm("chat-v2");
    let (status, text) = http
        .post("/v1/database/chat", "application/wasm", &v2)
        .unwrap();
    assert_eq!(
        status, 503,
        "a publish over an unavailable database: {text}"
    );
    let answer = http.post_ok(
        "/v1/database/chat?delete_data=true",
        "application/wasm",
        &v2,
    );
    assert_eq!(answer["outcome"], "replaced", "{answer}");
    assert_schema_file_matches_module(dir.path(), "chat");
    assert_eq!(messages(&http, "chat"), vec!["welcome".to_owned()]);
    server.stop();
    let server = Server::start(dir.path());
    server.assert_available("chat");
    assert_eq!(
        messages(&http_for(&server, &token), "chat"),
        vec!["welcome".to_owned()]
    );
    server.stop();
}

/// A first publish (creation) SIGKILLed before it answered. The outcome is
/// unknown, but the name must not be stuck and a database that exists must
/// have run its `init`.
#[test]
fn a_first_publish_killed_midway_leaves_a_server_that_starts() {
    let warm = TempDir::new("outsider-create-warm");
    {
        let server = Server::start(warm.path());
        publish_both(&server);
        server.stop();
    }
    let chat = guest_wasm("chat-v2"); // its `init` posts "welcome"
    // Kill the moment the database's staging directory (a publish builds
    // the database under `.creating-NAME` until its `init` committed), one
    // of its files, or the database's own directory appears, or a few
    // milliseconds after the request.
    let mut bugs = Vec::new();
    let watch: &[Option<&str>] = &[
        Some(".creating-chat"),
        Some(".creating-chat/module.wasm"),
        Some(".creating-chat/owner"),
        Some(".creating-chat/schema.json"),
        Some(".creating-chat/log"),
        Some("chat"),
        None,
    ];
    for (round, &file) in watch.iter().enumerate() {
        let dir = TempDir::new("outsider-create");
        copy_cache(warm.path(), dir.path());
        let server = Server::start(dir.path());
        let http = Http::new_identity(&server.http);
        let token = http.token().unwrap().to_owned();
        let publish = {
            let (base, token, chat) = (server.http.clone(), token.clone(), chat.clone());
            std::thread::spawn(move || {
                Http::new(&base, Some(&token))
                    .post("/v1/database/chat", "application/wasm", &chat)
                    .map(|(status, _)| status)
                    .ok()
            })
        };
        let path = dir.path().join("data/databases").join(file.unwrap_or(""));
        let deadline = Instant::now() + Duration::from_secs(5);
        match file {
            Some(_) => while Instant::now() < deadline && !path.exists() {},
            None => std::thread::sleep(Duration::from_millis(3)),
        }
        server.kill();
        let answered = publish.join().unwrap();
        let listing: Vec<String> = std::fs::read_dir(db_dir(dir.path(), "chat"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let server = Server::start(dir.path());
        let list = get_json(&server.http, "/v1/database");
        eprintln!(
            "round {round} (kill at {file:?}): publish answered {answered:?}; on disk {listing:?}; listed {list}"
        );
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "chat")
            .cloned();
        assert!(
            !dir.path().join("data/databases/.creating-chat").exists(),
            "the start removes what an interrupted publish left"
        );
        if entry.is_none() {
            // The publish did not complete: the name is free again.
            let again = http_for(&server, &token)
                .post("/v1/database/chat", "application/wasm", &chat)
                .unwrap();
            assert_eq!(again.0, 201, "publishing again: {again:?}");
            assert_eq!(
                messages(&http_for(&server, &token), "chat"),
                vec!["welcome".to_owned()]
            );
        }
        if let Some(200..=299) = answered {
            let entry = entry.as_ref().expect("an acknowledged publish was lost");
            assert!(entry.get("unavailable").is_none(), "{entry}");
        }
        if let Some(entry) = &entry
            && entry.get("unavailable").is_none()
        {
            assert_schema_file_matches_module(dir.path(), "chat");
            let http = http_for(&server, &token);
            let stored = messages(&http, "chat");
            eprintln!("round {round}: recovered messages {stored:?}");
            if stored != vec!["welcome".to_owned()] {
                bugs.push(format!(
                    "round {round}: the database came up without its init: {stored:?}"
                ));
            }
            http.call_ok("chat", "send_message", &json!(["hello"]));
        }
        if let Some(entry) = &entry
            && entry.get("unavailable").is_some()
        {
            // Whoever published it must be able to get the name back.
            let http = http_for(&server, &token);
            let replaced = http
                .post(
                    "/v1/database/chat?delete_data=true",
                    "application/wasm",
                    &chat,
                )
                .unwrap();
            eprintln!("round {round}: publish ?delete_data=true by the publisher: {replaced:?}");
            if !(200..300).contains(&replaced.0) {
                bugs.push(format!(
                    "round {round}: a first publish cut short by a crash leaves `chat` unavailable \
                     ({entry}) and its publisher cannot replace it: {replaced:?}"
                ));
            }
        }
        server.stop();
    }
    assert!(bugs.is_empty(), "{bugs:#?}");
}
