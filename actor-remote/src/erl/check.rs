//! A check of the external term format before `eetf` decodes it (sans-IO).
//!
//! `eetf` allocates what a term's counts announce (a list of 2³² elements, a binary of 4 GiB)
//! and recurses once per nesting level. A distribution message is one or two terms in a
//! frame whose length is already bounded, so this walk, iterative and allocation-free,
//! checks that every count fits in the bytes left and that nesting stays under
//! [`MAX_DEPTH`] before the decoder sees them. Funs, atom-cache references and compressed
//! terms are refused: nodus offers no flag that lets a peer send them to it.

/// The deepest nesting accepted (tuples, lists, maps in one another).
pub(crate) const MAX_DEPTH: usize = 256;

/// Why the bytes are not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CheckError {
    /// The bytes end inside a term.
    #[error("the term is cut short")]
    Short,
    /// A term is not in the version-131 external format.
    #[error("not an external term (version byte {0})")]
    Version(u8),
    /// A tag nodus does not accept.
    #[error("term tag {0} is not accepted")]
    Tag(u8),
    /// A count larger than the bytes left could hold.
    #[error("a count of {0} does not fit in the frame")]
    Count(u64),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("terms nested deeper than {MAX_DEPTH}")]
    Depth,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
    fn take(&mut self, n: usize) -> Result<&[u8], CheckError> {
        if n > self.left() {
            return Err(CheckError::Short);
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CheckError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, CheckError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u32(&mut self) -> Result<u64, CheckError> {
        let b = self.take(4)?;
        Ok(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }
    /// `count` items of at least `each` bytes fit in what is left.
    fn fits(&self, count: u64, each: u64) -> Result<usize, CheckError> {
        let need = count.saturating_mul(each);
        if need > self.left() as u64 {
            return Err(CheckError::Count(count));
        }
        usize::try_from(count).map_err(|_| CheckError::Count(count))
    }
}

/// Checks that `bytes` is a sequence of complete external terms (each `131`, then a term)
/// that `eetf` may decode without allocating more than the bytes justify.
pub(crate) fn check_terms(bytes: &[u8]) -> Result<(), CheckError> {
    let mut c = Cursor { bytes, at: 0 };
    while c.left() > 0 {
        match c.u8()? {
            131 => check_one(&mut c)?,
            v => return Err(CheckError::Version(v)),
        }
    }
    Ok(())
}

/// One term, walked with an explicit stack of "terms still to read" per level.
fn check_one(c: &mut Cursor<'_>) -> Result<(), CheckError> {
    let mut pending: Vec<usize> = Vec::with_capacity(16);
    pending.push(1);
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        // Terms this one contains, read after it at a deeper level.
        let inner: usize = match c.u8()? {
            106 => 0,
            97 => {
                c.take(1)?;
                0
            }
            98 => {
                c.take(4)?;
                0
            }
            70 => {
                c.take(8)?;
                0
            }
            99 => {
                c.take(31)?;
                0
            }
            100 | 118 => {
                let n = c.u16()?;
                c.take(n)?;
                0
            }
            115 | 119 => {
                let n = usize::from(c.u8()?);
                c.take(n)?;
                0
            }
            107 => {
                let n = c.u16()?;
                c.take(n)?;
                0
            }
            109 => {
                let n = c.u32()?;
                let n = c.fits(n, 1)?;
                c.take(n)?;
                0
            }
            77 => {
                let n = c.u32()?;
                let n = c.fits(n, 1)?;
                c.take(1)?;
                c.take(n)?;
                0
            }
            110 => {
                let n = usize::from(c.u8()?);
                c.take(1 + n)?;
                0
            }
            111 => {
                let n = c.u32()?;
                let n = c.fits(n, 1)?;
                c.take(1 + n)?;
                0
            }
            104 => usize::from(c.u8()?),
            105 => {
                let n = c.u32()?;
                c.fits(n, 1)?
            }
            108 => {
                let n = c.u32()?;
                // The elements and the tail.
                c.fits(n, 1)? + 1
            }
            116 => {
                let n = c.u32()?;
                c.fits(n, 2)? * 2
            }
            113 => 3, // export: module, function, arity
            // Pids, ports, old references: a node atom, then fixed-size fields.
            tag @ (88 | 103 | 89 | 102 | 120 | 101) => {
                check_atom(c)?;
                let fixed = match tag {
                    88 => 12,
                    103 => 9,
                    89 => 8,
                    102 => 5,
                    120 => 12,
                    _ => 5, // 101
                };
                c.take(fixed)?;
                0
            }
            tag @ (90 | 114) => {
                let ids = c.u16()?;
                check_atom(c)?;
                c.take(if tag == 90 { 4 } else { 1 })?;
                let ids = c.fits(ids as u64, 4)?;
                c.take(ids * 4)?;
                0
            }
            tag => return Err(CheckError::Tag(tag)),
        };
        if inner > 0 {
            if pending.len() >= MAX_DEPTH {
                return Err(CheckError::Depth);
            }
            pending.push(inner);
        }
    }
    Ok(())
}

/// An atom (a pid's or reference's node).
fn check_atom(c: &mut Cursor<'_>) -> Result<(), CheckError> {
    let n = match c.u8()? {
        100 | 118 => c.u16()?,
        115 | 119 => usize::from(c.u8()?),
        tag => return Err(CheckError::Tag(tag)),
    };
    c.take(n)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(term: &eetf::Term) -> Vec<u8> {
        let mut buf = Vec::new();
        term.encode(&mut buf).expect("encodes");
        buf
    }

    #[test]
    fn real_terms_pass_and_lying_counts_do_not() {
        use crate::erl::term::IntoTerm;
        let t = (
            crate::erl::Atom("add".into()),
            vec![1i64 << 40, 2],
            "text".to_string(),
        )
            .into_term();
        let mut two = encode(&t);
        two.extend(encode(&t));
        assert_eq!(check_terms(&two), Ok(()));
        // A list claiming 2^32-1 elements in a few bytes.
        assert_eq!(
            check_terms(&[131, 108, 255, 255, 255, 255, 106]),
            Err(CheckError::Count(u64::from(u32::MAX)))
        );
        // A binary claiming 4 GiB.
        assert!(check_terms(&[131, 109, 255, 255, 255, 255]).is_err());
        // Deep nesting: {{{...}}}.
        let mut deep = vec![131];
        for _ in 0..=MAX_DEPTH {
            deep.extend([104, 1]);
        }
        deep.push(106);
        assert_eq!(check_terms(&deep), Err(CheckError::Depth));
        // Cut short.
        let whole = encode(&t);
        assert!(check_terms(&whole[..whole.len() - 1]).is_err());
        assert_eq!(check_terms(&whole[..2]), Err(CheckError::Short));
    }
}
