//! Procedures for the end-to-end tests of procedures, outbound HTTP and
//! explicit transactions, and a reducer that tries HTTP. Error kinds are
//! reported as their Rust names (`format!("{:?}", kind)`), e.g.
//! `NotAllowedHere`, `Denied`, `NoTransaction`.

use std::convert::Infallible;

use worldline::http::Request;
use worldline::{DbError, ProcedureContext, ReducerContext, Table, TxError, procedure, reducer};

use crate::{Item, item};

/// An item with only an id and a sku.
fn new_item(id: u32, sku: String) -> Item {
    Item {
        id,
        sku,
        owner: 0,
        rank: 0,
        price: 0,
    }
}

/// Returns its argument.
#[procedure]
pub fn echo_proc(_ctx: &mut ProcedureContext, text: String) -> String {
    text
}

/// Inserts item `id` (0 takes the next id) with sku `text` in a
/// transaction and returns how many items there are after it.
#[procedure]
pub fn proc_insert(ctx: &mut ProcedureContext, id: u32, text: String) -> Result<u32, String> {
    let count = ctx.with_tx(|tx| {
        tx.db.item().try_insert(new_item(id, text))?;
        Ok::<_, DbError>(tx.db.item().count())
    })?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// GETs `url`: `"{status} {body}"` (the body read as UTF-8, lossily), or
/// the error as `"{kind:?}: {message}"`.
#[procedure]
pub fn proc_fetch(ctx: &mut ProcedureContext, url: String) -> Result<String, String> {
    match ctx.http().get(url) {
        Ok(response) => Ok(format!(
            "{} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )),
        Err(e) => Err(format!("{:?}: {}", e.kind, e.message)),
    }
}

/// GETs `url` inside a transaction, which the host refuses: returns the
/// error's kind (`NotAllowedHere`), or `sent: {status}` if it went out.
#[procedure]
pub fn proc_fetch_in_tx(ctx: &mut ProcedureContext, url: String) -> Result<String, String> {
    let http = ctx.http();
    let outcome = ctx.with_tx(|_tx| Ok::<_, Infallible>(http.get(url)))?;
    Ok(match outcome {
        Ok(response) => format!("sent: {}", response.status),
        Err(e) => format!("{:?}", e.kind),
    })
}

/// Inserts item `id` (sku `rollback-{id}`) in a transaction whose body then
/// fails, so nothing stays; returns `aborted: {the body's error}`.
#[procedure]
pub fn proc_rollback(ctx: &mut ProcedureContext, id: u32) -> Result<String, String> {
    let outcome = ctx.with_tx(|tx| {
        tx.db.item().insert(new_item(id, format!("rollback-{id}")));
        Err::<Infallible, _>("rolled back on purpose")
    });
    match outcome {
        Ok(never) => match never {},
        Err(TxError::Aborted(reason)) => Ok(format!("aborted: {reason}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Inserts an item outside any transaction, through a table handle kept
/// from an earlier one: returns the error's kind (`NoTransaction`), or
/// `inserted` if the host let it through.
#[procedure]
pub fn proc_touch_outside_tx(ctx: &mut ProcedureContext) -> Result<String, String> {
    let db = ctx.with_tx(|tx| Ok::<_, Infallible>(tx.db))?;
    Ok(
        match db.item().try_insert(new_item(0, "outside-tx".into())) {
            Ok(_) => "inserted".into(),
            Err(e) => format!("{:?}", e.kind),
        },
    )
}

/// Inserts an item with sku `trap` in a transaction, then panics inside it:
/// the procedure traps and the host rolls the transaction back.
#[procedure]
pub fn proc_trap(ctx: &mut ProcedureContext) -> Result<(), String> {
    ctx.with_tx(|tx| -> Result<(), String> {
        tx.db.item().insert(new_item(0, "trap".into()));
        panic!("trapped inside a transaction on purpose")
    })?;
    Ok(())
}

/// Calls the raw `http.send` import from a reducer, which the host refuses:
/// fails with the error's kind (`NotAllowedHere`), or `sent: {status}` if it
/// went out.
#[reducer]
pub fn reducer_http(_ctx: &ReducerContext, url: String) -> Result<(), String> {
    match worldline::__private::raw_http_send(Request::get(url)) {
        Ok(response) => Err(format!("sent: {}", response.status)),
        Err(e) => Err(format!("{:?}", e.kind)),
    }
}
