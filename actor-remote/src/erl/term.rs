//! The typed mapping between Erlang terms ([`eetf::Term`]) and Rust values.
//!
//! | Erlang | Rust ([`FromTerm`]) | Rust ([`IntoTerm`]) |
//! |---|---|---|
//! | integer | `i64`, `i32`, `u32` | `i64`, `i32`, `u32`, `usize` |
//! | `true`/`false` | `bool` | `bool` |
//! | atom | [`Atom`] | [`Atom`], `()` (`ok`) |
//! | binary, or a list of characters | `String` | `String`, `&str` (binary) |
//! | list | `Vec<T>` | `Vec<T>` |
//! | tuple of 2 or 3 | `(A, B)`, `(A, B, C)` | `(A, B)`, `(A, B, C)` |
//! | map | `HashMap<K, V>` | `HashMap<K, V>` |
//! | anything | [`eetf::Term`] | [`eetf::Term`] |
//!
//! Anything else is a [`TermError`] that says what was expected and what came.

use std::collections::HashMap;
use std::hash::Hash;

use eetf::Term;

/// A term that is not what the Rust side expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct TermError {
    /// What the Rust type accepts.
    pub expected: &'static str,
    /// The term that came, printed as Erlang prints it.
    pub got: String,
}

impl TermError {
    /// `term` is not an `expected`.
    pub fn new(expected: &'static str, term: &Term) -> Self {
        TermError {
            expected,
            got: term.to_string(),
        }
    }
}

/// An Erlang atom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Atom(pub String);

/// A Rust value made from an Erlang term.
pub trait FromTerm: Sized {
    /// The value `term` stands for.
    ///
    /// # Errors
    /// [`TermError`] if `term` is not one.
    fn from_term(term: Term) -> Result<Self, TermError>;
}

/// A Rust value sent to Erlang as a term.
pub trait IntoTerm {
    /// The term for this value.
    fn into_term(self) -> Term;
}

/// The atom `name` as a term.
pub fn atom(name: &str) -> Term {
    Term::Atom(eetf::Atom::from(name))
}

impl FromTerm for Term {
    fn from_term(term: Term) -> Result<Self, TermError> {
        Ok(term)
    }
}

impl IntoTerm for Term {
    fn into_term(self) -> Term {
        self
    }
}

impl FromTerm for i64 {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match &term {
            Term::FixInteger(i) => Ok(i64::from(i.value)),
            Term::BigInteger(b) => {
                i64::try_from(&b.value).map_err(|_| TermError::new("a 64-bit integer", &term))
            }
            _ => Err(TermError::new("an integer", &term)),
        }
    }
}

impl FromTerm for i32 {
    fn from_term(term: Term) -> Result<Self, TermError> {
        let wide = i64::from_term(term.clone())?;
        i32::try_from(wide).map_err(|_| TermError::new("a 32-bit integer", &term))
    }
}

impl FromTerm for u32 {
    fn from_term(term: Term) -> Result<Self, TermError> {
        let wide = i64::from_term(term.clone())?;
        u32::try_from(wide).map_err(|_| TermError::new("a non-negative 32-bit integer", &term))
    }
}

impl IntoTerm for i64 {
    fn into_term(self) -> Term {
        match i32::try_from(self) {
            Ok(small) => Term::FixInteger(eetf::FixInteger::from(small)),
            Err(_) => Term::BigInteger(eetf::BigInteger::from(self)),
        }
    }
}

impl IntoTerm for i32 {
    fn into_term(self) -> Term {
        Term::FixInteger(eetf::FixInteger::from(self))
    }
}

impl IntoTerm for u32 {
    fn into_term(self) -> Term {
        i64::from(self).into_term()
    }
}

impl IntoTerm for usize {
    fn into_term(self) -> Term {
        match i64::try_from(self) {
            Ok(v) => v.into_term(),
            Err(_) => Term::BigInteger(eetf::BigInteger::from(self as u64)),
        }
    }
}

impl FromTerm for bool {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match &term {
            Term::Atom(a) if a.name == "true" => Ok(true),
            Term::Atom(a) if a.name == "false" => Ok(false),
            _ => Err(TermError::new("true or false", &term)),
        }
    }
}

impl IntoTerm for bool {
    fn into_term(self) -> Term {
        atom(if self { "true" } else { "false" })
    }
}

impl IntoTerm for () {
    fn into_term(self) -> Term {
        atom("ok")
    }
}

impl FromTerm for Atom {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Atom(a) => Ok(Atom(a.name)),
            other => Err(TermError::new("an atom", &other)),
        }
    }
}

