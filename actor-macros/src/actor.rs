//! `#[actor]`: an `impl` block whose methods are an actor's handlers.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{
    parse::Parser, parse_quote, parse_quote_spanned, spanned::Spanned, visit_mut::VisitMut,
    Attribute, Generics, Ident, ImplItem, ImplItemFn, ItemImpl, LitInt, LitStr, ReturnType, Type,
    Visibility,
};

use crate::util::{camel, check_owned, params, Param, ReplaceSelf};

/// Names the generated types; each can be overridden by an argument of `#[actor]`.
#[derive(Default)]
struct Args {
    vis: Option<Visibility>,
    msg: Option<Ident>,
    client: Option<Ident>,
    actor: Option<Ident>,
    /// `remote`: also generate `RemoteMessage` for the message enum.
    remote: bool,
    /// `name = "..."`: the wire name of a remote actor's messages (else the actor's name).
    name: Option<LitStr>,
}

fn parse_args(attr: TokenStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("remote") {
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error("`remote` is a flag: write `#[nodus::actor(remote)]`"));
            }
            args.remote = true;
            return Ok(());
        }
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            if name.value().is_empty() {
                return Err(syn::Error::new_spanned(
                    name,
                    "the wire name cannot be empty: write `name = \"Counter\"`",
                ));
            }
            args.name = Some(name);
            return Ok(());
        }
        if meta.path.is_ident("vis") {
            args.vis = Some(meta.value()?.parse()?);
            return Ok(());
        }
        let slot = if meta.path.is_ident("msg") {
            &mut args.msg
        } else if meta.path.is_ident("client") {
            &mut args.client
        } else if meta.path.is_ident("actor") {
            &mut args.actor
        } else {
            let name = meta
                .path
                .get_ident()
                .map_or_else(|| "?".to_string(), Ident::to_string);
            return Err(meta.error(format!(
                "unknown argument `{name}` of #[nodus::actor]; expected one of: \
                 `remote`, `name = \"WireName\"`, `vis = pub`, `msg = Name`, `client = Name`, \
                 `actor = Name`"
            )));
        };
        *slot = Some(meta.value()?.parse()?);
        Ok(())
    });
    parser.parse2(attr)?;
    if let (Some(name), false) = (&args.name, args.remote) {
        return Err(syn::Error::new_spanned(
            name,
            "`name` is the wire name of a remote actor's messages: add `remote`, as in \
             `#[nodus::actor(remote, name = \"Counter\")]`",
        ));
    }
    Ok(args)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cast,
    Call,
}

struct Handler {
    kind: Kind,
    ident: Ident,
    variant: Ident,
    vis: Visibility,
    docs: Vec<Attribute>,
    params: Vec<Param>,
    /// The reply type of a call (with `Self` replaced).
    reply: Type,
    is_async: bool,
    timeout_ms: Option<LitInt>,
    /// Whether it takes the handler context (`ctx: &mut Context`) after its receiver.
    ctx: bool,
}

/// A lifecycle method: `#[init]` (after the actor starts, before its first message) or
/// `#[info]` (GenServer's `handle_info`: the runtime's `Info` messages).
struct Hook {
    ident: Ident,
    ctx: bool,
    is_async: bool,
}

/// Whether `ty` is `&Context..` or `&mut Context..` (the handler context).
fn is_context(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    matches!(&*r.elem, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Context"))
}

/// Fills in `Context`'s message type where it is written bare (`ctx: &mut Context`).
fn fill_context(f: &mut ImplItemFn, msg_ty: &TokenStream) {
    let Some(syn::FnArg::Typed(first)) = f.sig.inputs.iter_mut().nth(1) else {
        return;
    };
    let Type::Reference(r) = &mut *first.ty else {
        return;
    };
    let Type::Path(p) = &mut *r.elem else { return };
    let Some(last) = p.path.segments.last_mut() else {
        return;
    };
    if last.ident == "Context" && last.arguments.is_empty() {
        last.arguments = syn::PathArguments::AngleBracketed(parse_quote!(<#msg_ty>));
    }
}

/// Takes `#[init]` / `#[info]` off a method; returns which.
fn take_hook_attr(f: &mut ImplItemFn) -> Option<&'static str> {
    let mut found = None;
    f.attrs.retain(|attr| {
        for name in ["init", "info"] {
            if attr.path().is_ident(name) {
                found = Some(name);
                return false;
            }
        }
        true
    });
    found
}

/// Checks a hook's signature: `&mut self`, an optional context, and for `#[info]` one `Info`.
fn hook(f: &ImplItemFn, which: &str) -> syn::Result<Hook> {
    let sig = &f.sig;
    if sig.receiver().is_none() {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            format!("an `#[{which}]` method runs on the actor's state: take `&mut self` first"),
        ));
    }
    let ps = params(sig.inputs.iter());
    let ctx = ps.first().is_some_and(|p| is_context(&p.ty));
    let rest = ps.len() - usize::from(ctx);
    let wanted = usize::from(which == "info");
    if rest != wanted {
        let shape = if which == "info" {
            "`fn info(&mut self, ctx: &mut Context, info: Info)` (the context is optional)"
        } else {
            "`fn init(&mut self, ctx: &mut Context)` (the context is optional)"
        };
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            format!("an `#[{which}]` method is {shape}"),
        ));
    }
    if !matches!(sig.output, ReturnType::Default) {
        return Err(syn::Error::new_spanned(
            &sig.output,
            format!("an `#[{which}]` method returns nothing"),
        ));
    }
    Ok(Hook {
        ident: sig.ident.clone(),
        ctx,
        is_async: sig.asyncness.is_some(),
    })
}

