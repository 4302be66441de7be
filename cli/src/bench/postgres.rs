//! The PostgreSQL baseline of `bench transfer`: the same transfer as a
//! stored function on a PostgreSQL server, over as many connections as
//! Worldline's run with as many calls in flight on each (pipelined).
//!
//! It creates a scratch database on the server at `--postgres-url` (the
//! role needs `CREATEDB`), seeds it, measures, checks the balance sum and
//! drops the database again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, Config, NoTls};

use super::baseline::BaselineResult;
use super::stats::{Recorder, Window};
use super::zipf::Zipf;

/// The transfer, locking both accounts in id order so that concurrent
/// transfers never deadlock; false when `src` lacks the funds.
const SCHEMA: &str = "
CREATE TABLE account (id integer PRIMARY KEY, balance bigint NOT NULL);
CREATE FUNCTION transfer(src integer, dst integer, amount bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    source bigint;
BEGIN
    PERFORM 1 FROM account WHERE id IN (src, dst) ORDER BY id FOR UPDATE;
    SELECT balance INTO source FROM account WHERE id = src;
    IF NOT FOUND THEN RAISE EXCEPTION 'no account %', src; END IF;
    IF source < amount THEN RETURN false; END IF;
    UPDATE account SET balance = balance - amount WHERE id = src;
    UPDATE account SET balance = balance + amount WHERE id = dst;
    IF NOT FOUND THEN RAISE EXCEPTION 'no account %', dst; END IF;
    RETURN true;
END $$;
";

/// The shape of one run: the load and the accounts.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// How many accounts to seed.
    pub accounts: u32,
    /// Each account's opening balance.
    pub balance: i64,
    /// Zipf exponent of the account choice.
    pub alpha: f64,
    /// Client connections.
    pub connections: usize,
    /// Calls in flight on each connection.
    pub in_flight: usize,
    /// Load before measuring.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// Parses `--postgres-url`.
pub fn parse_url(url: &str) -> anyhow::Result<Config> {
    url.parse()
        .with_context(|| format!("--postgres-url {url:?} is not a PostgreSQL connection string"))
}

/// Runs the transfers on the server at `config` once per
/// `synchronous_commit` setting (`on`: the commit waits for its WAL fsync;
/// `off`: it is acknowledged before), each on a fresh scratch database.
pub fn run(config: &Config, load: Load) -> anyhow::Result<Vec<BaselineResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let admin = connect(config).await?;
        let scratch = format!("worldline_bench_{}", std::process::id());
        let mut results = Vec::new();
        for synchronous_commit in ["on", "off"] {
            eprintln!("PostgreSQL synchronous_commit={synchronous_commit}: running...");
            for statement in ["DROP DATABASE IF EXISTS", "CREATE DATABASE"] {
                admin
                    .batch_execute(&format!("{statement} {scratch}"))
                    .await
                    .context("creating a scratch database (the role needs CREATEDB)")?;
            }
            let mut scratch_config = config.clone();
            scratch_config.dbname(&scratch);
            let measured = measure(&scratch_config, synchronous_commit, load).await;
            // Dropped whatever the run's outcome.
            let dropped = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))
                .await;
            let result = measured?;
            dropped.context("dropping the scratch database")?;
            results.push(result);
        }
        Ok(results)
    })
}

async fn connect(config: &Config) -> anyhow::Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .context("connecting to PostgreSQL (see --postgres-url)")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

async fn measure(
    config: &Config,
    synchronous_commit: &str,
    load: Load,
) -> anyhow::Result<BaselineResult> {
    let setup = connect(config).await?;
    setup
        .batch_execute(SCHEMA)
        .await
        .context("creating the bank")?;
    setup
        .execute(
            "INSERT INTO account SELECT g, $2 FROM generate_series(0, $1 - 1) AS g",
            &[&i32::try_from(load.accounts)?, &load.balance],
        )
        .await
        .context("seeding the accounts")?;
    setup.batch_execute("ANALYZE account").await?;
    let sum_before = balance_sum(&setup).await?;
    let zipf = Arc::new(Zipf::new(load.accounts, load.alpha));
    let window = Window::after(load.warmup, load.duration);
    let mut workers = Vec::new();
    for connection in 0..load.connections {
        let client = Arc::new(connect(config).await?);
        client
            .batch_execute(&format!("SET synchronous_commit = {synchronous_commit}"))
            .await?;
        let statement = client.prepare("SELECT transfer($1, $2, 1)").await?;
        for slot in 0..load.in_flight {
            let (client, statement, zipf) = (client.clone(), statement.clone(), zipf.clone());
            let seed = (connection * load.in_flight + slot) as u64;
            workers.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut recorder = Recorder::default();
                let mut refused = 0u64;
                while Instant::now() < window.closes() {
                    let (from, to) = zipf.pair(&mut rng);
                    let (from, to) = (i32::try_from(from)?, i32::try_from(to)?);
                    let started = Instant::now();
                    let row = client.query_one(&statement, &[&from, &to]).await?;
                    if row.get::<_, bool>(0) {
                        recorder.record(&window, started, Instant::now());
                    } else {
                        refused += 1;
                    }
                }
                anyhow::Ok((recorder, refused))
            }));
        }
    }
    let mut recorder = Recorder::default();
    let mut refused = 0;
    for worker in workers {
        let (theirs, their_refused) = worker.await.context("a worker stopped")??;
        recorder.merge(theirs);
        refused += their_refused;
    }
    let balance_unchanged = balance_sum(&setup).await? == sum_before;
    Ok(BaselineResult {
        system: format!("postgres synchronous_commit={synchronous_commit}"),
        summary: recorder.summary(&window),
        refused,
        balance_unchanged,
    })
}

async fn balance_sum(client: &Client) -> anyhow::Result<i64> {
    let row = client
        .query_one("SELECT COALESCE(SUM(balance), 0)::bigint FROM account", &[])
        .await?;
    Ok(row.get(0))
}
