//! The epmd wire protocol, sans IO: requests and replies as values, and functions that turn
//! them into bytes and back.
//!
//! Every request is `Length(2)` + body; replies have no length prefix and their layout depends
//! on the request. All integers are big-endian. The layouts (checked against Erlang/OTP 25's
//! epmd with a raw socket):
//!
//! | Request | Body | Reply |
//! |---|---|---|
//! | `ALIVE2_REQ` (120) | PortNo(2) NodeType(1) Protocol(1) Highest(2) Lowest(2) Nlen(2) Name Elen(2) Extra | `ALIVE2_X_RESP` (118) Result(1) Creation(4); older epmds answer `ALIVE2_RESP` (121) Result(1) Creation(2) |
//! | `PORT_PLEASE2_REQ` (122) | Name (no inner length) | `PORT2_RESP` (119) Result(1), then if Result = 0 the ALIVE2 body |
//! | `NAMES_REQ` (110) | nothing | EpmdPort(4), then `name <n> at port <p>\n` per node, then close |
//!
//! # Decoding
//!
//! Decoders are incremental, like tokio-util's `Decoder`: given the bytes received so far they
//! return `Ok(None)` until a whole message is there, then the message and how many bytes it
//! used. They check every length against the input (and, for requests, against a maximum)
//! before allocating, and return a [`DecodeError`] rather than panic on any input.
//!
//! ```
//! use actor_remote::port_mapper::proto::{self, NodeInfo, NodeType, Request};
//! let req = Request::Alive2(NodeInfo::nodus("hoge", 4711, NodeType::NORMAL));
//! let mut bytes = Vec::new();
//! proto::encode_request(&req, &mut bytes)?;
//! assert_eq!(proto::decode_request(&bytes[..3], proto::MAX_REQUEST_LEN)?, None); // need more
//! assert_eq!(proto::decode_request(&bytes, proto::MAX_REQUEST_LEN)?, Some((req, bytes.len())));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// `ALIVE2_REQ`: register a node.
pub const ALIVE2_REQ: u8 = 120;
/// `ALIVE2_X_RESP`: the reply to `ALIVE2_REQ`, with a 4-byte creation.
pub const ALIVE2_X_RESP: u8 = 118;
/// `ALIVE2_RESP`: the old reply to `ALIVE2_REQ`, with a 2-byte creation.
pub const ALIVE2_RESP: u8 = 121;
/// `PORT_PLEASE2_REQ`: look a name up.
pub const PORT_PLEASE2_REQ: u8 = 122;
/// `PORT2_RESP`: the reply to `PORT_PLEASE2_REQ`.
pub const PORT2_RESP: u8 = 119;
/// `NAMES_REQ`: list the registered names.
pub const NAMES_REQ: u8 = 110;

/// The largest request body this module decodes by default, in bytes: epmd's own input
/// buffer size. A name is at most [`MAX_NAME_LEN`] bytes, so a real request is far smaller.
pub const MAX_REQUEST_LEN: usize = 1024;
/// The longest node name (the part before `@`) epmd accepts, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The protocol field of a registration: 0 is TCP/IPv4, the only value the BEAM uses.
pub const PROTOCOL_TCP_IPV4: u8 = 0;
/// The highest distribution protocol version nodus nodes announce (what an OTP 25 node sends).
pub const NODUS_HIGHEST_VERSION: u16 = 6;
/// The lowest distribution protocol version nodus nodes announce (what an OTP 25 node sends).
pub const NODUS_LOWEST_VERSION: u16 = 5;
/// The `extra` field nodus nodes register with, so nodus tools can tell nodus nodes from BEAM
/// nodes in a port mapper (BEAM nodes send an empty `extra`).
pub const NODUS_EXTRA: &[u8] = b"nodus";

/// The node type byte of a registration.
///
/// epmd stores it and hands it back; [`NodeType::NORMAL`] (77, `'M'`) is an ordinary node,
/// [`NodeType::HIDDEN`] (72, `'H'`) a hidden node or C node. Other values round-trip unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeType(pub u8);

impl NodeType {
    /// An ordinary node (77). The BEAM 25 sends it even for `-hidden` nodes.
    pub const NORMAL: NodeType = NodeType(77);
    /// A hidden node or C node (72).
    pub const HIDDEN: NodeType = NodeType(72);
}