/// Names a handler may not take, because the macro generates items with them.
const RESERVED_ON_ACTOR: &[&str] = &["spawn", "client", "child_spec", "register_remote"];
const RESERVED_ON_CLIENT: &[&str] = &["new", "destination", "with_timeout", "timeout"];

/// Takes `#[call]`/`#[cast]` off a method; returns the kind asked for and its timeout.
fn take_kind_attr(f: &mut ImplItemFn) -> syn::Result<Option<(Kind, Option<LitInt>, Attribute)>> {
    let mut found: Option<(Kind, Option<LitInt>, Attribute)> = None;
    let mut err: Option<syn::Error> = None;
    f.attrs.retain(|attr| {
        let kind = if attr.path().is_ident("call") {
            Kind::Call
        } else if attr.path().is_ident("cast") {
            Kind::Cast
        } else {
            return true;
        };
        if found.is_some() {
            err.get_or_insert(syn::Error::new_spanned(
                attr,
                "a handler is either `#[call]` or `#[cast]`, not both: keep one",
            ));
            return false;
        }
        let mut timeout = None;
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            let res = attr.parse_nested_meta(|meta| {
                if kind == Kind::Call && meta.path.is_ident("timeout_ms") {
                    timeout = Some(meta.value()?.parse::<LitInt>()?);
                    Ok(())
                } else if kind == Kind::Call {
                    Err(meta
                        .error("unknown argument of #[call]; expected one of: `timeout_ms = 1000`"))
                } else {
                    Err(meta.error("#[cast] takes no arguments; write `#[cast]`"))
                }
            });
            if let Err(e) = res {
                err.get_or_insert(e);
            }
        }
        found = Some((kind, timeout, attr.clone()));
        false
    });
    match err {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

fn handler(f: &mut ImplItemFn, self_ty: &Type) -> syn::Result<Option<Handler>> {
    let explicit = take_kind_attr(f)?;
    let is_pub = !matches!(f.vis, Visibility::Inherited);
    let receiver = f.sig.receiver();
    if explicit.is_none() && (!is_pub || receiver.is_none()) {
        // A private helper or an associated function: left as written.
        return Ok(None);
    }
    let sig = &f.sig;
    let Some(receiver) = receiver else {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            "a handler runs on the actor's state: take `&self` or `&mut self` as the first parameter",
        ));
    };
    if !matches!(&*receiver.ty, Type::Reference(_)) {
        return Err(syn::Error::new_spanned(
            receiver,
            "a handler borrows the actor's state, it cannot take `self` by value: \
             write `&self` or `&mut self`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a handler cannot be generic: its arguments travel in the message enum, which needs \
             concrete types; put the type parameter on the actor instead (`impl<T> MyActor<T>`)",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(abi, "a handler cannot be `extern`"));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "a handler cannot be `unsafe`: wrap the unsafe code in a safe method",
        ));
    }
    let ident = sig.ident.clone();
    let name = ident.to_string();
    if RESERVED_ON_ACTOR.contains(&name.as_str()) || RESERVED_ON_CLIENT.contains(&name.as_str()) {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "`{name}` is generated by #[nodus::actor]; rename the handler \
                 (reserved: `spawn`, `client`, `child_spec`, `register_remote`, `new`, \
                 `destination`, `with_timeout`, `timeout`)"
            ),
        ));
    }
    let mut ps = params(sig.inputs.iter());
    let ctx = ps.first().is_some_and(|p| is_context(&p.ty));
    if ctx {
        ps.remove(0);
    }
    for p in &mut ps {
        check_owned(&p.ty, "a handler argument")?;
        ReplaceSelf(self_ty).visit_type_mut(&mut p.ty);
    }
    let (declared, has_ret) = match &sig.output {
        ReturnType::Default => (parse_quote!(()), false),
        ReturnType::Type(_, ty) => {
            check_owned(ty, "a handler's reply")?;
            let mut ty = (**ty).clone();
            ReplaceSelf(self_ty).visit_type_mut(&mut ty);
            (ty, true)
        }
    };
    let (kind, timeout_ms) = match explicit {
        Some((Kind::Cast, _, _)) if has_ret && !is_unit(&declared) => {
            return Err(syn::Error::new_spanned(
                &sig.output,
                "a `#[cast]` has no reply: remove the return type, or make it a `#[call]`",
            ))
        }
        Some((kind, timeout, _)) => (kind, timeout),
        None if has_ret && !is_unit(&declared) => (Kind::Call, None),
        None => (Kind::Cast, None),
    };
    let docs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Some(Handler {
        kind,
        variant: camel(&ident),
        ident,
        vis: f.vis.clone(),
        docs,
        params: ps,
        reply: declared,
        is_async: sig.asyncness.is_some(),
        timeout_ms,
        ctx,
    }))
}

