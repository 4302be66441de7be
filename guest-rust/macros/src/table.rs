//! `#[table]`: declares a table, its indexes and its handle `ctx.db.<name>()`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Fields, Ident, ItemStruct, Type};

use crate::worldline_type::describe_fields;

/// A table-level `index(name = .., btree(columns = [..]))`.
struct NamedIndex {
    name: Ident,
    columns: Vec<Ident>,
}

/// A table-level `scheduled(reducer)`.
struct Scheduled {
    /// The `scheduled` keyword, for errors about the table as a schedule.
    keyword: syn::Path,
    /// The reducer each row runs.
    reducer: syn::Path,
}

#[derive(Default)]
struct TableArgs {
    name: Option<Ident>,
    public: bool,
    indexes: Vec<NamedIndex>,
    scheduled: Option<Scheduled>,
}

/// One index as the table declares it to the host, with its accessor.
struct IndexSpec {
    name: String,
    accessor: Ident,
    columns: Vec<usize>,
    unique: bool,
    key: TokenStream,
    prefix: TokenStream,
}

fn parse_args(attr: TokenStream) -> syn::Result<TableArgs> {
    let mut args = TableArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            args.name = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("public") {
            args.public = true;
        } else if meta.path.is_ident("index") {
            args.indexes.push(parse_named_index(&meta)?);
        } else if meta.path.is_ident("scheduled") {
            if args.scheduled.is_some() {
                return Err(meta.error("`scheduled` is given twice"));
            }
            args.scheduled = Some(parse_scheduled(&meta)?);
        } else {
            return Err(
                meta.error("expected `name = ...`, `public`, `index(...)` or `scheduled(reducer)`")
            );
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(args)
}

fn parse_named_index(meta: &ParseNestedMeta) -> syn::Result<NamedIndex> {
    let mut name = None;
    let mut columns = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            name = Some(inner.value()?.parse::<Ident>()?);
        } else if inner.path.is_ident("btree") {
            inner.parse_nested_meta(|btree| {
                if !btree.path.is_ident("columns") {
                    return Err(btree.error("expected `columns = [..]`"));
                }
                let list: syn::ExprArray = btree.value()?.parse()?;
                let idents = list
                    .elems
                    .iter()
                    .map(|e| match e {
                        syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                            Ok(p.path.get_ident().unwrap().clone())
                        }
                        other => Err(syn::Error::new_spanned(other, "expected a column name")),
                    })
                    .collect::<syn::Result<Vec<_>>>()?;
                columns = Some(idents);
                Ok(())
            })?;
        } else {
            return Err(inner.error("expected `name = ...` or `btree(columns = [..])`"));
        }
        Ok(())
    })?;
    match (name, columns) {
        (Some(name), Some(columns)) if !columns.is_empty() => Ok(NamedIndex { name, columns }),
        _ => {
            Err(meta
                .error("an index needs `name = ...` and `btree(columns = [at least one column])`"))
        }
    }
}

fn parse_scheduled(meta: &ParseNestedMeta) -> syn::Result<Scheduled> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error("expected `scheduled(reducer)`, naming the reducer each row runs"));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let reducer: syn::Path = content.parse()?;
    if !content.is_empty() {
        return Err(content.error("expected only the reducer's name, e.g. `scheduled(tick)`"));
    }
    Ok(Scheduled {
        keyword: meta.path.clone(),
        reducer,
    })
}

/// The column attributes of one field.
#[derive(Default)]
struct ColumnFlags {
    primary_key: bool,
    unique: bool,
    auto_inc: bool,
    btree: bool,
    /// `#[schedule_at]`, kept for the span of errors about it.
    schedule_at: Option<syn::Attribute>,
    /// `#[schedule_interval]`, kept for the span of errors about it.
    schedule_interval: Option<syn::Attribute>,
}

/// The attributes `#[table]` reads from fields.
const COLUMN_ATTRIBUTES: [&str; 6] = [
    "primary_key",
    "unique",
    "auto_inc",
    "index",
    "schedule_at",
    "schedule_interval",
];

