//! Procedural macros of the Worldline Rust module SDK. Use them through the
//! `worldline` crate, which documents them: `#[table]`, `#[reducer]`,
//! `#[procedure]` and `#[derive(WorldlineType)]`.

use proc_macro::TokenStream;

mod procedure;
mod reducer;
mod signature;
mod table;
mod worldline_type;

/// Declares a table: `#[table(name = ident, public, index(name = ident, btree(columns = [a, b])), scheduled(reducer))]`
/// on a struct with named fields; field attributes `#[primary_key]`,
/// `#[unique]`, `#[auto_inc]`, `#[index(btree)]`, and in a scheduled table
/// `#[schedule_at]` (a `Timestamp` column: when a row is due) and
/// `#[schedule_interval]` (a `u64` column: repeat every so many
/// microseconds, 0 = once).
#[proc_macro_attribute]
pub fn table(attr: TokenStream, item: TokenStream) -> TokenStream {
    table::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a reducer: `#[reducer]`, or a lifecycle reducer with
/// `#[reducer(init)]`, `#[reducer(client_connected)]`, `#[reducer(client_disconnected)]`.
#[proc_macro_attribute]
pub fn reducer(attr: TokenStream, item: TokenStream) -> TokenStream {
    reducer::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a procedure: `#[procedure]` on
/// `fn name(ctx: &mut ProcedureContext, args...) -> T` or `-> Result<T, E>`.
#[proc_macro_attribute]
pub fn procedure(attr: TokenStream, item: TokenStream) -> TokenStream {
    procedure::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Describes a struct (a product) or an enum (a sum) to the host, so it can
/// be a column or an argument. Derive serde's `Serialize` and `Deserialize` too.
#[proc_macro_derive(WorldlineType)]
pub fn derive_worldline_type(item: TokenStream) -> TokenStream {
    worldline_type::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
