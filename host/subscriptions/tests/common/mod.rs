//! The schema, rows and query runner shared by the SQL tests.

#![allow(dead_code)] // each test file uses its own part of this

use worldline_datastore::{
    AlgebraicType, Datastore, Field, IndexSchema, ModuleSchema, ProductType, TableSchema, Value,
    decode_product, encode_value,
};
use worldline_subscriptions::{
    CompiledQuery, QueryError, QueryUpdate, SubscriptionEngine, compile,
};

/// `t(id: u32 pk, a: u32 indexed, b: i64, s: string)` and `u(id: u32 pk, t_id: u32 indexed)`.
pub fn schema() -> ModuleSchema {
    let column = |name: &str, ty| Field {
        name: Some(name.into()),
        ty,
    };
    let index = |name: &str, column: usize, unique: bool| IndexSchema {
        name: name.into(),
        columns: vec![column],
        unique,
    };
    let table = |name: &str, fields| TableSchema {
        name: name.into(),
        columns: ProductType { fields },
        primary_key: Some(0),
        indexes: vec![index("pk", 0, true), index("by_second", 1, false)],
        auto_inc: vec![],
        public: true,
    };
    ModuleSchema {
        tables: vec![
            table(
                "t",
                vec![
                    column("id", AlgebraicType::U32),
                    column("a", AlgebraicType::U32),
                    column("b", AlgebraicType::I64),
                    column("s", AlgebraicType::String),
                ],
            ),
            table(
                "u",
                vec![
                    column("id", AlgebraicType::U32),
                    column("t_id", AlgebraicType::U32),
                ],
            ),
        ],
        reducers: vec![],
        procedures: Vec::new(),
        schedules: Vec::new(),
    }
}

/// A row of `t`: its id is its position.
#[derive(Debug, Clone)]
pub struct Row {
    pub a: u32,
    pub b: i64,
    pub s: String,
}

/// A store holding `rows` in `t` and `u(id, t_id = id % 4)` for ids below `partners`.
pub fn store(rows: &[Row], partners: u32) -> Datastore {
    let mut store = Datastore::new(schema().tables);
    store.begin().unwrap();
    for (id, row) in (0u32..).zip(rows) {
        let mut bytes = Vec::new();
        for value in [
            Value::U32(id),
            Value::U32(row.a),
            Value::I64(row.b),
            Value::String(row.s.as_str().into()),
        ] {
            encode_value(&value, &mut bytes);
        }
        store.insert(0, &bytes).unwrap();
    }
    for id in 0..partners {
        let mut bytes = Vec::new();
        encode_value(&Value::U32(id), &mut bytes);
        encode_value(&Value::U32(id % 4), &mut bytes);
        store.insert(1, &bytes).unwrap();
    }
    store.commit();
    store
}

/// The ids of the rows of `t` that `sql` matches in `store`, sorted (with repeats for joins).
pub fn run(sql: &str, store: &Datastore) -> Result<Vec<u32>, QueryError> {
    Ok(matching_ids(compile(sql, &schema(), false)?, store))
}

/// The ids of the rows of `t` that `query` matches in `store`, sorted (with repeats for joins).
pub fn matching_ids(query: CompiledQuery, store: &Datastore) -> Vec<u32> {
    let mut engine = SubscriptionEngine::default();
    let id = engine.subscribe(query);
    let columns = &schema().tables[0].columns;
    let mut ids: Vec<u32> = engine
        .initial_rows(id, store)
        .iter()
        .map(|row| match decode_product(columns, row).unwrap()[0] {
            Value::U32(id) => id,
            _ => unreachable!(),
        })
        .collect();
    ids.sort_unstable();
    ids
}
/// Applies a query's update to a client's cache of its rows.
pub fn apply_update(cache: &mut Vec<worldline_datastore::Row>, update: &QueryUpdate) {
    for row in &update.deletes {
        let at = cache
            .iter()
            .position(|r| r == row)
            .expect("a deleted row was cached");
        cache.remove(at);
    }
    for (old, new) in &update.updates {
        let at = cache
            .iter()
            .position(|r| r == old)
            .expect("an updated row was cached");
        cache[at] = new.clone();
    }
    cache.extend(update.inserts.iter().cloned());
}