/// Refuses column attributes written on the struct itself.
fn check_struct_attributes(item: &ItemStruct) -> syn::Result<()> {
    match item
        .attrs
        .iter()
        .find(|a| COLUMN_ATTRIBUTES.iter().any(|name| a.path().is_ident(name)))
    {
        Some(attr) => Err(syn::Error::new_spanned(
            attr,
            "this attribute marks a column: put it on a field of the struct",
        )),
        None => Ok(()),
    }
}

fn take_column_flags(attrs: &mut Vec<syn::Attribute>) -> syn::Result<ColumnFlags> {
    let mut flags = ColumnFlags::default();
    let mut kept = Vec::new();
    for attr in attrs.drain(..) {
        let path = attr.path();
        if path.is_ident("primary_key") {
            flags.primary_key = true;
        } else if path.is_ident("unique") {
            flags.unique = true;
        } else if path.is_ident("auto_inc") {
            flags.auto_inc = true;
        } else if path.is_ident("schedule_at") || path.is_ident("schedule_interval") {
            attr.meta.require_path_only()?;
            let slot = if path.is_ident("schedule_at") {
                &mut flags.schedule_at
            } else {
                &mut flags.schedule_interval
            };
            if slot.is_some() {
                return Err(syn::Error::new_spanned(
                    attr,
                    "this attribute is given twice",
                ));
            }
            *slot = Some(attr);
        } else if path.is_ident("index") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("btree") {
                    flags.btree = true;
                    Ok(())
                } else {
                    Err(meta.error("expected `#[index(btree)]`"))
                }
            })?;
        } else {
            kept.push(attr);
        }
    }
    *attrs = kept;
    Ok(flags)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(attr)?;
    let mut item: ItemStruct = syn::parse2(item)?;
    check_struct_attributes(&item)?;
    let Some(table_name) = args.name.clone() else {
        return Err(syn::Error::new_spanned(
            &item.ident,
            "a table needs `name = ...`",
        ));
    };
    let Fields::Named(fields) = &mut item.fields else {
        return Err(syn::Error::new_spanned(
            &item.ident,
            "a table must be a struct with named fields",
        ));
    };

    let mut indexes = Vec::new();
    let mut primary_key = None;
    let mut auto_inc = Vec::new();
    let mut columns: Vec<(Ident, Type)> = Vec::new();
    let mut schedule = ScheduleColumns::default();
    for (position, field) in fields.named.iter_mut().enumerate() {
        let flags = take_column_flags(&mut field.attrs)?;
        let ident = field.ident.clone().expect("named field");
        let ty = field.ty.clone();
        schedule.add(&flags, position, &ty, args.scheduled.as_ref())?;
        if flags.primary_key {
            if primary_key.is_some() {
                return Err(syn::Error::new_spanned(
                    &ident,
                    "a table has at most one #[primary_key]",
                ));
            }
            primary_key = Some(indexes.len());
        }
        if flags.primary_key || flags.unique {
            let suffix = if flags.primary_key { "pk" } else { "key" };
            indexes.push(IndexSpec {
                name: format!("{table_name}_{ident}_{suffix}"),
                accessor: ident.clone(),
                columns: vec![position],
                unique: true,
                key: quote!(#ty),
                prefix: quote!(#ty),
            });
        }
        if flags.btree {
            if flags.primary_key || flags.unique {
                return Err(syn::Error::new_spanned(
                    &ident,
                    "a unique column is already indexed; drop #[index(btree)]",
                ));
            }
            indexes.push(IndexSpec {
                name: format!("{table_name}_{ident}_idx"),
                accessor: ident.clone(),
                columns: vec![position],
                unique: false,
                key: quote!(#ty),
                prefix: quote!(#ty),
            });
        }
        if flags.auto_inc {
            auto_inc.push(position);
        }
        columns.push((ident, ty));
    }
    for named in &args.indexes {
        let mut positions = Vec::new();
        let mut types = Vec::new();
        for column in &named.columns {
            let Some(position) = columns.iter().position(|(ident, _)| ident == column) else {
                return Err(syn::Error::new_spanned(
                    column,
                    format!("no column named `{column}`"),
                ));
            };
            positions.push(position);
            types.push(columns[position].1.clone());
        }
        let first = &types[0];
        let key = if types.len() == 1 {
            quote!(#first)
        } else {
            quote!((#(#types),*))
        };
        indexes.push(IndexSpec {
            name: named.name.to_string(),
            accessor: named.name.clone(),
            columns: positions,
            unique: false,
            key,
            prefix: quote!(#first),
        });
    }

    let schedule_def = match &args.scheduled {
        Some(scheduled) => schedule.def(scheduled, primary_key.is_some())?,
        None => quote!(::core::option::Option::None),
    };
    let schedule_checks = match &args.scheduled {
        Some(scheduled) => schedule.checks(scheduled, &item.ident),
        None => TokenStream::new(),
    };

    let struct_name = &item.ident;
    let vis = &item.vis;
    let handle = format_ident!("{}Handle", struct_name);
    let table_string = table_name.to_string();
    let describe_row = describe_fields(&item.fields);
    let public = args.public;
    let primary_key = match primary_key {
        Some(position) => {
            let position = position as u32;
            quote!(::core::option::Option::Some(#position))
        }
        None => quote!(::core::option::Option::None),
    };
    let auto_inc = auto_inc.iter().map(|&p| p as u32);
    let index_defs = indexes.iter().map(|index| {
        let name = &index.name;
        let columns = index.columns.iter().map(|&c| c as u32);
        let kind = if index.unique {
            quote!(Unique)
        } else {
            quote!(Btree)
        };
        quote! {
            ::worldline::__private::IndexDef {
                name: ::std::string::String::from(#name),
                columns: ::std::vec![#(#columns),*],
                kind: ::worldline::__private::IndexKind::#kind,
            }
        }
    });
    let accessors = indexes.iter().enumerate().map(|(id, index)| {
        let id = id as u32;
        let accessor = &index.accessor;
        let key = &index.key;
        let prefix = &index.prefix;
        let doc = format!("The index `{}`.", index.name);
        if index.unique {
            quote! {
                #[doc = #doc]
                #vis fn #accessor(&self) -> ::worldline::UniqueIndex<#struct_name, #key> {
                    ::worldline::UniqueIndex::new(#id)
                }
            }
        } else {
            quote! {
                #[doc = #doc]
                #vis fn #accessor(&self) -> ::worldline::BtreeIndex<#struct_name, #key, #prefix> {
                    ::worldline::BtreeIndex::new(#id)
                }
            }
        }
    });
    let handle_doc = format!("The `{table_string}` table: `ctx.db.{table_string}()`.");
    let trait_doc = format!("Reaches the `{table_string}` table from `ctx.db`.");

    Ok(quote! {
        #[derive(::worldline::__private::serde::Serialize, ::worldline::__private::serde::Deserialize)]
        #[serde(crate = "::worldline::__private::serde")]
        #item

        impl ::worldline::WorldlineType for #struct_name {
            fn describe(types: &mut ::worldline::TypeBuilder) -> u32 #describe_row
        }

        impl ::worldline::__private::TableRow for #struct_name {
            const TABLE_NAME: &'static str = #table_string;
        }

        #[doc = #handle_doc]
        #vis struct #handle {
            _private: (),
        }

        impl ::worldline::Table for #handle {
            type Row = #struct_name;
        }

        impl #handle {
            #(#accessors)*
        }

        #[doc = #trait_doc]
        #[allow(non_camel_case_types)]
        #vis trait #table_name {
            #[doc = #handle_doc]
            fn #table_name(&self) -> #handle;
        }

        impl #table_name for ::worldline::Local {
            fn #table_name(&self) -> #handle {
                #handle { _private: () }
            }
        }

        const _: () = {
            fn describe(types: &mut ::worldline::TypeBuilder) -> ::worldline::__private::TableDef {
                ::worldline::__private::TableDef {
                    name: ::std::string::String::from(#table_string),
                    row_type: <#struct_name as ::worldline::WorldlineType>::describe(types),
                    primary_key: #primary_key,
                    indexes: ::std::vec![#(#index_defs),*],
                    auto_inc: ::std::vec![#(#auto_inc),*],
                    public: #public,
                    schedule: #schedule_def,
                }
            }
            ::worldline::__private::inventory::submit! {
                ::worldline::__private::TableEntry { name: #table_string, describe }
            }
        };

        #schedule_checks
    })
}

/// The `#[schedule_at]` and `#[schedule_interval]` columns of a table.
#[derive(Default)]
struct ScheduleColumns {
    at: Option<(usize, Type)>,
    interval: Option<(usize, Type)>,
}

impl ScheduleColumns {
    /// Takes note of one column's schedule attributes, refusing them outside
    /// a scheduled table, twice in one table, or both on one column.
    fn add(
        &mut self,
        flags: &ColumnFlags,
        position: usize,
        ty: &Type,
        scheduled: Option<&Scheduled>,
    ) -> syn::Result<()> {
        if let (Some(_), Some(interval)) = (&flags.schedule_at, &flags.schedule_interval) {
            return Err(syn::Error::new_spanned(
                interval,
                "#[schedule_at] and #[schedule_interval] go on two different columns",
            ));
        }
        let found = [
            (&flags.schedule_at, &mut self.at, "schedule_at"),
            (
                &flags.schedule_interval,
                &mut self.interval,
                "schedule_interval",
            ),
        ];
        for (attr, slot, name) in found {
            let Some(attr) = attr else { continue };
            if scheduled.is_none() {
                return Err(syn::Error::new_spanned(
                    attr,
                    format!(
                        "#[{name}] marks a column of a scheduled table: add `scheduled(reducer)` to #[table(...)]"
                    ),
                ));
            }
            if slot.is_some() {
                return Err(syn::Error::new_spanned(
                    attr,
                    format!("a scheduled table has one #[{name}] column"),
                ));
            }
            *slot = Some((position, ty.clone()));
        }
        Ok(())
    }

    /// The table's `schedule-def`.
    fn def(&self, scheduled: &Scheduled, has_primary_key: bool) -> syn::Result<TokenStream> {
        let Some((at, _)) = &self.at else {
            return Err(syn::Error::new_spanned(
                &scheduled.keyword,
                "a scheduled table needs a #[schedule_at] column (a `Timestamp`: when the row is due)",
            ));
        };
        if !has_primary_key {
            return Err(syn::Error::new_spanned(
                &scheduled.keyword,
                "a scheduled table needs a #[primary_key] column",
            ));
        }
        let reducer = reducer_name(&scheduled.reducer).to_string();
        let at = *at as u32;
        let interval = match &self.interval {
            Some((position, _)) => {
                let position = *position as u32;
                quote!(::core::option::Option::Some(#position))
            }
            None => quote!(::core::option::Option::None),
        };
        Ok(quote! {
            ::core::option::Option::Some(::worldline::__private::ScheduleDef {
                reducer: ::std::string::String::from(#reducer),
                at_column: #at,
                interval_column: #interval,
            })
        })
    }

    /// Compile-time checks of the column types and of the reducer's
    /// signature, each spanned at what it checks.
    fn checks(&self, scheduled: &Scheduled, row: &Ident) -> TokenStream {
        let mut checks = TokenStream::new();
        if let Some((_, ty)) = &self.at {
            checks.extend(quote_spanned! {ty.span()=>
                const _: () = ::worldline::__private::schedule_at_column::<#ty>();
            });
        }
        if let Some((_, ty)) = &self.interval {
            checks.extend(quote_spanned! {ty.span()=>
                const _: () = ::worldline::__private::schedule_interval_column::<#ty>();
            });
        }
        let reducer = &scheduled.reducer;
        checks.extend(quote_spanned! {reducer.span()=>
            const _: () = ::worldline::__private::scheduled_reducer::<#row, _>(#reducer);
        });
        checks
    }
}

/// The name a reducer is registered under: the last segment of its path.
fn reducer_name(path: &syn::Path) -> &Ident {
    &path
        .segments
        .last()
        .expect("a parsed path has at least one segment")
        .ident
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the error `#[table(attr)]` on `item` gives.
    fn refusal(attr: TokenStream, item: TokenStream) -> String {
        expand(attr, item)
            .expect_err("the table is refused")
            .to_string()
    }

    #[test]
    fn a_scheduled_table_describes_its_reducer_and_columns() {
        let expanded = expand(
            quote!(name = tick_schedule, scheduled(jobs::tick)),
            quote!(
                pub struct TickSchedule {
                    #[primary_key]
                    #[auto_inc]
                    id: u64,
                    #[schedule_interval]
                    every: u64,
                    #[schedule_at]
                    at: Timestamp,
                }
            ),
        )
        .expect("the table is accepted")
        .to_string();
        assert!(expanded.contains("reducer : :: std :: string :: String :: from (\"tick\")"));
        assert!(expanded.contains("at_column : 2u32"));
        assert!(expanded.contains("interval_column : :: core :: option :: Option :: Some (1u32)"));
        assert!(expanded.contains("scheduled_reducer :: < TickSchedule , _ > (jobs :: tick)"));
        assert!(
            !expanded.contains("# [schedule_at]"),
            "the attributes are consumed"
        );
    }

    #[test]
    fn a_scheduled_table_needs_a_schedule_at_column() {
        let message = refusal(
            quote!(name = t, scheduled(tick)),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_interval]
                    every: u64,
                }
            ),
        );
        assert!(
            message.contains("needs a #[schedule_at] column"),
            "{message}"
        );
    }

    #[test]
    fn a_scheduled_table_needs_a_primary_key() {
        let message = refusal(
            quote!(name = t, scheduled(tick)),
            quote!(
                struct T {
                    #[schedule_at]
                    at: Timestamp,
                }
            ),
        );
        assert!(
            message.contains("needs a #[primary_key] column"),
            "{message}"
        );
    }

    #[test]
    fn two_schedule_at_columns_are_refused_at_the_second() {
        let message = refusal(
            quote!(name = t, scheduled(tick)),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_at]
                    a: Timestamp,
                    #[schedule_at]
                    b: Timestamp,
                }
            ),
        );
        assert!(
            message.contains("has one #[schedule_at] column"),
            "{message}"
        );
    }

    #[test]
    fn schedule_attributes_outside_a_scheduled_table_are_refused() {
        let message = refusal(
            quote!(name = t),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_at]
                    at: Timestamp,
                }
            ),
        );
        assert!(message.contains("add `scheduled(reducer)`"), "{message}");
        let message = refusal(
            quote!(name = t),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_interval]
                    every: u64,
                }
            ),
        );
        assert!(message.contains("#[schedule_interval] marks a column of a scheduled table"));
    }

    #[test]
    fn misplaced_or_malformed_schedule_attributes_are_refused() {
        let on_struct = refusal(
            quote!(name = t, scheduled(tick)),
            quote!(
                #[schedule_at]
                struct T {
                    #[primary_key]
                    id: u64,
                    at: Timestamp,
                }
            ),
        );
        assert!(on_struct.contains("put it on a field"), "{on_struct}");
        let both = refusal(
            quote!(name = t, scheduled(tick)),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_at]
                    #[schedule_interval]
                    at: Timestamp,
                }
            ),
        );
        assert!(both.contains("two different columns"), "{both}");
        let with_args = refusal(
            quote!(name = t, scheduled(tick)),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_at(now)]
                    at: Timestamp,
                }
            ),
        );
        assert!(with_args.contains("unexpected token"), "{with_args}");
        let bare = refusal(
            quote!(name = t, scheduled),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_at]
                    at: Timestamp,
                }
            ),
        );
        assert!(bare.contains("expected `scheduled(reducer)`"), "{bare}");
        let twice = refusal(
            quote!(name = t, scheduled(a), scheduled(b)),
            quote!(
                struct T {
                    #[primary_key]
                    id: u64,
                    #[schedule_at]
                    at: Timestamp,
                }
            ),
        );
        assert!(twice.contains("given twice"), "{twice}");
    }
}
