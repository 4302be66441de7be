//! `#[reducer]`: registers a function as a reducer of the module.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

use crate::signature::Params;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let lifecycle = parse_lifecycle(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let name = &function.sig.ident;
    let reducer_name = name.to_string();
    let params = Params::parse(
        &function.sig,
        "reducer",
        "ReducerContext",
        "ctx: &ReducerContext",
        false,
    )?;
    if lifecycle.is_some() && !params.is_empty() {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "lifecycle reducers take only the context",
        ));
    }
    let args = format_ident!("__worldline_args");
    let decode = params.decode(&reducer_name, &args);
    let names = params.names();
    let describe_params = params.describe_fn(&format_ident!("__worldline_params"));
    let lifecycle = match lifecycle {
        Some(variant) => {
            quote!(::core::option::Option::Some(::worldline::__private::Lifecycle::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    Ok(quote! {
        #function

        const _: () = {
            fn __worldline_invoke(
                __worldline_ctx: &::worldline::ReducerContext,
                #args: &[u8],
            ) -> ::core::result::Result<(), ::std::string::String> {
                #decode
                ::worldline::__private::IntoReducerResult::into_reducer_result(#name(__worldline_ctx, #(#names),*))
            }
            #describe_params
            ::worldline::__private::inventory::submit! {
                ::worldline::__private::ReducerEntry {
                    name: #reducer_name,
                    lifecycle: #lifecycle,
                    params: __worldline_params,
                    invoke: __worldline_invoke,
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
