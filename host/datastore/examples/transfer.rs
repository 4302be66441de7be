//! Temporary timing harness (not part of the crate).
use std::time::Instant;
use worldline_datastore::*;

fn main() {
    let schema = TableSchema {
        name: "accounts".into(),
        columns: ProductType {
            fields: vec![
                Field {
                    name: Some("id".into()),
                    ty: AlgebraicType::U32,
                },
                Field {
                    name: Some("balance".into()),
                    ty: AlgebraicType::I64,
                },
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
    };
    let mut ds = Datastore::new(vec![schema]);
    let row = |id: u32, bal: i64| {
        let mut v = Vec::new();
        encode_value(&Value::U32(id), &mut v);
        encode_value(&Value::I64(bal), &mut v);
        v
    };
    ds.begin().unwrap();
    for i in 0..100_000u32 {
        ds.insert(0, &row(i, 1000)).unwrap();
    }
    ds.commit();
    let n = 200_000u32;
    let start = Instant::now();
    let mut x: u32 = 12345;
    for _ in 0..n {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        let a = (x >> 8) % 100_000;
        let b = (a + 7919) % 100_000;
        ds.begin().unwrap();
        let mut k = Vec::new();
        encode_value(&Value::U32(a), &mut k);
        let ra = ds.find(0, 0, &k).unwrap().unwrap();
        let mut k2 = Vec::new();
        encode_value(&Value::U32(b), &mut k2);
        let rb = ds.find(0, 0, &k2).unwrap().unwrap();
        let va = decode_product(&ds.tables()[0].columns, &ra).unwrap();
        let vb = decode_product(&ds.tables()[0].columns, &rb).unwrap();
        let (Value::I64(ba), Value::I64(bb)) = (&va[1], &vb[1]) else {
            panic!()
        };
        ds.update(0, 0, &row(a, ba - 1)).unwrap();
        ds.update(0, 0, &row(b, bb + 1)).unwrap();
        let d = ds.commit();
        assert_eq!(d.tables[0].inserts.len(), 2);
    }
    let el = start.elapsed();
    println!("{:.0} ns per transfer", el.as_nanos() as f64 / n as f64);
}
