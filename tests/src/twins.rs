//! The scenarios the C++ and Python parity tests both run: the Rust build
//! and another language's build of one example, each with a database,
//! called alike and compared call for call, and the `prices` procedure
//! through a real server.

use worldline_client::ClientError;
use worldline_host::outbound::{AllowList, PrivateOverride};
use worldline_host::{
    CallContext, CallError, ConnectionId, Database, Engine, ScheduleClocks, Timestamp,
};

use crate::live::{LiveServer, Transport};
use crate::parity::{comparable_outcome as outcome, text_server};
use crate::{ALICE, BOB, OWNER, args};

/// The Rust and another language's build of one module, each with a database.
pub struct Twins {
    /// The Rust build's database.
    pub rust: Database,
    /// The other language's database.
    pub other: Database,
    /// The other language, as people write it (`C++`, `Python`).
    language: &'static str,
}

impl Twins {
    /// The module `name` from its Rust component and its `language` one.
    pub fn of(
        engine: &Engine,
        name: &str,
        rust: &[u8],
        other: &[u8],
        language: &'static str,
    ) -> Self {
        let create = |wasm: &[u8], which: &str| {
            Database::create(engine, wasm, OWNER)
                .unwrap_or_else(|e| panic!("creating a database from the {which} `{name}`: {e}"))
        };
        Self {
            rust: create(rust, "Rust"),
            other: create(other, language),
            language,
        }
    }

    /// Calls `reducer` on both; asserts the same outcome and returns it.
    pub fn call(
        &mut self,
        reducer: &str,
        arguments: &[u8],
        ctx: CallContext,
    ) -> Result<String, CallError> {
        let rust = outcome(self.rust.call_reducer(reducer, arguments, ctx));
        let other = outcome(self.other.call_reducer(reducer, arguments, ctx));
        assert_eq!(
            other, rust,
            "`{reducer}` behaved differently in {} (left) and Rust (right)",
            self.language
        );
        rust
    }

    /// Runs a lifecycle reducer on both; asserts the same outcome.
    pub fn lifecycle(&mut self, connected: bool, ctx: CallContext) {
        let run = |db: &mut Database| {
            let result = if connected {
                db.client_connected(ctx)
            } else {
                db.client_disconnected(ctx)
            };
            result.map(|o| o.map(|o| format!("{:?}", o.delta)))
        };
        let rust = run(&mut self.rust);
        let other = run(&mut self.other);
        assert_eq!(other, rust, "a lifecycle reducer behaved differently");
    }

    /// Asserts both hold the same rows in `table`, and returns how many.
    pub fn same_rows(&self, table: &str) -> usize {
        let sorted = |db: &Database, which: &str| {
            let mut rows: Vec<Vec<u8>> = db
                .rows(table)
                .unwrap_or_else(|e| panic!("{which} rows: {e}"))
                .iter()
                .map(|r| r.to_vec())
                .collect();
            rows.sort();
            rows
        };
        let rust = sorted(&self.rust, "Rust");
        let other = sorted(&self.other, self.language);
        assert_eq!(
            other, rust,
            "table `{table}` differs between {} (left) and Rust (right)",
            self.language
        );
        rust.len()
    }
}