/// What a node registers and what a lookup returns: the body of `ALIVE2_REQ` and of a
/// successful `PORT2_RESP`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The name before `@`, as registered.
    pub name: String,
    /// The TCP port the node listens on for distribution connections.
    pub port: u16,
    /// Normal or hidden.
    pub node_type: NodeType,
    /// The transport protocol, [`PROTOCOL_TCP_IPV4`] in practice.
    pub protocol: u8,
    /// The highest distribution protocol version the node speaks.
    pub highest_version: u16,
    /// The lowest distribution protocol version the node speaks.
    pub lowest_version: u16,
    /// Free-form bytes stored with the name; [`NODUS_EXTRA`] for nodus nodes.
    pub extra: Vec<u8>,
}

impl NodeInfo {
    /// What a nodus node registers: protocol 0, versions 6/5 (as an OTP 25 node) and an
    /// `extra` of [`NODUS_EXTRA`].
    pub fn nodus(name: impl Into<String>, port: u16, node_type: NodeType) -> Self {
        NodeInfo {
            name: name.into(),
            port,
            node_type,
            protocol: PROTOCOL_TCP_IPV4,
            highest_version: NODUS_HIGHEST_VERSION,
            lowest_version: NODUS_LOWEST_VERSION,
            extra: NODUS_EXTRA.to_vec(),
        }
    }

    /// Whether the node registered with nodus's `extra` marker.
    pub fn is_nodus(&self) -> bool {
        self.extra == NODUS_EXTRA
    }
}

/// A request to a port mapper.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Request {
    /// `ALIVE2_REQ`: register this node for as long as the connection stays open.
    Alive2(NodeInfo),
    /// `PORT_PLEASE2_REQ`: where does the node with this name listen?
    PortPlease2 {
        /// The name before `@`.
        name: String,
    },
    /// `NAMES_REQ`: list every registered name.
    Names,
}

/// The reply to `ALIVE2_REQ`, in either its current (`ALIVE2_X_RESP`) or old (`ALIVE2_RESP`)
/// form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alive2Reply {
    /// 0 on success; anything else is a refusal (1 for a name already registered).
    pub result: u8,
    /// The creation number the port mapper gave this incarnation of the node.
    pub creation: u32,
    /// Whether the reply came in the old 2-byte-creation form (`ALIVE2_RESP`).
    pub old_form: bool,
}

/// The reply to `PORT_PLEASE2_REQ`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortPleaseReply {
    /// The name is registered.
    Found(NodeInfo),
    /// The port mapper answered with a non-zero result (1: no such name).
    NotFound {
        /// The result byte.
        result: u8,
    },
}

/// The reply to `NAMES_REQ`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamesReply {
    /// The port the port mapper listens on.
    pub epmd_port: u32,
    /// Each registered name and its port, in the order the port mapper listed them.
    pub names: Vec<(String, u16)>,
}

/// Bytes that are not a valid epmd message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A request announced a body longer than the decoder accepts.
    #[error("epmd request of {len} bytes exceeds the limit of {max}; the peer is not speaking the epmd protocol, or sends a name longer than {MAX_NAME_LEN} bytes")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A request had a length of zero, so no request code.
    #[error("empty epmd request (length 0); the peer is not speaking the epmd protocol")]
    Empty,
    /// The first byte is not a request or reply this module knows.
    #[error("unknown epmd message code {code}; only ALIVE2 (120), PORT_PLEASE2 (122) and NAMES (110) are served")]
    UnknownCode {
        /// The code received.
        code: u8,
    },
    /// A field does not fit the announced length, or bytes are left over.
    #[error("malformed epmd message: {what}; the peer is not speaking the epmd protocol")]
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
    /// A name is not UTF-8.
    #[error("epmd node name is not UTF-8; node names are ASCII letters, digits, '_' and '-'")]
    NameNotUtf8,
}

/// What an incremental decoder returns: `Ok(None)` while more bytes are needed, then the
/// message and the number of bytes it used.
pub type Decoded<T> = Result<Option<(T, usize)>, DecodeError>;

/// A value that can't be put in an epmd message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The name is empty or longer than [`MAX_NAME_LEN`] bytes.
    #[error("node name of {len} bytes can't be registered: epmd takes 1 to {MAX_NAME_LEN} bytes; pick a shorter name")]
    BadNameLength {
        /// The name's length.
        len: usize,
    },
    /// The whole message is too long for its 2-byte length fields.
    #[error(
        "epmd message of {len} bytes exceeds {max} bytes; shorten the name or the extra field"
    )]
    TooLong {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

fn check_name(name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(EncodeError::BadNameLength { len: name.len() });
    }
    Ok(())
}