impl IntoTerm for Atom {
    fn into_term(self) -> Term {
        atom(&self.0)
    }
}

impl FromTerm for String {
    fn from_term(term: Term) -> Result<Self, TermError> {
        let bytes = match &term {
            Term::Binary(b) => b.bytes.clone(),
            Term::ByteList(l) => l.bytes.clone(),
            Term::List(l) if l.elements.is_empty() => Vec::new(),
            Term::List(l) => {
                let mut text = String::new();
                for e in &l.elements {
                    let c = u32::from_term(e.clone())
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| TermError::new("a string", &term))?;
                    text.push(c);
                }
                return Ok(text);
            }
            _ => return Err(TermError::new("a string (binary or list)", &term)),
        };
        String::from_utf8(bytes).map_err(|_| TermError::new("UTF-8 text", &term))
    }
}

impl IntoTerm for String {
    fn into_term(self) -> Term {
        Term::Binary(eetf::Binary::from(self.into_bytes()))
    }
}

impl IntoTerm for &str {
    fn into_term(self) -> Term {
        Term::Binary(eetf::Binary::from(self.as_bytes()))
    }
}

impl<T: FromTerm> FromTerm for Vec<T> {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::List(l) => l.elements.into_iter().map(T::from_term).collect(),
            // A list of small integers arrives as a byte list.
            Term::ByteList(l) => l
                .bytes
                .into_iter()
                .map(|b| T::from_term(Term::FixInteger(eetf::FixInteger::from(i32::from(b)))))
                .collect(),
            other => Err(TermError::new("a list", &other)),
        }
    }
}

impl<T: IntoTerm> IntoTerm for Vec<T> {
    fn into_term(self) -> Term {
        Term::List(eetf::List::from(
            self.into_iter()
                .map(IntoTerm::into_term)
                .collect::<Vec<_>>(),
        ))
    }
}

fn tuple(term: Term, arity: usize, expected: &'static str) -> Result<Vec<Term>, TermError> {
    match term {
        Term::Tuple(t) if t.elements.len() == arity => Ok(t.elements),
        other => Err(TermError::new(expected, &other)),
    }
}

impl<A: FromTerm, B: FromTerm> FromTerm for (A, B) {
    fn from_term(term: Term) -> Result<Self, TermError> {
        let mut e = tuple(term, 2, "a 2-tuple")?.into_iter();
        match (e.next(), e.next()) {
            (Some(a), Some(b)) => Ok((A::from_term(a)?, B::from_term(b)?)),
            _ => Err(TermError::new("a 2-tuple", &Term::from(eetf::Tuple::nil()))),
        }
    }
}

impl<A: FromTerm, B: FromTerm, C: FromTerm> FromTerm for (A, B, C) {
    fn from_term(term: Term) -> Result<Self, TermError> {
        let mut e = tuple(term, 3, "a 3-tuple")?.into_iter();
        match (e.next(), e.next(), e.next()) {
            (Some(a), Some(b), Some(c)) => {
                Ok((A::from_term(a)?, B::from_term(b)?, C::from_term(c)?))
            }
            _ => Err(TermError::new("a 3-tuple", &Term::from(eetf::Tuple::nil()))),
        }
    }
}

impl<A: IntoTerm, B: IntoTerm> IntoTerm for (A, B) {
    fn into_term(self) -> Term {
        Term::Tuple(eetf::Tuple::from(vec![
            self.0.into_term(),
            self.1.into_term(),
        ]))
    }
}

impl<A: IntoTerm, B: IntoTerm, C: IntoTerm> IntoTerm for (A, B, C) {
    fn into_term(self) -> Term {
        Term::Tuple(eetf::Tuple::from(vec![
            self.0.into_term(),
            self.1.into_term(),
            self.2.into_term(),
        ]))
    }
}

impl<K: FromTerm + Eq + Hash, V: FromTerm> FromTerm for HashMap<K, V> {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Map(m) => m
                .map
                .into_iter()
                .map(|(k, v)| Ok((K::from_term(k)?, V::from_term(v)?)))
                .collect(),
            other => Err(TermError::new("a map", &other)),
        }
    }
}

impl<K: IntoTerm, V: IntoTerm> IntoTerm for HashMap<K, V> {
    fn into_term(self) -> Term {
        Term::Map(eetf::Map::from(
            self.into_iter()
                .map(|(k, v)| (k.into_term(), v.into_term()))
                .collect::<HashMap<_, _>>(),
        ))
    }
}

