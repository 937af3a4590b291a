//! The one place nodus serializes values.
//!
//! Every byte that nodus writes or reads for another node, and every argument of a function
//! called by name, goes through [`encode`] and [`decode`]. bincode 2 (with serde) is the
//! format today; it was declared unmaintained in December 2025, so nothing else in the
//! workspace names it and replacing it is a change to this file only.
//!
//! Decoding is hostile-input safe: the byte limit is always set (bincode's default is
//! unlimited), lengths are checked before anything is allocated, and trailing bytes are an
//! error rather than being ignored.
//!
//! ```
//! use actor_core::codec;
//! let bytes = codec::encode(&("hi", 42u32))?;
//! let (text, n): (String, u32) = codec::decode(&bytes)?;
//! assert_eq!((text.as_str(), n), ("hi", 42));
//! # Ok::<(), codec::CodecError>(())
//! ```

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// bincode's own limit, which [`decode`] narrows for each input (see there). [`decode`] has no
/// fixed largest input: its input is already in memory, and whoever read it from the network
/// bounded it (a node's `max_frame_len`, the one setting for the largest message).
const CLAIM_LIMIT: usize = usize::MAX;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<CLAIM_LIMIT>,
>;

const CONFIG: Config = bincode::config::standard().with_limit::<CLAIM_LIMIT>();

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be written (for example a map serializer refused it).
    #[error("could not encode a value: {reason}")]
    Encode {
        /// What the serializer reported.
        reason: String,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("could not decode a {expected}: {reason}; both sides must use the same types")]
    Decode {
        /// The Rust type that was expected.
        expected: &'static str,
        /// What the deserializer reported.
        reason: String,
    },
    /// The bytes hold a valid value followed by more bytes.
    #[error(
        "decoded a {expected} but {extra} bytes were left over; both sides must use the same types"
    )]
    TrailingBytes {
        /// The Rust type that was expected.
        expected: &'static str,
        /// How many bytes were not consumed.
        extra: usize,
    },
}

/// Encodes `value` into a new buffer, allocated once at its exact size (a counting pass
/// first, which is cheaper than the reallocations of a growing buffer).
///
/// # Errors
/// [`CodecError::Encode`] if the serializer refuses the value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(encoded_len(value)?);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `value` to `out` and returns how many bytes were written.
///
/// On error, `out` is left as it was.
///
/// # Errors
/// [`CodecError::Encode`] if the serializer refuses the value.
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<usize, CodecError> {
    let start = out.len();
    match bincode::serde::encode_into_std_write(value, out, CONFIG) {
        Ok(n) => Ok(n),
        Err(e) => {
            out.truncate(start);
            Err(CodecError::Encode {
                reason: e.to_string(),
            })
        }
    }
}

/// How many bytes [`encode`] would write for `value`, without writing them (a byte buffer
/// inside `value` is counted, not copied).
///
/// # Errors
/// [`CodecError::Encode`] if the serializer refuses the value.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    let mut counted = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut counted, CONFIG).map_err(|e| {
        CodecError::Encode {
            reason: e.to_string(),
        }
    })?;
    Ok(counted.bytes_written)
}

/// Decodes one `T` that must fill `bytes` exactly.
///
/// The input may be of any length (the bytes are already in memory: a node bounds what it
/// reads from a peer by its `max_frame_len`); what decoding allocates is bounded by the
/// input's length (see below).
///
/// # Errors
/// [`CodecError::Decode`] for bytes that are not a `T` (including truncated input and claimed
/// lengths far beyond the input), [`CodecError::TrailingBytes`] if bytes are left over.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(bytes)
}

/// As [`decode`], for a `T` that may borrow from `bytes` (`&str`, `&[u8]` fields): nothing
/// is copied out of the input for them.
///
/// ```
/// use actor_core::codec;
///
/// let bytes = codec::encode(&("counter", 7u32)).unwrap();
/// let (name, n): (&str, u32) = codec::decode_borrowed(&bytes).unwrap();
/// assert_eq!((name, n), ("counter", 7));
/// ```
///
/// # Errors
/// As [`decode`].
pub fn decode_borrowed<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    use bincode::{
        de::{BorrowDecode, BorrowDecoder, Decoder, DecoderImpl},
        error::DecodeError,
        serde::BorrowCompat,
    };

    let expected = std::any::type_name::<T>();
    let decode_error = |e: DecodeError| CodecError::Decode {
        expected,
        reason: e.to_string(),
    };
    let mut decoder = DecoderImpl::new(Input(bytes), CONFIG, ());
    // bincode checks the limit against what it *claims*: the size in memory of each value
    // before reading it (at most 16 bytes for a primitive, which takes at least one byte of
    // input) and the length of an owned string or byte buffer before allocating it
    // (`vec![0; len]`) and filling it from the input. A valid value therefore claims at most
    // 16 bytes per byte of input; leaving only that much of the limit refuses a claimed length
    // far longer than the input before anything is allocated for it. Without this, 5 bytes
    // claiming a 60 MiB string allocated the 60 MiB.
    let budget = bytes.len().saturating_mul(CLAIM_PER_INPUT_BYTE);
    decoder
        .claim_bytes_read(CLAIM_LIMIT.saturating_sub(budget))
        .map_err(decode_error)?;
    let BorrowCompat(value) =
        BorrowCompat::<T>::borrow_decode(&mut decoder).map_err(decode_error)?;
    match decoder.borrow_reader().0.len() {
        0 => Ok(value),
        extra => Err(CodecError::TrailingBytes { expected, extra }),
    }
}

