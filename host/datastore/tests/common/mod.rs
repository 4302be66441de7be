//! A test table shared by the datastore's integration tests:
//! `item(id: u32 auto-inc primary key, sku: string unique, owner: u32, rank: i32)`
//! with a btree index on `(owner, rank)`.

#![allow(dead_code)] // each test file uses its own part of this

pub mod arbitrary;

use worldline_datastore::{
    AlgebraicType, Cursor, Datastore, Field, IndexSchema, ProductType, TableSchema, Value,
    decode_product, decode_value, encode_value,
};

pub const ITEM: usize = 0;
pub const BY_ID: usize = 0;
pub const BY_SKU: usize = 1;
pub const BY_OWNER_RANK: usize = 2;

pub fn item_schema() -> TableSchema {
    let column = |name: &str, ty| Field {
        name: Some(name.into()),
        ty,
    };
    TableSchema {
        name: "item".into(),
        columns: ProductType {
            fields: vec![
                column("id", AlgebraicType::U32),
                column("sku", AlgebraicType::String),
                column("owner", AlgebraicType::U32),
                column("rank", AlgebraicType::I32),
            ],
        },
        primary_key: Some(BY_ID),
        indexes: vec![
            IndexSchema {
                name: "item_id".into(),
                columns: vec![0],
                unique: true,
            },
            IndexSchema {
                name: "item_sku".into(),
                columns: vec![1],
                unique: true,
            },
            IndexSchema {
                name: "item_owner_rank".into(),
                columns: vec![2, 3],
                unique: false,
            },
        ],
        auto_inc: vec![0],
        public: true,
    }
}

pub fn store() -> Datastore {
    Datastore::new(vec![item_schema()])
}

/// An item row as plain Rust values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Item {
    pub id: u32,
    pub sku: String,
    pub owner: u32,
    pub rank: i32,
}

impl Item {
    pub fn new(id: u32, sku: &str, owner: u32, rank: i32) -> Self {
        Self {
            id,
            sku: sku.into(),
            owner,
            rank,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for value in [
            Value::U32(self.id),
            Value::String(self.sku.as_str().into()),
            Value::U32(self.owner),
            Value::I32(self.rank),
        ] {
            encode_value(&value, &mut out);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Self {
        match decode_product(&item_schema().columns, bytes)
            .unwrap()
            .as_slice()
        {
            [
                Value::U32(id),
                Value::String(sku),
                Value::U32(owner),
                Value::I32(rank),
            ] => Self {
                id: *id,
                sku: sku.to_string(),
                owner: *owner,
                rank: *rank,
            },
            other => panic!("not an item: {other:?}"),
        }
    }
}

pub fn key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    values.iter().for_each(|v| encode_value(v, &mut out));
    out
}

/// The items in a cursor batch: encoded rows, one after another.
pub fn split_rows(mut bytes: &[u8]) -> Vec<Item> {
    let row_type = AlgebraicType::Product(item_schema().columns);
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let start = bytes;
        decode_value(&row_type, &mut bytes).expect("a batch holds whole rows");
        items.push(Item::decode(&start[..start.len() - bytes.len()]));
    }
    items
}

/// All rows a cursor yields, fetching `batch` rows at a time.
pub fn drain(store: &Datastore, mut cursor: Cursor, batch: usize) -> Vec<Item> {
    let mut rows = Vec::new();
    loop {
        let mut out = Vec::new();
        let count = store.next_batch(&mut cursor, batch, &mut out);
        if count == 0 {
            assert!(out.is_empty(), "an empty batch appended bytes");
            return rows;
        }
        assert!(count <= batch, "{count} rows in a batch of at most {batch}");
        let items = split_rows(&out);
        assert_eq!(items.len(), count, "batch count and bytes disagree");
        rows.extend(items);
    }
}
