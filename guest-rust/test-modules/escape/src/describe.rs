//! The module's description, written out by hand: one table (`note`) and
//! the reducers and procedures of the escape attempts, in id order.

use crate::bindings::worldline::module::types::{
    Field, IndexDef, IndexKind, ModuleDef, ProcedureDef, ReducerDef, TableDef, TypeNode,
};

/// Type arena positions.
const T_U32: u32 = 0;
const T_STRING: u32 = 1;
const T_NOTE: u32 = 2;

/// The `note` table's id.
pub const NOTE: u32 = 0;

/// Reducer ids: positions in `reducers`.
pub const R_ADD: u32 = 0;
pub const R_READ_FILES: u32 = 1;
pub const R_ENV_ARGS: u32 = 2;
pub const R_READ_STDIN: u32 = 3;
pub const R_WRITE_STDOUT: u32 = 4;
pub const R_STDERR_THEN_TRAP: u32 = 5;
pub const R_SOCKETS: u32 = 6;
pub const R_SPIN: u32 = 7;
pub const R_GROW: u32 = 8;
pub const R_HUGE_INSERT: u32 = 9;
pub const R_HUGE_LOG: u32 = 10;
pub const R_MANY_CURSORS: u32 = 11;
pub const R_MANY_STREAMS: u32 = 12;
pub const R_HTTP: u32 = 13;
pub const R_BEGIN: u32 = 14;
pub const R_STASH_CURSOR: u32 = 15;
pub const R_USE_STASHED_CURSOR: u32 = 16;
pub const R_SLEEP: u32 = 17;
pub const R_EXIT: u32 = 18;
pub const R_RECURSE: u32 = 19;

/// Procedure ids: positions in `procedures`.
pub const P_SPIN: u32 = 0;
pub const P_FETCH: u32 = 1;
pub const P_TOUCH_OUTSIDE_TX: u32 = 2;
pub const P_HOLD_TX: u32 = 3;
pub const P_SANDBOX: u32 = 4;
pub const P_ADD: u32 = 5;
pub const P_GROW: u32 = 6;
pub const P_STDERR_THEN_TRAP: u32 = 7;
pub const P_TX_MISUSE: u32 = 8;
pub const P_BAD_RETURN: u32 = 9;
pub const P_CURSOR_PAST_COMMIT: u32 = 10;
pub const P_SLEEP: u32 = 11;
pub const P_EXIT: u32 = 12;

/// Named parameters and their types.
type Params = &'static [(&'static str, u32)];

/// Reducers in id order, with their parameter types.
const REDUCERS: &[(&str, Params)] = &[
    ("add", &[("text", T_STRING)]),
    ("read_files", &[]),
    ("env_args", &[]),
    ("read_stdin", &[]),
    ("write_stdout", &[]),
    ("stderr_then_trap", &[("marker", T_STRING)]),
    ("sockets", &[("addr", T_STRING)]),
    ("spin", &[]),
    ("grow", &[]),
    ("huge_insert", &[("mib", T_U32)]),
    ("huge_log", &[("mib", T_U32)]),
    ("many_cursors", &[]),
    ("many_streams", &[]),
    ("reducer_http", &[("url", T_STRING)]),
    ("reducer_begin", &[]),
    ("stash_cursor", &[]),
    ("use_stashed_cursor", &[]),
    ("sleep", &[("ms", T_U32)]),
    ("exit", &[("code", T_U32)]),
    ("recurse", &[]),
];

/// Procedures in id order: parameters and return type.
const PROCEDURES: &[(&str, Params, u32)] = &[
    ("proc_spin", &[], T_STRING),
    (
        "fetch",
        &[("url", T_STRING), ("timeout_ms", T_U32)],
        T_STRING,
    ),
    ("touch_outside_tx", &[], T_STRING),
    ("hold_tx", &[], T_STRING),
    ("proc_sandbox", &[("addr", T_STRING)], T_STRING),
    ("proc_add", &[("text", T_STRING)], T_STRING),
    ("proc_grow", &[], T_STRING),
    ("proc_stderr_then_trap", &[("marker", T_STRING)], T_STRING),
    ("tx_misuse", &[("url", T_STRING)], T_STRING),
    ("bad_return", &[], T_STRING),
    ("cursor_past_commit", &[], T_STRING),
    ("proc_sleep", &[("ms", T_U32)], T_STRING),
    ("proc_exit", &[("code", T_U32)], T_STRING),
];

fn fields(params: &[(&str, u32)]) -> Vec<Field> {
    params
        .iter()
        .map(|&(name, ty)| Field {
            name: Some(name.to_owned()),
            ty,
        })
        .collect()
}

/// Everything the host needs to know about this module.
pub fn module() -> ModuleDef {
    ModuleDef {
        types: vec![
            TypeNode::U32,
            TypeNode::String,
            TypeNode::Product(fields(&[("id", T_U32), ("text", T_STRING)])),
        ],
        tables: vec![TableDef {
            name: "note".to_owned(),
            row_type: T_NOTE,
            primary_key: Some(0),
            indexes: vec![IndexDef {
                name: "note_id".to_owned(),
                columns: vec![0],
                kind: IndexKind::Unique,
            }],
            auto_inc: Vec::new(),
            public: true,
            schedule: None,
        }],
        reducers: REDUCERS
            .iter()
            .map(|&(name, params)| ReducerDef {
                name: name.to_owned(),
                params: fields(params),
                lifecycle: None,
            })
            .collect(),
        procedures: PROCEDURES
            .iter()
            .map(|&(name, params, returns)| ProcedureDef {
                name: name.to_owned(),
                params: fields(params),
                returns,
            })
            .collect(),
    }
}