/// Appends the shared ALIVE2 / PORT2 body for `info`.
fn encode_node_info(info: &NodeInfo, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_name(&info.name)?;
    let elen = u16::try_from(info.extra.len()).map_err(|_| EncodeError::TooLong {
        len: info.extra.len(),
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&info.port.to_be_bytes());
    out.push(info.node_type.0);
    out.push(info.protocol);
    out.extend_from_slice(&info.highest_version.to_be_bytes());
    out.extend_from_slice(&info.lowest_version.to_be_bytes());
    // check_name bounds the name to 255 bytes.
    out.extend_from_slice(&(info.name.len() as u16).to_be_bytes());
    out.extend_from_slice(info.name.as_bytes());
    out.extend_from_slice(&elen.to_be_bytes());
    out.extend_from_slice(&info.extra);
    Ok(())
}

/// Appends `req`, with its 2-byte length prefix, to `out`.
///
/// # Errors
///
/// [`EncodeError`] if a name is empty or over [`MAX_NAME_LEN`] bytes, or the request does not
/// fit its 2-byte length. `out` is left unchanged then.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let body = match req {
        Request::Alive2(info) => {
            out.push(ALIVE2_REQ);
            encode_node_info(info, out)
        }
        Request::PortPlease2 { name } => {
            out.push(PORT_PLEASE2_REQ);
            check_name(name).map(|()| out.extend_from_slice(name.as_bytes()))
        }
        Request::Names => {
            out.push(NAMES_REQ);
            Ok(())
        }
    };
    let len = out.len() - start - 2;
    let result = body.and_then(|()| {
        u16::try_from(len).map_err(|_| EncodeError::TooLong {
            len,
            max: usize::from(u16::MAX),
        })
    });
    match result {
        Ok(len) => {
            out[start..start + 2].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// A cursor over a byte slice whose reads report running out of input as `None`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }
}

fn name_from(bytes: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| DecodeError::NameNotUtf8)
}

/// Reads the shared ALIVE2 / PORT2 body; `None` if the input ends first.
fn decode_node_info(r: &mut Reader<'_>) -> Result<Option<NodeInfo>, DecodeError> {
    let fixed = (|| Some((r.u16()?, r.u8()?, r.u8()?, r.u16()?, r.u16()?, r.u16()?)))();
    let Some((port, node_type, protocol, highest_version, lowest_version, nlen)) = fixed else {
        return Ok(None);
    };
    let Some(name) = r.bytes(usize::from(nlen)) else {
        return Ok(None);
    };
    let Some(elen) = r.u16() else {
        return Ok(None);
    };
    let Some(extra) = r.bytes(usize::from(elen)) else {
        return Ok(None);
    };
    Ok(Some(NodeInfo {
        name: name_from(name)?,
        port,
        node_type: NodeType(node_type),
        protocol,
        highest_version,
        lowest_version,
        extra: extra.to_vec(),
    }))
}

/// Decodes one request (with its length prefix) from the start of `buf`.
///
/// Returns `Ok(None)` until the whole request is there, then the request and the number of
/// bytes it used. A length over `max_len` is refused as soon as the prefix is read.
///
/// # Errors
///
/// [`DecodeError`] for an oversized, empty, unknown or malformed request.
pub fn decode_request(buf: &[u8], max_len: usize) -> Decoded<Request> {
    let mut r = Reader::new(buf);
    let Some(len) = r.u16() else {
        return Ok(None);
    };
    let len = usize::from(len);
    if len > max_len {
        return Err(DecodeError::TooLong { len, max: max_len });
    }
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    let Some(body) = r.bytes(len) else {
        return Ok(None);
    };
    let mut b = Reader::new(body);
    let code = b.u8().ok_or(DecodeError::Empty)?;
    let req = match code {
        ALIVE2_REQ => {
            let info = decode_node_info(&mut b)?.ok_or(DecodeError::Malformed {
                what: "ALIVE2_REQ shorter than its fields",
            })?;
            if !b.rest().is_empty() {
                return Err(DecodeError::Malformed {
                    what: "bytes after the ALIVE2_REQ extra field",
                });
            }
            Request::Alive2(info)
        }
        PORT_PLEASE2_REQ => Request::PortPlease2 {
            name: name_from(b.rest())?,
        },
        NAMES_REQ => {
            if !b.rest().is_empty() {
                return Err(DecodeError::Malformed {
                    what: "bytes after NAMES_REQ",
                });
            }
            Request::Names
        }
        code => return Err(DecodeError::UnknownCode { code }),
    };
    Ok(Some((req, 2 + len)))
}

