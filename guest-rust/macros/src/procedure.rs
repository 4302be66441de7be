//! `#[procedure]`: registers a function as a procedure of the module.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{ItemFn, ReturnType};

use crate::signature::Params;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[procedure] takes no arguments",
        ));
    }
    let function: ItemFn = syn::parse2(item)?;
    let name = &function.sig.ident;
    let procedure_name = name.to_string();
    let params = Params::parse(
        &function.sig,
        "procedure",
        "ProcedureContext",
        "ctx: &mut ProcedureContext",
        true,
    )?;
    let returns = match &function.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let args = format_ident!("__worldline_args");
    let decode = params.decode(&procedure_name, &args);
    let names = params.names();
    let describe_params = params.describe_fn(&format_ident!("__worldline_params"));
    Ok(quote! {
        #function

        const _: () = {
            fn __worldline_invoke(
                __worldline_ctx: &mut ::worldline::ProcedureContext,
                #args: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                #decode
                ::worldline::__private::IntoProcedureResult::into_procedure_result(#name(__worldline_ctx, #(#names),*))
            }
            #describe_params
            fn __worldline_returns(types: &mut ::worldline::TypeBuilder) -> u32 {
                <#returns as ::worldline::__private::IntoProcedureResult>::describe_returns(types)
            }
            ::worldline::__private::inventory::submit! {
                ::worldline::__private::ProcedureEntry {
                    name: #procedure_name,
                    params: __worldline_params,
                    returns: __worldline_returns,
                    invoke: __worldline_invoke,
                }
            }
        };
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::expand;

    fn refusal(attr: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        expand(attr, item)
            .expect_err("the procedure is refused")
            .to_string()
    }

    #[test]
    fn the_first_parameter_is_the_procedure_context() {
        let message = refusal(
            quote!(),
            quote!(
                fn p(ctx: &ReducerContext) {}
            ),
        );
        assert!(
            message.contains("`ctx: &mut ProcedureContext`"),
            "{message}"
        );
        let message = refusal(
            quote!(),
            quote!(
                fn p() {}
            ),
        );
        assert!(message.contains("first parameter"), "{message}");
    }

    #[test]
    fn arguments_are_plain_names_and_the_attribute_is_bare() {
        let message = refusal(
            quote!(),
            quote!(
                fn p(ctx: &mut ProcedureContext, (a, b): (u8, u8)) {}
            ),
        );
        assert!(message.contains("plain names"), "{message}");
        let message = refusal(
            quote!(init),
            quote!(
                fn p(ctx: &mut ProcedureContext) {}
            ),
        );
        assert!(message.contains("takes no arguments"), "{message}");
    }

    #[test]
    fn a_procedure_without_a_return_type_returns_unit() {
        let expanded = expand(
            quote!(),
            quote!(
                fn p(ctx: &mut ProcedureContext, n: u32) {}
            ),
        )
        .expect("the procedure is accepted")
        .to_string();
        assert!(expanded.contains("< () as :: worldline :: __private :: IntoProcedureResult >"));
        assert!(expanded.contains("name : \"p\""));
    }
}
