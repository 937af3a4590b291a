//! `#[test(tags = [..], needs = [..])]`: an async test that tags gate at run time.
//!
//! The expansion names `::nodus::testing` (the runner and the runtime) and
//! `::nodus::__private::inventory` (the registration), which exist only with nodus's `testing`
//! feature: users enable it in `[dev-dependencies]`. The expansion starts with
//! `::nodus::__private::require_testing!`, which turns a missing feature into one error that
//! says so.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{parse::Parser, Expr, ExprArray, ItemFn, Lit, LitStr, ReturnType};

#[derive(Default)]
struct Args {
    tags: Vec<LitStr>,
    needs: Vec<LitStr>,
}

fn strings(array: &ExprArray, what: &str) -> syn::Result<Vec<LitStr>> {
    array
        .elems
        .iter()
        .map(|e| match e {
            Expr::Lit(l) => match &l.lit {
                Lit::Str(s) => Ok(s.clone()),
                other => Err(syn::Error::new_spanned(
                    other,
                    format!("{what} are string literals: write `[\"distributed\"]`"),
                )),
            },
            other => Err(syn::Error::new_spanned(
                other,
                format!("{what} are string literals: write `[\"distributed\"]`"),
            )),
        })
        .collect()
}

fn parse_args(attr: TokenStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("tags") {
            let array: ExprArray = meta.value()?.parse()?;
            args.tags = strings(&array, "tags")?;
            for t in &args.tags {
                let v = t.value();
                if v.is_empty() || v.contains([',', ' ']) {
                    return Err(syn::Error::new_spanned(
                        t,
                        "a tag is one non-empty word (no commas or spaces), e.g. \"distributed\"",
                    ));
                }
            }
            Ok(())
        } else if meta.path.is_ident("needs") {
            let array: ExprArray = meta.value()?.parse()?;
            args.needs = strings(&array, "needed nodes")?;
            for n in &args.needs {
                let v = n.value();
                if v.split('@').filter(|s| !s.is_empty()).count() != 2 {
                    return Err(syn::Error::new_spanned(
                        n,
                        "a needed node is a node name `name@host`, e.g. \"moebi@localhost\"",
                    ));
                }
            }
            Ok(())
        } else {
            let name = meta
                .path
                .get_ident()
                .map_or_else(|| "?".to_string(), ToString::to_string);
            Err(meta.error(format!(
                "unknown argument `{name}` of #[nodus::test]; expected one of: \
                 `tags = [\"distributed\"]`, `needs = [\"moebi@localhost\"]`"
            )))
        }
    });
    parser.parse2(attr)?;
    Ok(args)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(attr)?;
    let f: ItemFn = syn::parse2(item)?;
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[nodus::test] runs an async test on a tokio runtime: write `async fn`, or use \
             plain `#[test]` for a synchronous one",
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "a test takes no arguments",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a test cannot be generic",
        ));
    }
    let ident = &sig.ident;
    let vis = &f.vis;
    let attrs = &f.attrs;
    let block = &f.block;
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let tags = &args.tags;
    let needs = &args.needs;
    let gated = !(tags.is_empty() && needs.is_empty());
    let ignore = gated.then(|| {
        let mut why = Vec::new();
        if !tags.is_empty() {
            let t: Vec<String> = tags.iter().map(LitStr::value).collect();
            why.push(format!("tagged {}", t.join(", ")));
        }
        if !needs.is_empty() {
            let n: Vec<String> = needs.iter().map(LitStr::value).collect();
            why.push(format!("needs {}", n.join(", ")));
        }
        let reason = format!(
            "{}: the tags are decided at run time only under nodus::testing::main \
             (a `harness = false` test); pass --ignored to force it here",
            why.join("; ")
        );
        quote!(#[ignore = #reason])
    });
    let p = quote!(::nodus::__private);
    let inner = quote::format_ident!("__nodus_test_{}", ident);
    Ok(quote! {
        // A compile error with the fix when nodus is built without its `testing` feature.
        #p::require_testing! {}

        // The test itself; run by the `#[test]` below under libtest, or by
        // `nodus::testing::main` (through the registration) in a `harness = false` target.
        #[doc(hidden)]
        #(#attrs)*
        #vis fn #inner() -> #ret {
            ::nodus::testing::__block_on::<#ret, _>(async move #block)
        }

        // Exists only under libtest's harness (`--test`); a `harness = false` target drops it.
        #[test]
        #ignore
        fn #ident() -> #ret {
            #inner()
        }

        #p::inventory::submit! {
            ::nodus::testing::TestCase::__new(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                &[#(#tags),*],
                &[#(#needs),*],
                || ::nodus::testing::__outcome(#inner()),
            )
        }
    })
}
