//! `#[reducer]`: registers a function as a reducer of the module.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ItemFn, Pat, Type};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let lifecycle = parse_lifecycle(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let name = &function.sig.ident;
    let reducer_name = name.to_string();
    let mut inputs = function.sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Typed(first)) if is_context_ref(&first.ty) => {}
        _ => {
            return Err(syn::Error::new_spanned(
                &function.sig,
                "a reducer's first parameter must be `ctx: &ReducerContext`",
            ));
        }
    }
    let mut params = Vec::new();
    for input in inputs {
        let FnArg::Typed(param) = input else {
            return Err(syn::Error::new_spanned(
                input,
                "reducers are free functions, not methods",
            ));
        };
        let Pat::Ident(ident) = &*param.pat else {
            return Err(syn::Error::new_spanned(
                &param.pat,
                "reducer parameters must be plain names, e.g. `amount: i64`",
            ));
        };
        params.push((ident.ident.clone(), (*param.ty).clone()));
    }
    if lifecycle.is_some() && !params.is_empty() {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "lifecycle reducers take only the context",
        ));
    }
    let names: Vec<_> = params.iter().map(|(n, _)| n).collect();
    let types: Vec<_> = params.iter().map(|(_, t)| t).collect();
    let name_strings: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let lifecycle = match lifecycle {
        Some(variant) => {
            quote!(::core::option::Option::Some(::worldline::__private::Lifecycle::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    Ok(quote! {
        #function

        const _: () = {
            fn invoke(ctx: &::worldline::ReducerContext, args: &[u8]) -> ::core::result::Result<(), ::std::string::String> {
                let (#(#names,)*): (#(#types,)*) = ::worldline::__private::decode_args(#reducer_name, args)?;
                ::worldline::__private::IntoReducerResult::into_reducer_result(#name(ctx, #(#names),*))
            }
            fn params(types: &mut ::worldline::TypeBuilder) -> ::std::vec::Vec<::worldline::__private::Field> {
                ::std::vec![#(::worldline::__private::field(
                    ::core::option::Option::Some(#name_strings),
                    <#types as ::worldline::WorldlineType>::describe(types),
                )),*]
            }
            ::worldline::__private::inventory::submit! {
                ::worldline::__private::ReducerEntry {
                    name: #reducer_name,
                    lifecycle: #lifecycle,
                    params,
                    invoke,
                }
            }
        };
    })
}

fn parse_lifecycle(attr: TokenStream) -> syn::Result<Option<syn::Ident>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let ident: syn::Ident = syn::parse2(attr)?;
    let variant = match ident.to_string().as_str() {
        "init" => "Init",
        "client_connected" => "ClientConnected",
        "client_disconnected" => "ClientDisconnected",
        _ => {
            return Err(syn::Error::new_spanned(
                ident,
                "expected `init`, `client_connected` or `client_disconnected`",
            ));
        }
    };
    Ok(Some(syn::Ident::new(variant, ident.span())))
}

fn is_context_ref(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    matches!(&*reference.elem, Type::Path(path)
        if path.path.segments.last().is_some_and(|s| s.ident == "ReducerContext"))
}
