//! A hostile `worldline:module@0.2.0` component, bound to the WIT with raw
//! `wit-bindgen` so that it can do what the SDK would never let it do. Every
//! reducer and procedure tries one way out of the sandbox and reports what
//! happened: a reducer as its `err` text, a procedure as its returned string.
//! The test suite (`tests/tests/sandbox_escape.rs`) asserts that the host
//! contained each attempt and kept serving.

mod args;
mod bindings;
mod cursors;
mod describe;
mod limits;
mod network;
mod sandbox;
mod transactions;

use bindings::exports::worldline::module::guest::Guest;
use bindings::worldline::module::types::{ModuleDef, ProcedureContext, ReducerContext};

use args::Args;

/// The component's export.
struct Escape;

impl Guest for Escape {
    fn describe() -> ModuleDef {
        describe::module()
    }

    fn call_reducer(id: u32, _ctx: ReducerContext, args: Vec<u8>) -> Result<(), String> {
        let mut args = Args::new(&args);
        let report = match id {
            describe::R_ADD => return transactions::add_note(&args.string()?),
            describe::R_READ_FILES => sandbox::read_files(),
            describe::R_ENV_ARGS => sandbox::env_and_args(),
            describe::R_READ_STDIN => sandbox::read_stdin(),
            describe::R_WRITE_STDOUT => sandbox::write_stdout(),
            describe::R_STDERR_THEN_TRAP => sandbox::stderr_then_trap(&args.string()?),
            describe::R_SOCKETS => sandbox::sockets(&args.string()?),
            describe::R_SPIN => limits::spin(),
            describe::R_GROW => limits::grow(),
            describe::R_HUGE_INSERT => limits::huge_insert(args.u32()?),
            describe::R_HUGE_LOG => limits::huge_log(args.u32()?),
            describe::R_MANY_CURSORS => limits::many_cursors(),
            describe::R_MANY_STREAMS => limits::many_streams(),
            describe::R_HTTP => network::fetch(&args.string()?, 0),
            describe::R_BEGIN => transactions::begin_in_reducer(),
            describe::R_STASH_CURSOR => cursors::stash(),
            describe::R_USE_STASHED_CURSOR => cursors::use_stashed(),
            describe::R_SLEEP => limits::sleep(args.u32()?),
            describe::R_EXIT => transactions::insert_then_exit(args.u32()?, false),
            describe::R_RECURSE => limits::recurse(0).to_string(),
            _ => format!("no reducer {id}"),
        };
        Err(report)
    }

    fn call_procedure(id: u32, _ctx: ProcedureContext, args: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut args = Args::new(&args);
        let report = match id {
            describe::P_SPIN => limits::spin(),
            describe::P_FETCH => {
                let url = args.string()?;
                network::fetch(&url, args.u32()?)
            }
            describe::P_TOUCH_OUTSIDE_TX => transactions::touch_outside(),
            describe::P_HOLD_TX => transactions::hold_open(),
            describe::P_SANDBOX => {
                let addr = args.string()?;
                [
                    sandbox::read_files(),
                    sandbox::env_and_args(),
                    sandbox::read_stdin(),
                    sandbox::sockets(&addr),
                ]
                .join("; ")
            }
            describe::P_ADD => transactions::add_in_transaction(&args.string()?),
            describe::P_GROW => limits::grow(),
            describe::P_STDERR_THEN_TRAP => sandbox::stderr_then_trap(&args.string()?),
            describe::P_TX_MISUSE => transactions::misuse(&args.string()?),
            // Not a string: 0xff starts a varint that never ends.
            describe::P_BAD_RETURN => return Ok(vec![0xff]),
            describe::P_CURSOR_PAST_COMMIT => cursors::past_commit(),
            describe::P_SLEEP => limits::sleep(args.u32()?),
            describe::P_EXIT => transactions::insert_then_exit(args.u32()?, true),
            _ => return Err(format!("no procedure {id}")),
        };
        Ok(args::encode_string(&report))
    }
}

bindings::export!(Escape with_types_in bindings);