/// The generics of every generated item: the impl's, each type parameter `Send + 'static`.
fn send_generics(generics: &Generics) -> syn::Result<Generics> {
    let mut g = generics.clone();
    if let Some(lt) = g.lifetimes().next() {
        return Err(syn::Error::new_spanned(
            lt,
            "an actor's state is `'static` (it lives in its own task): remove the lifetime \
             parameter and own the data, e.g. `String` instead of `&'a str`",
        ));
    }
    let tys: Vec<Ident> = g.type_params().map(|t| t.ident.clone()).collect();
    let wc = g.make_where_clause();
    for t in tys {
        wc.predicates
            .push(parse_quote!(#t: ::core::marker::Send + 'static));
    }
    Ok(g)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(attr)?;
    let mut imp: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[nodus::actor] goes on an inherent impl (`impl MyActor { .. }`), not a trait impl",
        ));
    }
    let self_ty = (*imp.self_ty).clone();
    let base = match &self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let Some(base) = base else {
        return Err(syn::Error::new_spanned(
            &self_ty,
            "#[nodus::actor] needs a named struct or enum as the actor's state: `impl MyActor { .. }`",
        ));
    };

    let mut handlers = Vec::new();
    let (mut init, mut info): (Option<Hook>, Option<Hook>) = (None, None);
    let mut errors: Option<syn::Error> = None;
    let add_error = |e: syn::Error, errors: &mut Option<syn::Error>| match errors {
        Some(all) => all.combine(e),
        None => *errors = Some(e),
    };
    for item in &mut imp.items {
        if let ImplItem::Fn(f) = item {
            if let Some(which) = take_hook_attr(f) {
                match hook(f, which) {
                    Ok(h) => {
                        let slot = if which == "init" {
                            &mut init
                        } else {
                            &mut info
                        };
                        if slot.is_some() {
                            add_error(
                                syn::Error::new_spanned(
                                    &f.sig.ident,
                                    format!("an actor has one `#[{which}]` method"),
                                ),
                                &mut errors,
                            );
                        }
                        *slot = Some(h);
                    }
                    Err(e) => add_error(e, &mut errors),
                }
                continue;
            }
            match handler(f, &self_ty) {
                Ok(Some(h)) => handlers.push(h),
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
    let generics = send_generics(&imp.generics)?;

    let msg = args.msg.unwrap_or_else(|| format_ident!("{}Msg", base));
    let client = args
        .client
        .unwrap_or_else(|| format_ident!("{}Client", base));
    let actor = args.actor.unwrap_or_else(|| format_ident!("{}Actor", base));
    let p = quote!(::nodus::__private);
    // Private by default, as any item without `pub`: the generated types name the state type,
    // whose visibility the macro cannot see.
    let vis = args.vis.unwrap_or(Visibility::Inherited);

    let (impl_g, ty_g, where_c) = generics.split_for_impl();
    let msg_ty = quote!(#msg #ty_g);
    for item in &mut imp.items {
        if let ImplItem::Fn(f) = item {
            fill_context(f, &msg_ty);
        }
    }
    let type_params: Vec<&Ident> = generics.type_params().map(|t| &t.ident).collect();
    let phantom_ty = quote!(::core::marker::PhantomData<fn() -> (#(#type_params,)*)>);
    let has_params = !type_params.is_empty();

    let base_doc = format!("[`{base}`]");

    // The message enum.
    let variants = handlers.iter().map(|h| {
        let v = &h.variant;
        let docs = &h.docs;
        let tys = h.params.iter().map(|p| &p.ty);
        let reply = match h.kind {
            Kind::Call => {
                let r = &h.reply;
                Some(quote!(#p::ractor::RpcReplyPort<#r>, #p::Caller))
            }
            Kind::Cast => None,
        };
        let kind = match h.kind {
            Kind::Call => "a call: its last fields are the reply port and the caller",
            Kind::Cast => "a cast",
        };
        let line = format!("The message of `{}`, {kind}.", h.ident);
        quote! {
            #[doc = #line]
            #[doc = ""]
            #(#docs)*
            #v(#(#tys,)* #reply)
        }
    });
    let phantom_variant = has_params.then(|| {
        quote! {
            #[doc(hidden)]
            __Phantom(#phantom_ty, ::core::convert::Infallible)
        }
    });
    let phantom_arm = has_params.then(|| quote!(#msg::__Phantom(_, never) => match never {},));
    let phantom_ref_arm = has_params.then(|| quote!(#msg::__Phantom(_, never) => match *never {},));
    let turbofish = ty_g.as_turbofish();
    let debug_arms = handlers.iter().map(|h| {
        let v = &h.variant;
        let name = v.to_string();
        quote!(#msg::#v(..) => f.write_str(#name),)
    });
    let msg_doc = format!(
        "The messages of the {base_doc} actor, one variant per handler; generated by `#[nodus::actor]`."
    );
    let msg_enum = quote! {
        #[doc = #msg_doc]
        #[allow(dead_code)]
        #vis enum #msg #impl_g #where_c {
            #(#variants,)*
            /// A message from the runtime (a monitor's `Down`, a trapped exit, a node event),
            /// for the actor's `#[info]` method.
            __Info(#p::Info),
            /// A message sent in a trace (`TraceContext`): its handler runs in it.
            #[doc(hidden)]
            __Traced(#p::TraceContext, ::std::boxed::Box<Self>),
            #phantom_variant
        }

        impl #impl_g ::core::convert::From<#p::Info> for #msg #ty_g #where_c {
            fn from(info: #p::Info) -> Self {
                #msg::__Info(info)
            }
        }

        impl #impl_g #msg #ty_g #where_c {
            /// This message, carrying the current trace context if there is one.
            #[doc(hidden)]
            #[allow(dead_code)]
            pub fn __traced(self) -> Self {
                match #p::TraceContext::current() {
                    ::core::option::Option::Some(trace) => #msg::__Traced(trace, ::std::boxed::Box::new(self)),
                    ::core::option::Option::None => self,
                }
            }

            /// This message without its trace context.
            #[doc(hidden)]
            #[allow(dead_code)]
            pub fn __untraced(self) -> Self {
                match self {
                    #msg::__Traced(_, inner) => inner.__untraced(),
                    other => other,
                }
            }
        }

        impl #impl_g ::core::fmt::Debug for #msg #ty_g #where_c {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #[allow(unreachable_code)]
                match self {
                    #(#debug_arms)*
                    #msg::__Info(info) => ::core::fmt::Debug::fmt(info, f),
                    #msg::__Traced(_, inner) => ::core::fmt::Debug::fmt(inner, f),
                    #phantom_ref_arm
                }
            }
        }
    };

    // The ractor behaviour.
    let arms = handlers.iter().map(|h| {
        let v = &h.variant;
        let m = &h.ident;
        let names: Vec<&Ident> = h.params.iter().map(|p| &p.name).collect();
        let aw = h.is_async.then(|| quote!(.await));
        let ctx = h.ctx.then(|| quote!(&mut *ctx,));
        match h.kind {
            Kind::Cast => quote! {
                #msg::#v(#(#names,)*) => {
                    ctx.begin(::core::option::Option::None);
                    state.#m(#ctx #(#names),*)#aw;
                }
            },
            Kind::Call => quote! {
                #msg::#v(#(#names,)* __reply, __caller) => {
                    ctx.begin(::core::option::Option::Some(__caller));
                    let __value = state.#m(#ctx #(#names),*)#aw;
                    // The caller may have given up (timeout); its reply is then dropped.
                    let _ = __reply.send(__value);
                }
            },
        }
    });
    let info_arm = match &info {
        Some(h) => {
            let m = &h.ident;
            let aw = h.is_async.then(|| quote!(.await));
            let ctx = h.ctx.then(|| quote!(&mut *ctx,));
            quote! {
                #msg::__Info(info) => {
                    ctx.begin(::core::option::Option::None);
                    state.#m(#ctx info)#aw;
                }
            }
        }
        None => quote! {
            #msg::__Info(info) => {
                #p::tracing::debug!(actor = ::core::stringify!(#base), ?info, "no #[info] method: info dropped");
            }
        },
    };
    let init_call = init.as_ref().map(|h| {
        let m = &h.ident;
        let aw = h.is_async.then(|| quote!(.await));
        let ctx = h.ctx.then(|| quote!(&mut *ctx));
        quote! {
            let #p::Hosted { state, ctx } = hosted;
            let scope = ctx.scope();
            #p::run_in(scope, async {
                state.#m(#ctx)#aw;
                while let ::core::option::Option::Some(next) = ctx.take_continue() {
                    Self::__dispatch(state, ctx, next).await;
                }
            }).await;
        }
    });
    let actor_doc = format!(
        "The `ractor::Actor` that runs {base_doc}: its state is the \
         `{base}` value, its messages [`{msg}`]. Generated by `#[nodus::actor]`; most code uses \
         `{base}::spawn`, `{base}::child_spec` and [`{client}`] instead."
    );
    let actor_def = quote! {
        #[doc = #actor_doc]
        #[allow(dead_code)]
        #vis struct #actor #impl_g (#phantom_ty) #where_c;

        impl #impl_g ::core::default::Default for #actor #ty_g #where_c {
            fn default() -> Self {
                Self(::core::marker::PhantomData)
            }
        }

        impl #impl_g ::core::clone::Clone for #actor #ty_g #where_c {
            fn clone(&self) -> Self {
                Self(::core::marker::PhantomData)
            }
        }

        impl #impl_g ::core::fmt::Debug for #actor #ty_g #where_c {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#actor))
            }
        }

        impl #impl_g #actor #ty_g #where_c {
            /// Runs the handler of `message`.
            #[allow(unused_variables, clippy::unused_async)]
            async fn __dispatch(
                state: &mut #self_ty,
                ctx: &mut #p::Context<#msg #ty_g>,
                message: #msg #ty_g,
            ) {
                match message {
                    #(#arms)*
                    #info_arm
                    #msg::__Traced(trace, inner) => {
                        let parent = ctx.node_span();
                        ::std::boxed::Box::pin(trace.instrument_in(&parent, Self::__dispatch(state, ctx, *inner))).await;
                    }
                    #phantom_arm
                }
            }
        }

        impl #impl_g #p::ractor::Actor for #actor #ty_g #where_c {
            type Msg = #msg #ty_g;
            type State = #p::Hosted<#self_ty, #msg #ty_g>;
            type Arguments = (#self_ty, #p::WeakSystem);

            async fn pre_start(
                &self,
                myself: #p::ractor::ActorRef<Self::Msg>,
                args: Self::Arguments,
            ) -> ::core::result::Result<Self::State, #p::ractor::ActorProcessingErr> {
                ::core::result::Result::Ok(#p::Hosted::start(myself, args)?)
            }

            #[allow(unused_variables)]
            async fn post_start(
                &self,
                _myself: #p::ractor::ActorRef<Self::Msg>,
                hosted: &mut Self::State,
            ) -> ::core::result::Result<(), #p::ractor::ActorProcessingErr> {
                #init_call
                ::core::result::Result::Ok(())
            }

            async fn handle(
                &self,
                _myself: #p::ractor::ActorRef<Self::Msg>,
                message: Self::Msg,
                hosted: &mut Self::State,
            ) -> ::core::result::Result<(), #p::ractor::ActorProcessingErr> {
                let #p::Hosted { state, ctx } = hosted;
                let scope = ctx.scope();
                #p::run_in(scope, async {
                    Self::__dispatch(state, ctx, message).await;
                    while let ::core::option::Option::Some(next) = ctx.take_continue() {
                        Self::__dispatch(state, ctx, next).await;
                    }
                }).await;
                ::core::result::Result::Ok(())
            }
        }
    };

    // The typed client.
    let methods = handlers.iter().map(|h| {
        let v = &h.variant;
        let m = &h.ident;
        let vis = &h.vis;
        let docs = &h.docs;
        let names: Vec<&Ident> = h.params.iter().map(|p| &p.name).collect();
        let tys = h.params.iter().map(|p| &p.ty);
        let span = h.ident.span();
        match h.kind {
            Kind::Cast => {
                let line = format!(
                    "Casts `{m}` to the actor: sends the message and returns without waiting. \
                     A return value of `Ok` does not mean the message will be handled: the actor \
                     may stop first."
                );
                let errors = format!(
                    "`SendError` with the message handed back: no such actor, \
                     the actor at the destination is not a `{base}`, or its node cannot be reached."
                );
                quote_spanned! {span=>
                    #(#docs)*
                    #[doc = ""]
                    #[doc = #line]
                    #[doc = ""]
                    #[doc = "# Errors"]
                    #[doc = #errors]
                    #vis async fn #m(&self, #(#names: #tys),*)
                        -> ::core::result::Result<(), #p::SendError<#msg #ty_g>>
                    {
                        self.system.cast(&self.dest, #msg #turbofish::#v(#(#names),*).__traced())
                            .map_err(|e| #p::SendError { kind: e.kind, message: e.message.map(#msg::__untraced) })
                    }
                }
            }
            Kind::Call => {
                let r = &h.reply;
                // A variant with only the reply port is its own constructor function.
                let build = quote!(move |__reply| #msg #turbofish::#v(#(#names,)* __reply, __caller).__traced());
                let default = match &h.timeout_ms {
                    Some(ms) => quote!(::core::time::Duration::from_millis(#ms)),
                    None => quote!(#p::DEFAULT_TIMEOUT),
                };
                let line = format!(
                    "Calls `{m}` on the actor and waits for its reply, as `GenServer.call`: up to \
                     the client's timeout (see `with_timeout`), else {}.",
                    match &h.timeout_ms {
                        Some(ms) => format!("{ms} ms"),
                        None => "5 s".to_string(),
                    }
                );
                quote_spanned! {span=>
                    #(#docs)*
                    #[doc = ""]
                    #[doc = #line]
                    #[doc = ""]
                    #[doc = "# Errors"]
                    #[doc = "`CallError`: not delivered, no reply in time, or the actor stopped without replying."]
                    #vis async fn #m(&self, #(#names: #tys),*)
                        -> ::core::result::Result<#r, #p::CallError>
                    {
                        let timeout = self.timeout.unwrap_or(#default);
                        let __caller = #p::Caller::current(&self.system);
                        self.system.call(&self.dest, #build, timeout).await
                    }
                }
            }
        }
    });
    let client_doc = format!(
        "A typed client of the {base_doc} actor at a `Destination`: one \
         method per handler. Generated by `#[nodus::actor]`.\n\n\
         The client goes through `System::cast` and \
         `System::call`, so it works the same for a name on this node, a \
         `(name, node)` pair and a pid; a destination on a node that cannot be reached answers \
         `NoConnection`. It is cheap to clone."
    );
    let client_def = quote! {
        #[doc = #client_doc]
        #[allow(dead_code)]
        #vis struct #client #impl_g #where_c {
            system: #p::System,
            dest: #p::Destination,
            timeout: ::core::option::Option<::core::time::Duration>,
            _types: #phantom_ty,
        }

        impl #impl_g ::core::clone::Clone for #client #ty_g #where_c {
            fn clone(&self) -> Self {
                Self {
                    system: ::core::clone::Clone::clone(&self.system),
                    dest: ::core::clone::Clone::clone(&self.dest),
                    timeout: self.timeout,
                    _types: ::core::marker::PhantomData,
                }
            }
        }

        impl #impl_g ::core::fmt::Debug for #client #ty_g #where_c {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#client))
                    .field("dest", &self.dest)
                    .field("timeout", &self.timeout)
                    .finish_non_exhaustive()
            }
        }

        #[allow(dead_code)]
        impl #impl_g #client #ty_g #where_c {
            /// A client of the actor at `dest`, sending through `system`. Nothing is checked
            /// until the first message: a wrong destination answers then.
            #vis fn new(system: &#p::System, dest: impl ::core::convert::Into<#p::Destination>) -> Self {
                Self {
                    system: ::core::clone::Clone::clone(system),
                    dest: dest.into(),
                    timeout: ::core::option::Option::None,
                    _types: ::core::marker::PhantomData,
                }
            }

            /// Where the messages go.
            #vis fn destination(&self) -> &#p::Destination {
                &self.dest
            }

            /// The same client with `timeout` for every call (instead of each call's default,
            /// 5 s unless its handler says `#[call(timeout_ms = ..)]`).
            #[must_use]
            #vis fn with_timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.timeout = ::core::option::Option::Some(timeout);
                self
            }

            /// The timeout set with `with_timeout`, if any.
            #vis fn timeout(&self) -> ::core::option::Option<::core::time::Duration> {
                self.timeout
            }

            #(#methods)*
        }
    };

    let wire_name = args
        .name
        .as_ref()
        .map_or_else(|| base.to_string(), LitStr::value);
    let remote = args
        .remote
        .then(|| remote_impl(&handlers, &msg, &generics, &base_doc, &wire_name));
    // A non-generic message type is registered at link time, on every node of the program;
    // a generic one has no single instance to register there, so `spawn` and `register_remote`
    // register the instance used, at run time.
    let link = (remote.is_some() && !has_params).then(|| {
        quote! {
            const _: () = {
                // Probed, not required: a handler type that is not serde is reported once, by
                // the `RemoteMessage` impl, and not again here.
                fn __nodus_link() -> ::core::option::Option<#p::RemoteEntry> {
                    use #p::{ProbeOther as _, ProbeRemote as _};
                    (&#p::Probe::<#msg>::new()).entry()
                }
                #p::__inventory::submit! { #p::LinkedRemoteMessage::probed(__nodus_link) }
            };
        }
    });
    let runtime_registration = remote.is_some() && has_params;
    let (register_on_spawn, spawn_bound) = if remote.is_some() {
        (
            runtime_registration.then(|| quote!(system.register_remote_message::<#msg #ty_g>();)),
            // Higher-ranked so that the bound is checked where `spawn` is used, not here: a
            // handler type that is not serde is reported once, at that type.
            Some(quote!(where for<'__nodus> #msg #ty_g: #p::RemoteMessage)),
        )
    } else {
        (None, None)
    };
    let spawn_remote_doc = runtime_registration.then(|| {
        quote! {
            ///
            /// The message type (generic, so not registered at link time) is registered for
            /// remote messaging on `system`; a node that sends to the actor must call
            /// `register_remote` for the same instance.
        }
    });

    // Constructors on the state type.
    let spawn_doc = format!(
        "Spawns the {base_doc} actor with `state` as its initial state, unsupervised, registered \
         as `name` if one is given, and returns a client addressed to its pid."
    );
    let client_fn_doc = format!(
        "A client of the {base_doc} actor at `dest`: a name on this node, a `(name, node)` pair \
         or a pid."
    );
    let spec_doc = format!(
        "A child spec that starts the {base_doc} actor with `state` (cloned for every restart), \
         for a `Supervisor` or `System::start_child`. \
         Chain `.name(..)` to register it, `.restart(..)` and `.shutdown(..)` as for any child."
    );
    let ctors = quote! {
        #[allow(dead_code)]
        impl #impl_g #self_ty #where_c {
            #[doc = #spawn_doc]
            #spawn_remote_doc
            ///
            /// # Errors
            /// `SpawnError` if the name is taken or the actor fails to start.
            #vis async fn spawn(
                system: &#p::System,
                name: ::core::option::Option<&str>,
                state: Self,
            ) -> ::core::result::Result<#client #ty_g, #p::SpawnError>
            #spawn_bound
            {
                #register_on_spawn
                let (actor, _handle) = system
                    .spawn(
                        name,
                        <#actor #ty_g as ::core::default::Default>::default(),
                        (state, system.downgrade()),
                    )
                    .await?;
                let pid = system.pid_of(&actor.get_cell());
                ::core::result::Result::Ok(#client::new(system, pid))
            }

            #[doc = #client_fn_doc]
            #vis fn client(
                system: &#p::System,
                dest: impl ::core::convert::Into<#p::Destination>,
            ) -> #client #ty_g {
                #client::new(system, dest)
            }

            #[doc = #spec_doc]
            #vis fn child_spec(id: impl ::core::convert::Into<::std::string::String>, state: Self) -> #p::ChildSpec
            where
                for<'__nodus> Self: ::core::clone::Clone + ::core::marker::Sync,
            {
                #p::ChildSpec::with_node_args(
                    id,
                    <#actor #ty_g as ::core::default::Default>::default(),
                    move |system: &#p::System| (::core::clone::Clone::clone(&state), system.downgrade()),
                )
            }
        }
    };

    let register = runtime_registration.then(|| {
        let doc = format!(
            "Registers this instance of [`{msg}`] for remote messaging on `system`: a generic \
             message type is not registered at link time, so this is needed on every node that \
             sends to a {base_doc} actor on another node, and on the node that runs one (`spawn` \
             does it there; `child_spec` does not). Every instance has the wire name \
             `{wire_name:?}`: one instance per program can be remote."
        );
        quote! {
            #[allow(dead_code)]
            impl #impl_g #self_ty #where_c {
                #[doc = #doc]
                #vis fn register_remote(system: &#p::System)
                where
                    for<'__nodus> #msg #ty_g: #p::RemoteMessage,
                {
                    system.register_remote_message::<#msg #ty_g>();
                }
            }
        }
    });

    Ok(quote! {
        #imp
        #msg_enum
        #actor_def
        #client_def
        #ctors
        #remote
        #link
        #register
    })
}

