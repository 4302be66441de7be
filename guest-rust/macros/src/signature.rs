//! Reading the signature of a reducer or procedure: its context parameter
//! and the arguments after it.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, Ident, Pat, Signature, Type};

/// The arguments after the context, as (name, type) pairs.
pub(crate) struct Params {
    names: Vec<Ident>,
    types: Vec<Type>,
}

impl Params {
    /// Reads `sig`, whose first parameter must be a reference to `context`
    /// (mutable or not, as `mutable` allows); `kind` ("reducer" or
    /// "procedure") words the errors.
    pub(crate) fn parse(
        sig: &Signature,
        kind: &str,
        context: &str,
        expected_first: &str,
        mutable: bool,
    ) -> syn::Result<Self> {
        let mut inputs = sig.inputs.iter();
        match inputs.next() {
            Some(FnArg::Typed(first)) if is_context_ref(&first.ty, context, mutable) => {}
            _ => {
                return Err(syn::Error::new_spanned(
                    sig,
                    format!("a {kind}'s first parameter must be `{expected_first}`"),
                ));
            }
        }
        let mut names = Vec::new();
        let mut types = Vec::new();
        for input in inputs {
            let FnArg::Typed(param) = input else {
                return Err(syn::Error::new_spanned(
                    input,
                    format!("{kind}s are free functions, not methods"),
                ));
            };
            let Pat::Ident(ident) = &*param.pat else {
                return Err(syn::Error::new_spanned(
                    &param.pat,
                    format!("{kind} parameters must be plain names, e.g. `amount: i64`"),
                ));
            };
            names.push(ident.ident.clone());
            types.push((*param.ty).clone());
        }
        Ok(Self { names, types })
    }

    /// Whether there are no arguments after the context.
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// A statement binding each argument's name to its value decoded from
    /// `args` (a `&[u8]`), returning the error from the enclosing function.
    pub(crate) fn decode(&self, name: &str, args: &Ident) -> TokenStream {
        let names = &self.names;
        let types = &self.types;
        quote! {
            let (#(#names,)*): (#(#types,)*) = ::worldline::__private::decode_args(#name, #args)?;
        }
    }

    /// The argument names, for calling the function.
    pub(crate) fn names(&self) -> &[Ident] {
        &self.names
    }

    /// A `fn(&mut TypeBuilder) -> Vec<Field>` item named `item` describing the arguments.
    pub(crate) fn describe_fn(&self, item: &Ident) -> TokenStream {
        let names = self.names.iter().map(Ident::to_string);
        let types = &self.types;
        quote! {
            fn #item(types: &mut ::worldline::TypeBuilder) -> ::std::vec::Vec<::worldline::__private::Field> {
                ::std::vec![#(::worldline::__private::field(
                    ::core::option::Option::Some(#names),
                    <#types as ::worldline::WorldlineType>::describe(types),
                )),*]
            }
        }
    }
}

fn is_context_ref(ty: &Type, context: &str, mutable: bool) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    if reference.mutability.is_some() && !mutable {
        return false;
    }
    matches!(&*reference.elem, Type::Path(path)
        if path.path.segments.last().is_some_and(|s| s.ident == context))
}
