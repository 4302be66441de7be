//! `#[derive(WorldlineType)]`: products for structs, sums for enums.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

/// The statements that describe `fields` as a product and evaluate to its type reference.
pub(crate) fn describe_fields(fields: &Fields) -> TokenStream {
    let entries = fields.iter().map(|field| {
        let ty = &field.ty;
        let name = match &field.ident {
            Some(ident) => {
                let name = ident.to_string();
                quote!(::core::option::Option::Some(#name))
            }
            None => quote!(::core::option::Option::None),
        };
        quote!(::worldline::__private::field(#name, <#ty as ::worldline::WorldlineType>::describe(types)))
    });
    quote! {{
        let fields = ::std::vec![#(#entries),*];
        types.add(::worldline::__private::TypeNode::Product(fields))
    }}
}

pub(crate) fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let body = match &input.data {
        Data::Struct(data) => describe_fields(&data.fields),
        Data::Enum(data) => {
            let cases = data.variants.iter().map(|variant| {
                let case = variant.ident.to_string();
                let payload = match &variant.fields {
                    Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                        let ty = &fields.unnamed[0].ty;
                        quote!(<#ty as ::worldline::WorldlineType>::describe(types))
                    }
                    fields => describe_fields(fields),
                };
                quote!(::worldline::__private::variant_case(#case, #payload))
            });
            quote! {{
                let cases = ::std::vec![#(#cases),*];
                types.add(::worldline::__private::TypeNode::Sum(cases))
            }}
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                name,
                "WorldlineType can be derived for structs and enums, not unions",
            ));
        }
    };
    Ok(quote! {
        impl #impl_generics ::worldline::WorldlineType for #name #ty_generics #where_clause {
            fn describe(types: &mut ::worldline::TypeBuilder) -> u32 #body
        }
    })
}
