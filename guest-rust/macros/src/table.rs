//! `#[table]`: declares a table, its indexes and its handle `ctx.db.<name>()`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::meta::ParseNestedMeta;
use syn::{Fields, Ident, ItemStruct, Type};

use crate::worldline_type::describe_fields;

/// A table-level `index(name = .., btree(columns = [..]))`.
struct NamedIndex {
    name: Ident,
    columns: Vec<Ident>,
}

#[derive(Default)]
struct TableArgs {
    name: Option<Ident>,
    public: bool,
    indexes: Vec<NamedIndex>,
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
        } else {
            return Err(meta.error("expected `name = ...`, `public` or `index(...)`"));
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

/// The column attributes of one field.
#[derive(Default)]
struct ColumnFlags {
    primary_key: bool,
    unique: bool,
    auto_inc: bool,
    btree: bool,
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
    for (position, field) in fields.named.iter_mut().enumerate() {
        let flags = take_column_flags(&mut field.attrs)?;
        let ident = field.ident.clone().expect("named field");
        let ty = field.ty.clone();
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
                }
            }
            ::worldline::__private::inventory::submit! {
                ::worldline::__private::TableEntry { name: #table_string, describe }
            }
        };
    })
}