/// `ty: Serialize + DeserializeOwned`, every token at `ty`'s span so that an error points at
/// the user's type (an interpolated path would keep the macro's span).
fn serde_bound(ty: &Type) -> syn::WherePredicate {
    parse_quote_spanned! {ty.span()=>
        #ty: ::nodus::__private::serde::Serialize + ::nodus::__private::serde::de::DeserializeOwned
    }
}

/// `impl RemoteMessage` for the message enum, for `#[actor(remote)]`: each variant is its index
/// and the tuple of its arguments; a call's reply port becomes a reply bridge.
fn remote_impl(
    handlers: &[Handler],
    msg: &Ident,
    generics: &Generics,
    base_doc: &str,
    wire_name: &str,
) -> TokenStream {
    let p = quote!(::nodus::__private);
    let (impl_g, ty_g, _) = generics.split_for_impl();
    let mut g = generics.clone();
    let wc = g.make_where_clause();
    // Every argument and reply must be serde; each bound points at the user's type.
    for h in handlers {
        for param in &h.params {
            let ty = &param.ty;
            wc.predicates.push(serde_bound(ty));
        }
        if h.kind == Kind::Call {
            let r = &h.reply;
            wc.predicates.push(serde_bound(r));
        }
    }
    let where_c = &g.where_clause;
    let name = msg.to_string();
    let has_params = generics.type_params().next().is_some();
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    for (i, h) in handlers.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let v = &h.variant;
        let names: Vec<&Ident> = h.params.iter().map(|p| &p.name).collect();
        let tys: Vec<&Type> = h.params.iter().map(|p| &p.ty).collect();
        let handler = h.ident.to_string();
        match h.kind {
            Kind::Cast => {
                encode_arms.push(quote! {
                    #msg::#v(#(#names,)*) => #p::Wire::cast(#p::remote::encode(#index, &(#(&#names,)*))?),
                });
                let why = format!("`{handler}` is a cast, but it came with a reply port");
                decode_arms.push(quote! {
                    (#index, ::core::option::Option::None) => {
                        let (#(#names,)*): (#(#tys,)*) = #p::remote::args(&__args)?;
                        ::core::result::Result::Ok(#msg::#v(#(#names,)*))
                    }
                    (#index, ::core::option::Option::Some(_)) => {
                        ::core::result::Result::Err(#p::remote::bad(#name, ::std::string::String::from(#why)))
                    }
                });
            }
            Kind::Call => {
                encode_arms.push(quote! {
                    #msg::#v(#(#names,)* __reply, __caller) => #p::Wire::call(
                        #p::remote::encode(#index, &((#(&#names,)*), &__caller))?,
                        #p::bridge_reply(__reply),
                    ),
                });
                let why = format!("`{handler}` is a call, but it came without a reply port");
                decode_arms.push(quote! {
                    (#index, ::core::option::Option::Some(__sink)) => {
                        let ((#(#names,)*), __caller): ((#(#tys,)*), #p::Caller) = #p::remote::args(&__args)?;
                        ::core::result::Result::Ok(#msg::#v(#(#names,)* #p::reply_port(__sink), __caller))
                    }
                    (#index, ::core::option::Option::None) => {
                        ::core::result::Result::Err(#p::remote::bad(#name, ::std::string::String::from(#why)))
                    }
                });
            }
        }
    }
    let phantom_arm = has_params.then(|| quote!(#msg::__Phantom(_, never) => match never {},));
    let doc = format!(
        "Generated by `#[nodus::actor(remote)]`: a message to a {base_doc} actor on another \
         node is its variant's index and the tuple of its arguments, under the wire name \
         `{wire_name:?}`."
    );
    quote! {
        #[doc = #doc]
        impl #impl_g #p::RemoteMessage for #msg #ty_g #where_c {
            const NAME: &'static str = #wire_name;

            #[allow(unreachable_code)]
            fn to_wire(self) -> ::core::result::Result<#p::Wire, #p::codec::CodecError> {
                ::core::result::Result::Ok(match self {
                    #(#encode_arms)*
                    #msg::__Traced(_, inner) => return #p::RemoteMessage::to_wire(*inner),
                    #msg::__Info(_) => {
                        return ::core::result::Result::Err(#p::remote::bad(
                            #name,
                            ::std::string::String::from("an `Info` is for the actor's own node; it never crosses nodes"),
                        ))
                    }
                    #phantom_arm
                })
            }

            fn from_wire(
                payload: &[u8],
                reply: ::core::option::Option<#p::ReplySink>,
            ) -> ::core::result::Result<Self, #p::codec::CodecError> {
                let (__index, __args) = #p::remote::split(payload)?;
                let __message: ::core::result::Result<Self, #p::codec::CodecError> = match (__index, reply) {
                    #(#decode_arms)*
                    (__index, _) => ::core::result::Result::Err(#p::remote::bad(
                        #name,
                        ::std::format!("no handler has index {__index}"),
                    )),
                };
                // Delivered from another node in a trace: the handler runs in it.
                __message.map(#msg::__traced)
            }
        }
    }
}
