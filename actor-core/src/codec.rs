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

use serde::{de::DeserializeOwned, Serialize};

/// The largest value [`decode`] accepts, in bytes (64 MiB, the default largest frame).
pub const MAX_DECODE_BYTES: usize = 64 << 20;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODE_BYTES>,
>;

const CONFIG: Config = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();

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

/// Encodes `value` into a new buffer.
///
/// # Errors
/// [`CodecError::Encode`] if the serializer refuses the value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
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

/// Decodes one `T` that must fill `bytes` exactly.
///
/// # Errors
/// [`CodecError::Decode`] for bytes that are not a `T` (including truncated input and claimed
/// lengths over [`MAX_DECODE_BYTES`]), [`CodecError::TrailingBytes`] if bytes are left over.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let expected = std::any::type_name::<T>();
    match bincode::serde::decode_from_slice::<T, _>(bytes, CONFIG) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(CodecError::TrailingBytes {
            expected,
            extra: bytes.len() - used,
        }),
        Err(e) => Err(CodecError::Decode {
            expected,
            reason: e.to_string(),
        }),
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
