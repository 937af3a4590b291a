//! Node names: `name@host`, with the BEAM's rules for short and long names.

use std::{cmp::Ordering, fmt, str::FromStr, sync::Arc};

/// The name of a node, `name@host`, as the BEAM writes it.
///
/// [`NodeName::parse`] applies the BEAM's rules: the part before `@` is one or more of
/// `A-Z a-z 0-9 _ -`, and the host is not empty. Whether the host fits *short* names (no
/// dot, as `hoge@localhost`) or *long* names (a dot or an IP address, as `a@host.example.com`
/// or `a@127.0.0.1`) is a separate check, [`NodeName::check_mode`], because a node decides
/// which mode it runs in.
///
/// A destination such as `("Chat.TaskSupervisor", "kate@localhost")` converts its node part
/// without validation, as a BEAM atom would: a malformed node name is simply a node nobody
/// can connect to, and operations on it fail with `NoConnection`.
///
/// ```
/// use actor_core::{NodeName, NameMode};
/// let n = NodeName::parse("hoge@localhost")?;
/// assert_eq!((n.name(), n.host()), ("hoge", "localhost"));
/// assert!(n.check_mode(NameMode::Short).is_ok());
/// assert!(NodeName::parse("a.b@localhost").is_err());
/// assert!(NodeName::parse("x@vm.example.com")?.check_mode(NameMode::Short).is_err());
/// # Ok::<(), actor_core::NodeNameError>(())
/// ```
///
/// Names made by [`NodeName::parse`] (and so every name decoded from a peer) are shared:
/// every copy of one name in the process points at one allocation, whichever peer list or
/// handshake it came from. A node holds its peers' names in several ordered maps, and a
/// mesh of a thousand nodes in one process decodes some twenty million names; shared,
/// they cost no allocation each, and a lookup compares text that is already in the cache
/// (equal names compare by pointer). Names nobody holds any more are dropped from the
/// table as it grows, so it stays within twice the names in use.
#[derive(Clone, Eq)]
pub struct NodeName(Arc<str>);

impl PartialEq for NodeName {
    /// By text; a shared name (see [`NodeName::parse`]) is equal to itself by pointer, without
    /// reading its text (`Arc<str>`'s own equality always compares the text). A hash map
    /// keyed by names then finds a name it holds without touching either copy's text: in the
    /// maps of a thousand peers that a node of a large mesh keeps, that text is rarely in
    /// the cache.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for NodeName {
    /// The text's hash, as `str`'s (maps keyed by names are searched with a `&str` too).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Which kind of host part a node's name uses, as `erl -sname` and `erl -name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameMode {
    /// `-sname`: the host has no dot (`hoge@localhost`).
    Short,
    /// `-name`: the host is fully qualified or an IP address (`a@h.example.com`, `a@127.0.0.1`);
    /// `localhost` is accepted too, as the BEAM does.
    Long,
}

/// A node name broke the BEAM's naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeNameError {
    /// The text has no `@`, or nothing after it.
    #[error("invalid node name {given:?}: expected name@host, for example hoge@localhost")]
    MissingHost {
        /// The text given.
        given: String,
    },
    /// The part before `@` is empty or has a character outside `A-Z a-z 0-9 _ -`.
    #[error(
        "invalid node name {given:?}: the part before @ may only use letters, digits, '_' and '-'"
    )]
    InvalidName {
        /// The text given.
        given: String,
    },
    /// The name is longer than the BEAM allows (an atom holds at most 255 characters).
    #[error("invalid node name ({len} bytes): a node name is at most {max} bytes, as a BEAM atom; use a shorter name or host")]
    TooLong {
        /// Its length, in bytes.
        len: usize,
        /// The limit, [`NodeName::MAX_LEN`].
        max: usize,
    },
    /// The host part has characters a host name cannot have.
    #[error("invalid node name {given:?}: the host part is not a host name or IP address")]
    InvalidHost {
        /// The text given.
        given: String,
    },
    /// A short name was given a fully qualified host.
    #[error("can't set short node name {given:?}: the host has a dot; use a long name (--name) or a host without dots")]
    NotShort {
        /// The text given.
        given: String,
    },
    /// A long name was given a host without a domain.
    #[error("can't set long node name {given:?}: the host needs a domain or must be an IP address; use a short name (--sname) or a fully qualified host")]
    NotLong {
        /// The text given.
        given: String,
    },
}

impl NodeName {
    /// The name of a node that is not alive, as the BEAM's `nonode@nohost`.
    pub const NONODE: &'static str = "nonode@nohost";

