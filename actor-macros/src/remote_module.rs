//! `#[remote_module("Name")]`: an `impl` of associated functions callable by name.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{
    parse::{ParseStream, Parser},
    Attribute, Ident, ImplItem, ItemImpl, LitStr, ReturnType, Token, Type, Visibility,
};

use crate::util::{check_owned, params, Param};

struct Args {
    module: Option<LitStr>,
    stub: Option<Ident>,
}

fn parse_args(attr: TokenStream) -> syn::Result<Args> {
    let parser = |input: ParseStream<'_>| {
        let mut args = Args {
            module: None,
            stub: None,
        };
        if input.peek(LitStr) {
            args.module = Some(input.parse()?);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if key == "stub" {
                input.parse::<Token![=]>()?;
                args.stub = Some(input.parse()?);
            } else {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown argument `{key}` of #[nodus::remote_module]; expected one of: \
                         a module name (\"Chat\"), `stub = Name`"
                    ),
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    };
    parser.parse2(attr)
}

struct Function {
    ident: Ident,
    vis: Visibility,
    docs: Vec<Attribute>,
    with_context: bool,
    params: Vec<Param>,
    ret: Type,
    is_async: bool,
}

fn is_call_context(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "CallContext"),
        _ => false,
    }
}

fn function(f: &syn::ImplItemFn) -> syn::Result<Option<Function>> {
    if matches!(f.vis, Visibility::Inherited) {
        return Ok(None);
    }
    let sig = &f.sig;
    if let Some(r) = sig.receiver() {
        return Err(syn::Error::new_spanned(
            r,
            "a remote module function is called by name with no instance: remove the `self` \
             parameter (or make the function private to keep it out of the module)",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a remote module function cannot be generic: it is registered by name with concrete \
             argument and return types; write one function per type",
        ));
    }
    let mut ps = params(sig.inputs.iter());
    let with_context = ps.first().is_some_and(|p| is_call_context(&p.ty));
    if with_context {
        ps.remove(0);
    }
    for p in &ps {
        check_owned(&p.ty, "a remote function's argument")?;
        if is_call_context(&p.ty) {
            return Err(syn::Error::new_spanned(
                &p.ty,
                "a `CallContext` parameter must come first",
            ));
        }
    }
    let ret = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            check_owned(ty, "a remote function's result")?;
            (**ty).clone()
        }
    };
    Ok(Some(Function {
        ident: sig.ident.clone(),
        vis: f.vis.clone(),
        docs: f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        with_context,
        params: ps,
        ret,
        is_async: sig.asyncness.is_some(),
    }))
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(attr)?;
    let imp: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[nodus::remote_module] goes on an inherent impl (`impl Chat { .. }`), not a trait impl",
        ));
    }
    if !imp.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &imp.generics,
            "a remote module cannot be generic: its functions are registered by name with \
             concrete types",
        ));
    }
    let self_ty = &*imp.self_ty;
    let base = match self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.get_ident().cloned(),
        _ => None,
    };
    let Some(base) = base else {
        return Err(syn::Error::new_spanned(
            self_ty,
            "#[nodus::remote_module] needs a plain type name: `impl Chat { .. }`",
        ));
    };
    let module = args
        .module
        .unwrap_or_else(|| LitStr::new(&base.to_string(), base.span()));
    if module.value().is_empty() {
        return Err(syn::Error::new_spanned(
            &module,
            "the module name cannot be empty",
        ));
    }
    let stub = args.stub.unwrap_or_else(|| format_ident!("{}Stub", base));

    let mut functions = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for item in &imp.items {
        if let ImplItem::Fn(f) = item {
            match function(f) {
                Ok(Some(func)) => functions.push(func),
                Ok(None) => {}
                Err(e) => match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                },
            }
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    for reserved in ["register", "on", "MODULE", "with_timeout", "destination"] {
        if let Some(f) = functions.iter().find(|f| f.ident == reserved) {
            return Err(syn::Error::new_spanned(
                &f.ident,
                format!(
                    "`{reserved}` is generated by #[nodus::remote_module]; rename the function \
                     (reserved: `register`, `on`, `MODULE`, `with_timeout`, `destination`)"
                ),
            ));
        }
    }
    let p = quote!(::nodus::__private);

    let registrations = functions.iter().map(|f| {
        let name = f.ident.to_string();
        let ident = &f.ident;
        let names: Vec<&Ident> = f.params.iter().map(|p| &p.name).collect();
        let tys = f.params.iter().map(|p| &p.ty);
        let aw = f.is_async.then(|| quote!(.await));
        if f.with_context {
            quote! {
                functions.register_with_context(
                    #module,
                    #name,
                    |ctx: #p::CallContext, (#(#names,)*): (#(#tys,)*)| async move {
                        <#self_ty>::#ident(ctx, #(#names),*)#aw
                    },
                );
            }
        } else {
            quote! {
                functions.register(#module, #name, |(#(#names,)*): (#(#tys,)*)| async move {
                    <#self_ty>::#ident(#(#names),*)#aw
                });
            }
        }
    });
    let methods = functions.iter().map(|f| {
        let name = f.ident.to_string();
        let ident = &f.ident;
        let vis = &f.vis;
        let docs = &f.docs;
        let names: Vec<&Ident> = f.params.iter().map(|p| &p.name).collect();
        let tys: Vec<&Type> = f.params.iter().map(|p| &p.ty).collect();
        let ret = &f.ret;
        let line = format!(
            "Runs `{}.{name}` under the task supervisor at the stub's destination and awaits its \
             result: `TaskSupervisor::async_on(system, dest, \"{}\", \"{name}\", args)`, then the task, \
             all within the stub's timeout.",
            module.value(),
            module.value(),
        );
        quote_spanned! {ident.span()=>
            #(#docs)*
            #[doc = ""]
            #[doc = #line]
            #[doc = ""]
            #[doc = "# Errors"]
            #[doc = "`TaskError`: `NoConnection` (the node cannot be reached), `NoProc` (no task supervisor of that name there), `Undefined` (the module is not registered there), `Unconfirmed` (no answer to the start within the timeout: it may run there), `Timeout` (the whole call, start and result, took longer than the stub's timeout), or how the function failed."]
            #vis async fn #ident(&self, #(#names: #tys),*) -> ::core::result::Result<#ret, #p::TaskError> {
                // The stub's timeout bounds the whole call: the start, then the result.
                let deadline = ::std::time::Instant::now() + self.timeout;
                let task = #p::TaskSupervisor::async_on_timeout::<(#(#tys,)*), #ret>(
                    &self.system,
                    &self.dest,
                    #module,
                    #name,
                    (#(#names,)*),
                    self.timeout,
                )
                .await?;
                let left = deadline.saturating_duration_since(::std::time::Instant::now());
                match task.await_timeout(left).await {
                    ::core::result::Result::Err(#p::TaskError::Timeout { .. }) => {
                        ::core::result::Result::Err(#p::TaskError::Timeout { timeout: self.timeout })
                    }
                    other => other,
                }
            }
        }
    });
    let count = functions.len();
    let register_doc = format!(
        "Registers the {count} public function(s) of [`{base}`] under the module name `{}` in \
         `system.functions()`, replacing any of the same name. Each takes a tuple of its \
         parameters. Generated by `#[nodus::remote_module]`.",
        module.value()
    );
    let on_doc = format!(
        "A typed stub that runs [`{base}`]'s functions under the task supervisor at `dest` (a \
         name on this node, a `(name, node)` pair or a pid), where `{base}::register` was \
         called.",
    );
    let stub_doc = format!(
        "Calls the functions of the remote module `{}` ([`{base}`]) by name, typed: one async \
         method per function. Made by `{base}::on`; generated by `#[nodus::remote_module]`.",
        module.value()
    );
    let module_doc = format!(
        "The module name the functions are registered under: `{}`.",
        module.value()
    );

    Ok(quote! {
        #imp

        #[allow(dead_code)]
        impl #self_ty {
            #[doc = #module_doc]
            pub const MODULE: &'static str = #module;

            #[doc = #register_doc]
            pub fn register(system: &#p::System) {
                let functions = system.functions();
                #(#registrations)*
            }

            #[doc = #on_doc]
            pub fn on(system: &#p::System, dest: impl ::core::convert::Into<#p::Destination>) -> #stub {
                #stub {
                    system: ::core::clone::Clone::clone(system),
                    dest: dest.into(),
                    timeout: #p::DEFAULT_TIMEOUT,
                }
            }
        }

        #[doc = #stub_doc]
        #[derive(Clone)]
        #[allow(dead_code)]
        pub struct #stub {
            system: #p::System,
            dest: #p::Destination,
            timeout: ::core::time::Duration,
        }

        impl ::core::fmt::Debug for #stub {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#stub))
                    .field("module", &#module)
                    .field("dest", &self.dest)
                    .field("timeout", &self.timeout)
                    .finish_non_exhaustive()
            }
        }

        #[allow(dead_code)]
        impl #stub {
            /// The same stub, each call (the start and the result) bounded by `timeout` (default
            /// 5 s, as `Task.await`).
            #[must_use]
            pub fn with_timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.timeout = timeout;
                self
            }

            /// Where the tasks run.
            pub fn destination(&self) -> &#p::Destination {
                &self.dest
            }

            #(#methods)*
        }
    })
}
