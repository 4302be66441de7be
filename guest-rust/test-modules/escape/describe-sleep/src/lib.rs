//! A `worldline:module@0.2.0` component, bound with raw `wit-bindgen`,
//! whose `describe` blocks for a minute inside one host call (waiting on a
//! `wasi:clocks` pollable), where no wasm code runs to notice the deadline:
//! the host must still refuse it at its deadline.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../../wit",
        world: "module",
    });
}

use bindings::exports::worldline::module::guest::Guest;
use bindings::worldline::module::types::{ModuleDef, ProcedureContext, ReducerContext};

/// The component's export.
struct DescribeSleep;

impl Guest for DescribeSleep {
    fn describe() -> ModuleDef {
        std::thread::sleep(std::time::Duration::from_secs(60));
        ModuleDef {
            types: Vec::new(),
            tables: Vec::new(),
            reducers: Vec::new(),
            procedures: Vec::new(),
        }
    }

    fn call_reducer(id: u32, _ctx: ReducerContext, _args: Vec<u8>) -> Result<(), String> {
        Err(format!("no reducer {id}"))
    }

    fn call_procedure(id: u32, _ctx: ProcedureContext, _args: Vec<u8>) -> Result<Vec<u8>, String> {
        Err(format!("no procedure {id}"))
    }
}

bindings::export!(DescribeSleep with_types_in bindings);