    /// The longest node name, in bytes: a BEAM atom holds at most 255 characters, so a
    /// longer name could never be a node's on the BEAM either.
    pub const MAX_LEN: usize = 255;

    /// Parses and validates `text` as `name@host`.
    ///
    /// # Errors
    /// [`NodeNameError`] saying which part is wrong.
    pub fn parse(text: &str) -> Result<Self, NodeNameError> {
        if text.len() > Self::MAX_LEN {
            // Checked first: the error does not copy a name that may be huge.
            return Err(NodeNameError::TooLong {
                len: text.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(name) = shared::get(text) {
            return Ok(Self(name)); // checked when it was added
        }
        Self::check(text)
    }

    /// Validates a name not in the shared table, and adds it.
    fn check(text: &str) -> Result<Self, NodeNameError> {
        let given = || text.to_string();
        let (name, host) = text
            .split_once('@')
            .ok_or_else(|| NodeNameError::MissingHost { given: given() })?;
        if host.is_empty() {
            return Err(NodeNameError::MissingHost { given: given() });
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(NodeNameError::InvalidName { given: given() });
        }
        let host_ok = host.parse::<std::net::IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !host_ok || host.starts_with('.') || host.ends_with('.') {
            return Err(NodeNameError::InvalidHost { given: given() });
        }
        Ok(Self(shared::insert(text)))
    }

    /// The name of a node that is not alive, `nonode@nohost`.
    pub fn nonode() -> Self {
        Self(Self::NONODE.into())
    }

    /// Wraps `text` without validation. Used for destinations, where a malformed name is a
    /// node that cannot be reached.
    pub fn unchecked(text: &str) -> Self {
        Self(text.into())
    }

    /// Checks that the host part fits `mode`.
    ///
    /// # Errors
    /// [`NodeNameError::NotShort`] or [`NodeNameError::NotLong`].
    pub fn check_mode(&self, mode: NameMode) -> Result<(), NodeNameError> {
        let host = self.host();
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        match mode {
            NameMode::Short if host.contains('.') || (is_ip && host.contains(':')) => {
                Err(NodeNameError::NotShort {
                    given: self.to_string(),
                })
            }
            NameMode::Long if !(host.contains('.') || is_ip || host == "localhost") => {
                Err(NodeNameError::NotLong {
                    given: self.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The mode this name's host fits best: long when the host has a dot or is an IP address.
    pub fn mode(&self) -> NameMode {
        let host = self.host();
        if host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
            NameMode::Long
        } else {
            NameMode::Short
        }
    }

    /// The part before `@`.
    pub fn name(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(n, _)| n)
    }

    /// The part after `@` (empty for an unchecked name without one).
    pub fn host(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, h)| h)
    }

    /// The whole name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = NodeNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Ord for NodeName {
    /// By text; a shared name (see [`NodeName::parse`]) compares equal to itself by pointer.
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for NodeName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The table of shared names ([`NodeName::parse`]): checked names by text, in shards (two
/// threads decoding peer lists rarely wait for each other). A shard drops the names only it
/// still holds once it has twice as many as after its last sweep, so its size stays within
/// twice the names in use (and at least [`SWEEP_MIN`](shared::SWEEP_MIN)), at an amortised
/// constant cost per name added.
mod shared {
    use std::{
        collections::HashSet,
        sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError},
    };

    const SHARDS: usize = 16;
    /// A shard is swept only once it holds this many names.
    pub(super) const SWEEP_MIN: usize = 256;

    #[derive(Default)]
    struct Shard {
        names: HashSet<Arc<str>>,
        /// The size at which the shard is swept next.
        sweep_at: usize,
    }

    static TABLE: LazyLock<[Mutex<Shard>; SHARDS]> =
        LazyLock::new(|| std::array::from_fn(|_| Mutex::default()));

    fn shard(text: &str) -> MutexGuard<'static, Shard> {
        // FNV-1a: names that differ anywhere go to different shards, at a few cycles a byte.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        TABLE[(hash % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared copy of `text`, if it is in the table.
    pub(super) fn get(text: &str) -> Option<Arc<str>> {
        shard(text).names.get(text).cloned()
    }

    /// The shared copy of `text`, added if it is not in the table (`text` was checked).
    pub(super) fn insert(text: &str) -> Arc<str> {
        let mut shard = shard(text);
        if let Some(name) = shard.names.get(text) {
            return name.clone();
        }
        if shard.names.len() >= shard.sweep_at.max(SWEEP_MIN) {
            // Only the table holds these: nobody can take a copy meanwhile (that needs this
            // lock, or a copy).
            shard.names.retain(|name| Arc::strong_count(name) > 1);
            shard.sweep_at = shard.names.len() * 2;
        }
        let name: Arc<str> = text.into();
        shard.names.insert(name.clone());
        name
    }

    /// How many names the table holds (for tests).
    #[cfg(test)]
    pub(super) fn len() -> usize {
        TABLE
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).names.len())
            .sum()
    }
}

/// A name's text: maps keyed by [`NodeName`] can be searched with a `&str` (equality, order
/// and hash are the text's).
impl std::borrow::Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl serde::Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(NameVisitor)
    }
}

/// Parses a name from the text the deserializer has, borrowed or not, without a `String`
/// in between: a peer list of a thousand names decodes with one allocation per name (the
/// name's own), not two.
struct NameVisitor;

impl serde::de::Visitor<'_> for NameVisitor {
    type Value = NodeName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node name, name@host")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<NodeName, E> {
        NodeName::parse(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_names_share_one_copy_and_unused_ones_are_dropped() {
        let a = NodeName::parse("shared-one@localhost").unwrap();
        let b = NodeName::parse("shared-one@localhost").unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0), "one allocation for one name");
        assert_eq!(a.cmp(&b), Ordering::Equal);
        // Order and equality are the text's, shared or not.
        let c = NodeName::unchecked("shared-one@localhost");
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        assert_eq!((a == c, a.cmp(&c)), (true, Ordering::Equal));
        let d = NodeName::parse("shared-two@localhost").unwrap();
        assert_eq!(a.cmp(&d), "shared-one".cmp("shared-two"));
        // A name that is not valid is not added, and stays an error.
        assert!(NodeName::parse("not valid@localhost").is_err());
        assert!(NodeName::parse("not valid@localhost").is_err());
        // Many names made and dropped: the table keeps at most twice those in use (here a
        // few, from this and other tests running at once) plus a sweep's minimum per shard.
        for i in 0..20_000 {
            let _ = NodeName::parse(&format!("churn{i}@localhost")).unwrap();
        }
        let held = shared::len();
        assert!(
            held <= 16 * 2 * shared::SWEEP_MIN,
            "the table holds {held} names after 20,000 were dropped"
        );
        // Names still held survive the sweeps, and stay shared.
        let again = NodeName::parse("shared-one@localhost").unwrap();
        assert!(Arc::ptr_eq(&a.0, &again.0));
    }

    #[test]
    fn beam_rules() {
        for ok in [
            "a-b_c1@vm",
            "1a@vm",
            "y@127.0.0.1",
            "y@localhost",
            "a@h.example.com",
        ] {
            assert!(NodeName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a.b@vm", "a+b@vm", "ä@vm", "@vm", "x", "x@", "x@h st", "x@.h",
        ] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
        let long = NodeName::parse("x@vm.example.com").unwrap();
        assert!(matches!(
            long.check_mode(NameMode::Short),
            Err(NodeNameError::NotShort { .. })
        ));
        assert!(long.check_mode(NameMode::Long).is_ok());
        let short = NodeName::parse("y@vm").unwrap();
        assert!(matches!(
            short.check_mode(NameMode::Long),
            Err(NodeNameError::NotLong { .. })
        ));
        assert!(NodeName::parse("y@localhost")
            .unwrap()
            .check_mode(NameMode::Long)
            .is_ok());
        assert_eq!(
            NodeName::parse("y@127.0.0.1").unwrap().mode(),
            NameMode::Long
        );
    }

    #[test]
    fn names_are_capped_at_255_bytes_as_beam_atoms() {
        let host = "localhost";
        let at_limit = format!("{}@{host}", "n".repeat(NodeName::MAX_LEN - 1 - host.len()));
        assert_eq!(at_limit.len(), 255);
        assert!(NodeName::parse(&at_limit).is_ok());
        let over = format!("n{at_limit}");
        assert_eq!(
            NodeName::parse(&over),
            Err(NodeNameError::TooLong { len: 256, max: 255 })
        );
        // A 60,000-byte name off the wire is refused, not kept.
        let huge = format!("{}@vm", "a".repeat(60_000));
        let encoded = through_serde(&huge);
        assert!(encoded.is_err());
    }

    /// Deserializes a name through serde, as the wire does.
    fn through_serde(text: &str) -> Result<NodeName, String> {
        use serde::de::{value::StrDeserializer, IntoDeserializer};
        let d: StrDeserializer<'_, serde::de::value::Error> = text.into_deserializer();
        serde::Deserialize::deserialize(d).map_err(|e: serde::de::value::Error| e.to_string())
    }
}