/// Appends an `ALIVE2_X_RESP` (always the current form) to `out`.
pub fn encode_alive2_reply(reply: &Alive2Reply, out: &mut Vec<u8>) {
    out.push(ALIVE2_X_RESP);
    out.push(reply.result);
    out.extend_from_slice(&reply.creation.to_be_bytes());
}

/// Decodes an `ALIVE2_X_RESP` or old `ALIVE2_RESP` from the start of `buf`.
///
/// Returns `Ok(None)` until the whole reply is there.
///
/// # Errors
///
/// [`DecodeError::UnknownCode`] if the first byte is neither reply code.
pub fn decode_alive2_reply(buf: &[u8]) -> Decoded<Alive2Reply> {
    let mut r = Reader::new(buf);
    let Some(code) = r.u8() else {
        return Ok(None);
    };
    let old_form = match code {
        ALIVE2_X_RESP => false,
        ALIVE2_RESP => true,
        code => return Err(DecodeError::UnknownCode { code }),
    };
    let Some(result) = r.u8() else {
        return Ok(None);
    };
    let creation = if old_form {
        r.u16().map(u32::from)
    } else {
        r.u32()
    };
    Ok(creation.map(|creation| {
        (
            Alive2Reply {
                result,
                creation,
                old_form,
            },
            r.pos,
        )
    }))
}

/// Appends a `PORT2_RESP` to `out`.
///
/// # Errors
///
/// [`EncodeError`] if the found node's name or extra field can't be encoded; `out` is left
/// unchanged then.
pub fn encode_port_please_reply(
    reply: &PortPleaseReply,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.push(PORT2_RESP);
    match reply {
        PortPleaseReply::Found(info) => {
            out.push(0);
            encode_node_info(info, out).inspect_err(|_| out.truncate(start))
        }
        PortPleaseReply::NotFound { result } => {
            // A result of 0 would announce a body; never write that without one.
            out.push((*result).max(1));
            Ok(())
        }
    }
}

/// Decodes a `PORT2_RESP` from the start of `buf`.
///
/// Returns `Ok(None)` until the whole reply is there.
///
/// # Errors
///
/// [`DecodeError`] if the first byte is not `PORT2_RESP` or the name is not UTF-8.
pub fn decode_port_please_reply(buf: &[u8]) -> Decoded<PortPleaseReply> {
    let mut r = Reader::new(buf);
    let Some(code) = r.u8() else {
        return Ok(None);
    };
    if code != PORT2_RESP {
        return Err(DecodeError::UnknownCode { code });
    }
    let Some(result) = r.u8() else {
        return Ok(None);
    };
    if result != 0 {
        return Ok(Some((PortPleaseReply::NotFound { result }, r.pos)));
    }
    Ok(decode_node_info(&mut r)?.map(|info| (PortPleaseReply::Found(info), r.pos)))
}

/// Appends a `NAMES_REQ` reply to `out`: the port mapper's port, then one
/// `name <n> at port <p>\n` line per name, the format `epmd -names` prints.
pub fn encode_names_reply(reply: &NamesReply, out: &mut Vec<u8>) {
    out.extend_from_slice(&reply.epmd_port.to_be_bytes());
    for (name, port) in &reply.names {
        out.extend_from_slice(format!("name {name} at port {port}\n").as_bytes());
    }
}

/// Decodes a complete `NAMES_REQ` reply: call it once the port mapper has closed the
/// connection, with everything it sent.
///
/// Returns `Ok(None)` if fewer than the 4 port bytes arrived. A final line without its `\n`
/// is accepted.
///
/// # Errors
///
/// [`DecodeError::Malformed`] if a line is not `name <n> at port <p>`.
pub fn decode_names_reply(buf: &[u8]) -> Result<Option<NamesReply>, DecodeError> {
    let mut r = Reader::new(buf);
    let Some(epmd_port) = r.u32() else {
        return Ok(None);
    };
    let text = std::str::from_utf8(r.rest()).map_err(|_| DecodeError::Malformed {
        what: "NAMES reply is not UTF-8 text",
    })?;
    let mut names = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let parsed = line
            .strip_prefix("name ")
            .and_then(|l| l.rsplit_once(" at port "))
            .and_then(|(name, port)| Some((name.to_owned(), port.parse::<u16>().ok()?)));
        match parsed {
            Some(entry) => names.push(entry),
            None => {
                return Err(DecodeError::Malformed {
                    what: "NAMES reply line is not `name <n> at port <p>`",
                })
            }
        }
    }
    Ok(Some(NamesReply { epmd_port, names }))
}