/// A term as JSON, for the functions BEAM nodes run here with `erpc` (their arguments cross
/// as JSON into [`FunctionRegistry::call_json`](actor_core::FunctionRegistry)): integers and
/// floats are numbers, binaries (Elixir strings) and atoms other than `true`, `false`, `nil`
/// and `undefined` are strings (`true`/`false` are booleans, `nil`/`undefined` null), lists
/// and tuples are arrays, charlists are strings, maps whose keys are binaries or atoms are
/// objects.
///
/// # Errors
/// [`TermError`] for pids, ports, references, funs, bit strings, improper lists, maps with
/// other keys, binaries that are not UTF-8 and integers past 64 bits.
pub fn term_to_json(term: &Term) -> Result<serde_json::Value, TermError> {
    use serde_json::Value;
    Ok(match term {
        Term::Atom(a) => match a.name.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "nil" | "undefined" => Value::Null,
            other => Value::String(other.to_string()),
        },
        Term::FixInteger(i) => Value::from(i.value),
        Term::BigInteger(b) => {
            let shown = b.value.to_string();
            if let Ok(i) = shown.parse::<i64>() {
                Value::from(i)
            } else if let Ok(u) = shown.parse::<u64>() {
                Value::from(u)
            } else {
                return Err(TermError::new("an integer of at most 64 bits", term));
            }
        }
        Term::Float(f) => serde_json::Number::from_f64(f.value)
            .map(Value::Number)
            .ok_or_else(|| TermError::new("a finite float", term))?,
        Term::Binary(b) => Value::String(
            String::from_utf8(b.bytes.clone())
                .map_err(|_| TermError::new("a UTF-8 binary", term))?,
        ),
        Term::ByteList(l) => Value::String(
            String::from_utf8(l.bytes.clone())
                .map_err(|_| TermError::new("a UTF-8 charlist", term))?,
        ),
        Term::List(l) => Value::Array(
            l.elements
                .iter()
                .map(term_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Term::Tuple(t) => Value::Array(
            t.elements
                .iter()
                .map(term_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Term::Map(m) => {
            let mut object = serde_json::Map::new();
            for (k, v) in &m.map {
                let key = match k {
                    Term::Binary(b) => String::from_utf8(b.bytes.clone())
                        .map_err(|_| TermError::new("a UTF-8 map key", term))?,
                    Term::Atom(a) => a.name.clone(),
                    _ => return Err(TermError::new("a map with binary or atom keys", term)),
                };
                object.insert(key, term_to_json(v)?);
            }
            Value::Object(object)
        }
        _ => return Err(TermError::new("a term with a JSON form", term)),
    })
}

/// JSON as a term, for the results of the functions BEAM nodes run here: numbers are
/// integers (or floats), strings binaries, booleans `true`/`false`, null `nil`, arrays
/// lists and objects maps with binary keys (what Elixir expects of a decoded JSON value).
pub fn json_to_term(value: serde_json::Value) -> Term {
    use serde_json::Value;
    match value {
        Value::Null => atom("nil"),
        Value::Bool(b) => atom(if b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_term()
            } else if let Some(u) = n.as_u64() {
                Term::BigInteger(eetf::BigInteger::from(u))
            } else {
                Term::Float(
                    eetf::Float::try_from(n.as_f64().unwrap_or(0.0))
                        .unwrap_or(eetf::Float { value: 0.0 }),
                )
            }
        }
        Value::String(s) => Term::Binary(eetf::Binary::from(s.into_bytes())),
        Value::Array(a) => Term::List(eetf::List::from(
            a.into_iter().map(json_to_term).collect::<Vec<_>>(),
        )),
        Value::Object(o) => Term::Map(eetf::Map::from(
            o.into_iter()
                .map(|(k, v)| {
                    (
                        Term::Binary(eetf::Binary::from(k.into_bytes())),
                        json_to_term(v),
                    )
                })
                .collect::<std::collections::HashMap<_, _>>(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_mismatches_are_typed() {
        let t = (Atom("incr".into()), 5i64, "hi".to_string()).into_term();
        let (a, n, s) = <(Atom, i64, String)>::from_term(t).expect("maps back");
        assert_eq!((a.0.as_str(), n, s.as_str()), ("incr", 5, "hi"));
        assert_eq!(i64::from_term((1i64 << 40).into_term()), Ok(1i64 << 40));
        assert_eq!(
            Vec::<i64>::from_term(vec![1i64, 2].into_term()),
            Ok(vec![1, 2])
        );
        let err = i64::from_term(atom("nope")).expect_err("an atom is no integer");
        assert_eq!(err.expected, "an integer");
        assert!(<(i64, i64)>::from_term(atom("x")).is_err());
    }
}
