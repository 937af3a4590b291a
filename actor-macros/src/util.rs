//! Helpers shared by the macros.

use proc_macro2::Span;
use syn::{visit_mut::VisitMut, FnArg, Ident, Pat, Type};

/// Replaces the bare type `Self` with the actor's type, for code outside the `impl`.
pub(crate) struct ReplaceSelf<'a>(pub(crate) &'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.is_ident("Self") {
                *ty = self.0.clone();
                return;
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// An error if `ty` cannot travel in a message: a borrow or an `impl Trait`.
pub(crate) fn check_owned(ty: &Type, what: &str) -> syn::Result<()> {
    match ty {
        Type::Reference(r) if r.lifetime.as_ref().is_some_and(|l| l.ident == "static") => Ok(()),
        Type::Reference(r) => Err(syn::Error::new_spanned(
            r,
            format!(
                "{what} must be owned (`'static`), since it travels in a message: \
                 take an owned type such as `String` instead of `&str`, or `Vec<T>` instead of `&[T]`"
            ),
        )),
        Type::ImplTrait(t) => Err(syn::Error::new_spanned(
            t,
            format!("{what} cannot be `impl Trait`: name a concrete type"),
        )),
        Type::Paren(p) => check_owned(&p.elem, what),
        Type::Group(g) => check_owned(&g.elem, what),
        _ => Ok(()),
    }
}

/// A typed parameter of a handler or function: the name to use in generated code and its type.
pub(crate) struct Param {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
}

/// The typed (non-receiver) parameters of a signature, with names fit for generated code.
pub(crate) fn params<'a>(inputs: impl Iterator<Item = &'a FnArg>) -> Vec<Param> {
    inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(i, t)| {
            let name = match &*t.pat {
                Pat::Ident(p) if p.subpat.is_none() && p.ident != "self" => p.ident.clone(),
                _ => Ident::new(&format!("__arg{i}"), Span::call_site()),
            };
            Param {
                name,
                ty: (*t.ty).clone(),
            }
        })
        .collect()
}

/// `snake_case` to `CamelCase`, for variant names.
pub(crate) fn camel(ident: &Ident) -> Ident {
    let mut out = String::new();
    let mut upper = true;
    for c in ident.to_string().trim_start_matches("r#").chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("Handler");
    }
    Ident::new(&out, ident.span())
}