/// The bank: transfers, every kind of failure (each rolled back), traps,
/// limits and refused arguments, alike in both.
pub fn bank_transfers_and_failures_match(bank: &mut Twins) {
    let ctx = CallContext::new(ALICE);
    bank.call("seed", &args(&(3u32, 100i64)), ctx)
        .expect("seed");
    assert_eq!(bank.same_rows("account"), 3);
    bank.call("transfer", &args(&(0u32, 2u32, 40i64)), ctx)
        .expect("transfer");
    bank.same_rows("account");
    for (arguments, expected) in [
        (args(&(0u32, 7u32, 10i64)), "no account 7"),
        (args(&(9u32, 1u32, 10i64)), "no account 9"),
        (
            args(&(0u32, 1u32, 1000i64)),
            "insufficient funds: account 0 has 60, needs 1000",
        ),
        (
            args(&(0u32, 1u32, 0i64)),
            "the amount must be positive, got 0",
        ),
        (
            args(&(1u32, 1u32, 5i64)),
            "cannot transfer from account 1 to the same account",
        ),
    ] {
        assert_eq!(
            bank.call("transfer", &arguments, ctx),
            Err(CallError::Failed(expected.into()))
        );
        bank.same_rows("account");
    }
    assert_eq!(
        bank.call("fail_after_write", &args(&(1u32,)), ctx),
        Err(CallError::Failed("failed on purpose after writing".into()))
    );
    assert_eq!(
        bank.call("panic_after_write", &args(&(1u32,)), ctx),
        Err(CallError::Panicked("boom".into()))
    );
    // A duplicate key traps with the datastore's message, rolling back the bump.
    match bank.call("insert_duplicate", &args(&(2u32,)), ctx) {
        Err(CallError::Panicked(message)) => {
            assert!(
                message.contains("unique") || message.contains("duplicate"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    bank.call("noop", &args(&()), ctx).expect("noop");
    bank.call("hog_memory", &args(&(4u32,)), ctx)
        .expect("4 MiB is within the cap");
    assert!(matches!(
        bank.call("hog_memory", &args(&(200u32,)), ctx),
        Err(CallError::OutOfMemory { .. })
    ));
    assert!(matches!(
        bank.call("spin", &args(&()), ctx),
        Err(CallError::DeadlineExceeded(_))
    ));
    // Bad arguments are refused before the module runs, the same way.
    for bad in [vec![1u8], args(&(0u32, 1u32, 5i64, 9u8))] {
        assert!(matches!(
            bank.call("transfer", &bad, ctx),
            Err(CallError::InvalidArguments { .. })
        ));
    }
    // Every failure above rolled back: 0 gave 40 to 2, nothing else moved.
    bank.call("transfer", &args(&(0u32, 1u32, 1i64)), ctx)
        .expect("the databases serve after every failure");
    assert_eq!(bank.same_rows("account"), 3);
    let balances: Vec<crate::Account> = crate::rows(&bank.other, "account");
    let mut balances: Vec<(u32, i64)> = balances.iter().map(|a| (a.id, a.balance)).collect();
    balances.sort();
    assert_eq!(balances, vec![(0, 59), (1, 101), (2, 140)]);
}

/// The chat: lifecycle reducers, names and messages, alike in both.
pub fn chat_lifecycle_names_and_messages_match(chat: &mut Twins) {
    let connection = CallContext::new(ALICE).with_connection(ConnectionId::from_bytes([7; 16]));
    chat.lifecycle(true, connection);
    assert_eq!(chat.same_rows("user"), 1);
    chat.lifecycle(false, connection);
    chat.same_rows("user");
    assert_eq!(
        chat.call("client_connected", &[], CallContext::new(BOB)),
        Err(CallError::LifecycleReducer("client_connected".into()))
    );
    for empty in ["", "   "] {
        assert_eq!(
            chat.call("set_name", &args(&(empty,)), CallContext::new(BOB)),
            Err(CallError::Failed("names must not be empty".into()))
        );
    }
    // U+001E and U+001F are not whitespace to Rust's `trim` (Python's
    // `str.strip()` strips them): kept in a name, and a message of one is
    // not empty.
    for (who, name) in [
        (ALICE, "  alice "),
        (ALICE, "Alice"),
        (BOB, "bob"),
        (BOB, "\u{1e}bob\u{1e}"),
    ] {
        chat.call("set_name", &args(&(name,)), CallContext::new(who))
            .expect("set_name");
    }
    assert_eq!(chat.same_rows("user"), 2);
    let at = Timestamp::from_micros_since_epoch(1_700_000_000_000_000);
    for (who, text) in [
        (ALICE, "hello"),
        (BOB, "hi alice"),
        (ALICE, "how are you?"),
        (BOB, "\u{1f}"),
    ] {
        let ctx = CallContext {
            timestamp: Some(at),
            ..CallContext::new(who)
        };
        chat.call("send_message", &args(&(text,)), ctx)
            .expect("send_message");
    }
    assert_eq!(
        chat.call("send_message", &args(&(" ",)), CallContext::new(BOB)),
        Err(CallError::Failed("messages must not be empty".into()))
    );
    assert_eq!(chat.same_rows("message"), 4);
    let ids: Vec<u64> = crate::rows::<crate::Message>(&chat.other, "message")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

/// The ticker's schedule fires alike in both.
pub fn ticker_ticks_on_its_schedule_like_the_rust_one(ticker: &mut Twins) {
    let later =
        Timestamp::from_micros_since_epoch(Timestamp::now().to_micros_since_epoch() + 1_500_000);
    for db in [&mut ticker.rust, &mut ticker.other] {
        let run = db
            .run_next_schedule(later, ScheduleClocks::same(later))
            .expect("the first tick is due");
        assert_eq!(run.reducer, "tick");
        assert_eq!(run.error, None);
        #[derive(serde::Deserialize)]
        struct Counter {
            id: u32,
            ticks: u64,
            last_tick: i64,
        }
        let counters: Vec<Counter> = crate::rows(db, "counter");
        assert_eq!(counters.len(), 1);
        assert_eq!(
            (counters[0].id, counters[0].ticks, counters[0].last_tick),
            (0, 1, later.to_micros_since_epoch())
        );
        assert!(
            db.run_next_schedule(later, ScheduleClocks::same(later))
                .is_none(),
            "one run per due row"
        );
    }
    // The repeating row stays (moved on from each database's own start time).
    assert_eq!(ticker.rust.rows("tick_schedule").unwrap().len(), 1);
    assert_eq!(ticker.other.rows("tick_schedule").unwrap().len(), 1);
}

/// The `prices` example that `build` returns, published on a real server
/// with a loopback web server allowed: its procedure fetches, stores and
/// updates a price, and a host not allowed is refused, as the Rust one does.
pub async fn prices_procedure_fetches_and_stores(build: impl FnOnce() -> Vec<u8>, language: &str) {
    #[derive(serde::Deserialize, Debug)]
    struct Price {
        symbol: String,
        cents: u64,
        fetched_at: i64,
    }

    let origin = text_server("97123.45\n").await;
    let live = LiveServer::start_with(&[], |config| {
        config.host.engine.http_private_override = PrivateOverride::new([origin]);
    })
    .await;
    let (owner, _) = live.server().new_identity();
    let allow = AllowList::parse(&origin.to_string()).expect("an allow-list");
    let wasm = tokio::task::block_in_place(build);
    tokio::task::block_in_place(|| {
        live.server()
            .publish_with_http("prices", &wasm, owner, &allow)
    })
    .unwrap_or_else(|e| panic!("publishing the {language} prices: {e}"));

    let client = live.connect(Transport::WebSocket, "prices").await;
    client
        .subscribe(&["SELECT * FROM price"])
        .await
        .expect("subscribing");
    let url = format!("http://{origin}/btc");
    for _ in 0..2 {
        // The second call updates the row the first inserted.
        let cents: u64 = client
            .call_procedure("refresh", &("BTC", url.as_str()))
            .await
            .expect("refresh");
        assert_eq!(cents, 9_712_345);
    }
    let prices: Vec<Price> = client.rows("price").expect("rows");
    assert_eq!(prices.len(), 1, "{prices:?}");
    assert_eq!(
        (prices[0].symbol.as_str(), prices[0].cents),
        ("BTC", 9_712_345)
    );
    assert!(prices[0].fetched_at > 0);

    match client
        .call_procedure::<_, u64>("refresh", &("ETH", "http://example.com/eth"))
        .await
    {
        Err(ClientError::ProcedureFailed(message)) => {
            assert!(
                message.starts_with("fetching http://example.com/eth: ")
                    && message.contains("not on this database's HTTP allow-list"),
                "{message}"
            )
        }
        other => panic!("example.com is not on the list: {other:?}"),
    }
    assert_eq!(client.rows::<Price>("price").expect("rows").len(), 1);
    live.shutdown().await;
}
