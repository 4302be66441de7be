//! The module's exports: describing itself, running reducers and procedures.

use std::sync::Once;

use crate::bindings::exports::worldline::module::guest::Guest;
use crate::bindings::worldline::module::types as wit;
use crate::context::ReducerContext;
use crate::procedure::ProcedureContext;
use crate::registry;

struct Module;

impl Guest for Module {
    fn describe() -> wit::ModuleDef {
        report_panics_to_host();
        registry::describe()
    }

    fn call_reducer(id: u32, ctx: wit::ReducerContext, args: Vec<u8>) -> Result<(), String> {
        report_panics_to_host();
        let reducer = registry::reducer(id)
            .ok_or_else(|| format!("this module has no reducer with id {id}"))?;
        (reducer.invoke)(&ReducerContext::from_wit(ctx), &args)
    }

    fn call_procedure(
        id: u32,
        ctx: wit::ProcedureContext,
        args: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        report_panics_to_host();
        let procedure = registry::procedure(id)
            .ok_or_else(|| format!("this module has no procedure with id {id}"))?;
        (procedure.invoke)(&mut ProcedureContext::from_wit(ctx), &args)
    }
}

/// Sends every panic's message to the host's log before the trap, so the
/// caller learns why the reducer, procedure (or `describe`) failed.
fn report_panics_to_host() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload_as_str().unwrap_or("a panic without a message");
            let message = match info.location() {
                Some(at) => format!("{payload} (at {}:{})", at.file(), at.line()),
                None => payload.to_owned(),
            };
            crate::log::panic(&message);
        }))
    });
}

crate::bindings::export!(Module with_types_in crate::bindings);