/// How many bytes bincode may claim per byte of input in [`decode`]: a `u128` or `i128`
/// claims 16 and may take a single byte (varint).
const CLAIM_PER_INPUT_BYTE: usize = 16;

/// The bytes [`decode`] has not read yet: bincode's `SliceReader`, whose remainder is private.
struct Input<'a>(&'a [u8]);

impl bincode::de::read::Reader for Input<'_> {
    fn read(&mut self, out: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        let head = bincode::de::read::BorrowReader::take_bytes(self, out.len())?;
        out.copy_from_slice(head);
        Ok(())
    }

    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get(..n)
    }

    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
}

impl<'a> bincode::de::read::BorrowReader<'a> for Input<'a> {
    fn take_bytes(&mut self, n: usize) -> Result<&'a [u8], bincode::error::DecodeError> {
        if n > self.0.len() {
            return Err(bincode::error::DecodeError::UnexpectedEnd {
                additional: n - self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let bytes = encode(&(String::from("x"), vec![1u8, 2, 3])).unwrap();
        let back: (String, Vec<u8>) = decode(&bytes).unwrap();
        assert_eq!(back, ("x".to_string(), vec![1, 2, 3]));
        assert!(matches!(
            decode::<(String, Vec<u8>)>(&bytes[..2]),
            Err(CodecError::Decode { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<(String, Vec<u8>)>(&longer),
            Err(CodecError::TrailingBytes { extra: 1, .. })
        ));
    }

    /// A string or byte buffer whose claimed length (60 MiB, under the 64 MiB limit) is far
    /// longer than the input is refused before bincode allocates it: the claim exceeds the
    /// limit left for this input (16 bytes per byte of input). Before the fix the decoder allocated the 60 MiB and only then found the
    /// input too short ("UnexpectedEnd"); the fuzz workspace's allocator, which refuses any
    /// allocation over 16 MiB, aborted on it.
    #[test]
    fn a_claimed_length_longer_than_the_input_is_refused_before_allocating() {
        let claim: Vec<u8> = [252]
            .into_iter()
            .chain((60u32 << 20).to_le_bytes())
            .collect();
        for err in [
            decode::<String>(&claim).unwrap_err(),
            decode::<(u8, String)>(&[[1].as_slice(), &claim, b"abc"].concat()).unwrap_err(),
            decode::<Vec<String>>(&[[1].as_slice(), &claim].concat()).unwrap_err(),
        ] {
            let CodecError::Decode { reason, .. } = err else {
                panic!("{err:?}");
            };
            assert!(reason.contains("LimitExceeded"), "{reason}");
        }
        // Valid values still decode, the densest claims included (a u128 varint of one byte
        // claims 16).
        let text = "x".repeat(300);
        assert_eq!(decode::<String>(&encode(&text).unwrap()).unwrap(), text);
        let small = vec![1u128; 100];
        assert_eq!(
            decode::<Vec<u128>>(&encode(&small).unwrap()).unwrap(),
            small
        );
        let mixed = (
            vec![0u64; 50],
            vec![String::new(); 50],
            Some(1u128),
            'é',
            true,
        );
        assert_eq!(
            decode::<(Vec<u64>, Vec<String>, Option<u128>, char, bool)>(&encode(&mixed).unwrap())
                .unwrap(),
            mixed
        );
    }

    /// `encoded_len` is what `encode` writes, and an input over the old fixed 64 MiB limit
    /// decodes (a node's `max_frame_len` is the one limit; before, raising it let 80 MiB
    /// frames through framing and the codec refused them).
    #[test]
    fn encoded_len_agrees_and_large_inputs_decode() {
        let value = (String::from("name"), vec![7u8; 1000], 5u64);
        assert_eq!(encoded_len(&value).unwrap(), encode(&value).unwrap().len());
        let big = serde_bytes_like(65 << 20);
        let bytes = encode(&big).unwrap();
        assert!(bytes.len() > 64 << 20);
        assert_eq!(encoded_len(&big).unwrap(), bytes.len());
        assert_eq!(decode::<String>(&bytes).unwrap().len(), big.len());
    }

    fn serde_bytes_like(len: usize) -> String {
        "x".repeat(len)
    }

    #[test]
    fn huge_claimed_length_is_refused_without_allocating() {
        // A varint length prefix claiming u64::MAX elements.
        let evil = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Vec<u64>>(&evil).is_err());
        assert!(decode::<String>(&evil).is_err());
    }
}

/// Mutations of valid encodings and a runner that counts and asserts how many cases reached
/// the decoder under test, for the property tests of the decoders of bytes from other nodes
/// (function arguments, remote messages). Tests only.
#[cfg(test)]
pub(crate) mod props;
