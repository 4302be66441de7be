//! A module of the frozen `worldline:module@0.1.0` world, bound with raw
//! `wit-bindgen`: one table `entry` (`id: u32` primary key, `text: string`),
//! a reducer `put(id, text)` inserting into it, and a reducer `fail(reason)`
//! that inserts and then fails, so that nothing it wrote stays.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/0.1.0/worldline.wit",
        world: "module",
    });
}

use bindings::exports::worldline::module::guest::Guest;
use bindings::worldline::module::datastore;
use bindings::worldline::module::types::{
    Field, IndexDef, IndexKind, ModuleDef, ReducerContext, ReducerDef, TableDef, TypeNode,
};

/// The `entry` table's id.
const ENTRY: u32 = 0;

/// The component's export.
struct Legacy;

fn field(name: &str, ty: u32) -> Field {
    Field {
        name: Some(name.to_owned()),
        ty,
    }
}

/// Splits a postcard varint off the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("arguments end inside a varint")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint longer than ten bytes".to_owned())
}

/// Splits a postcard string off the front of `bytes`.
fn string(bytes: &mut &[u8]) -> Result<String, String> {
    let len = usize::try_from(varint(bytes)?).map_err(|e| e.to_string())?;
    if len > bytes.len() {
        return Err("arguments end inside a string".to_owned());
    }
    let (text, rest) = bytes.split_at(len);
    *bytes = rest;
    String::from_utf8(text.to_vec()).map_err(|e| e.to_string())
}

/// The postcard bytes of an `entry` row.
fn entry(id: u8, text: &str) -> Vec<u8> {
    let mut row = vec![id];
    let mut len = text.len() as u64;
    while len >= 0x80 {
        row.push((len as u8) | 0x80);
        len >>= 7;
    }
    row.push(len as u8);
    row.extend_from_slice(text.as_bytes());
    row
}

impl Guest for Legacy {
    fn describe() -> ModuleDef {
        ModuleDef {
            types: vec![
                TypeNode::U32,
                TypeNode::String,
                TypeNode::Product(vec![field("id", 0), field("text", 1)]),
            ],
            tables: vec![TableDef {
                name: "entry".to_owned(),
                row_type: 2,
                primary_key: Some(0),
                indexes: vec![IndexDef {
                    name: "entry_id".to_owned(),
                    columns: vec![0],
                    kind: IndexKind::Unique,
                }],
                auto_inc: Vec::new(),
                public: true,
            }],
            reducers: vec![
                ReducerDef {
                    name: "put".to_owned(),
                    params: vec![field("id", 0), field("text", 1)],
                    lifecycle: None,
                },
                ReducerDef {
                    name: "fail".to_owned(),
                    params: vec![field("reason", 1)],
                    lifecycle: None,
                },
            ],
        }
    }

    fn call_reducer(id: u32, _ctx: ReducerContext, args: Vec<u8>) -> Result<(), String> {
        let mut rest = args.as_slice();
        match id {
            // put(id, text): the arguments are exactly the row's bytes.
            0 => datastore::insert(ENTRY, &args)
                .map(drop)
                .map_err(|e| format!("{:?}: {}", e.kind, e.message)),
            // fail(reason): writes a row, then fails, so the row rolls back.
            1 => {
                let reason = string(&mut rest)?;
                datastore::insert(ENTRY, &entry(0x7f, &reason))
                    .map_err(|e| format!("{:?}", e.kind))?;
                Err(format!("failed on purpose: {reason}"))
            }
            _ => Err(format!("no reducer {id}")),
        }
    }
}

bindings::export!(Legacy with_types_in bindings);
