//! A `worldline:module@0.2.0` component, bound with raw `wit-bindgen`,
//! whose `describe` loops forever: the host must refuse it at publish,
//! naming the deadline, and the other databases must not notice.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../../wit",
        world: "module",
    });
}

use bindings::exports::worldline::module::guest::Guest;
use bindings::worldline::module::types::{ModuleDef, ProcedureContext, ReducerContext};

/// The component's export.
struct DescribeLoop;

impl Guest for DescribeLoop {
    fn describe() -> ModuleDef {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn call_reducer(id: u32, _ctx: ReducerContext, _args: Vec<u8>) -> Result<(), String> {
        Err(format!("no reducer {id}"))
    }

    fn call_procedure(id: u32, _ctx: ProcedureContext, _args: Vec<u8>) -> Result<Vec<u8>, String> {
        Err(format!("no procedure {id}"))
    }
}

bindings::export!(DescribeLoop with_types_in bindings);
