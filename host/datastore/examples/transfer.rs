//! Times the datastore side of the bank `transfer` reducer: two finds and
//! two updates by a u32 primary key on 100,000 `(id: u32, balance: i64)`
//! accounts, one transaction each, between random accounts.
//!
//! Run with `cargo run --release -p worldline-datastore --example transfer`.

use std::time::Instant;

use worldline_datastore::{
    AlgebraicType, Datastore, Field, IndexSchema, ProductType, TableSchema, Value, encode_value,
};

const ACCOUNTS: u32 = 100_000;
const TRANSFERS: u32 = 200_000;

fn accounts() -> TableSchema {
    let column = |name: &str, ty| Field {
        name: Some(name.into()),
        ty,
    };
    TableSchema {
        name: "accounts".into(),
        columns: ProductType {
            fields: vec![
                column("id", AlgebraicType::U32),
                column("balance", AlgebraicType::I64),
            ],
        },
        primary_key: Some(0),
        indexes: vec![IndexSchema {
            name: "accounts_id".into(),
            columns: vec![0],
            unique: true,
        }],
        auto_inc: vec![],
        public: true,
    }
}

fn encode(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    values.iter().for_each(|v| encode_value(v, &mut out));
    out
}

/// The balance of an encoded account row (a u32 varint, then a zigzag i64 varint).
fn balance(row: &[u8]) -> i64 {
    let mut rest = row;
    for ty in [AlgebraicType::U32, AlgebraicType::I64] {
        match worldline_datastore::decode_value(&ty, &mut rest) {
            Ok(Value::I64(balance)) => return balance,
            Ok(_) => {}
            Err(e) => panic!("not an account row: {e}"),
        }
    }
    unreachable!("an account row ends with its balance")
}

fn main() {
    let mut store = Datastore::new(vec![accounts()]);
    store.begin().expect("no transaction is open");
    for id in 0..ACCOUNTS {
        let row = encode(&[Value::U32(id), Value::I64(1_000)]);
        store.insert(0, &row).expect("ids are distinct");
    }
    store.commit();

    let mut seed: u32 = 12345;
    let mut pick = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 8) % ACCOUNTS
    };
    let start = Instant::now();
    for _ in 0..TRANSFERS {
        let (from, to) = (pick(), pick());
        if from == to {
            continue;
        }
        store.begin().expect("no transaction is open");
        let mut moved = 0;
        for (id, amount) in [(from, -1), (to, 1)] {
            let key = encode(&[Value::U32(id)]);
            let row = store.find(0, 0, &key).unwrap().expect("account exists");
            let updated = encode(&[Value::U32(id), Value::I64(balance(&row) + amount)]);
            store.update(0, 0, &updated).expect("the account is there");
            moved += 1;
        }
        let delta = store.commit();
        assert_eq!(delta.tables[0].inserts.len(), moved);
    }
    let elapsed = start.elapsed();
    println!(
        "{:.0} ns per transfer ({TRANSFERS} transfers over {ACCOUNTS} accounts)",
        elapsed.as_nanos() as f64 / f64::from(TRANSFERS)
    );
}
