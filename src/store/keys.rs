//! Key encoding: every key of the store is built here.
//!
//! A key is a sequence of parts. String parts are UTF-8 and end with a 0xFF
//! byte, which never occurs in UTF-8, so any string is allowed and a key can
//! be split back unambiguously. Integer parts are fixed-width big-endian, so
//! byte order is numeric order. Consequences the store relies on:
//! - Keys that share leading parts are contiguous: a prefix built from those
//!   parts ([`Key::prefix`]) finds exactly them.
//! - Among keys with equal leading parts, the next integer part sorts numerically
//!   (the outbox replays in sequence order).
//! - String parts sort byte-wise with the terminator counted as the largest
//!   byte: `"ab"` sorts before `"a"`. Only equality and contiguity of string
//!   parts are relied on, never their relative order.

/// Separator after each string part.
pub const SEP: u8 = 0xFF;

/// Builds a key part by part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// An empty key.
    pub fn new() -> Self {
        Key(Vec::with_capacity(64))
    }

    /// Appends a string part.
    pub fn str(mut self, part: &str) -> Self {
        self.0.extend_from_slice(part.as_bytes());
        self.0.push(SEP);
        self
    }

    /// Appends a u64 part (big-endian).
    pub fn u64(mut self, part: u64) -> Self {
        self.0.extend_from_slice(&part.to_be_bytes());
        self
    }

    /// Appends a u32 part (big-endian).
    pub fn u32(mut self, part: u32) -> Self {
        self.0.extend_from_slice(&part.to_be_bytes());
        self
    }

    /// The finished key.
    pub fn build(self) -> Vec<u8> {
        self.0
    }

    /// The key so far, as a prefix that matches every longer key built from it.
    pub fn prefix(self) -> Vec<u8> {
        self.0
    }
}

/// Why a key could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed key: {0}")]
pub struct KeyError(&'static str);

/// Reads a key part by part, in the order it was built.
#[derive(Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts reading `key`.
    pub fn new(key: &'a [u8]) -> Self {
        KeyReader { rest: key }
    }

    /// Reads a string part.
    pub fn str(&mut self) -> Result<&'a str, KeyError> {
        let end = self
            .rest
            .iter()
            .position(|b| *b == SEP)
            .ok_or(KeyError("missing separator"))?;
        let (part, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        std::str::from_utf8(part).map_err(|_| KeyError("string part is not UTF-8"))
    }

    /// Reads a u64 part.
    pub fn u64(&mut self) -> Result<u64, KeyError> {
        let (part, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or(KeyError("short u64"))?;
        self.rest = rest;
        Ok(u64::from_be_bytes(*part))
    }

    /// Reads a u32 part.
    pub fn u32(&mut self) -> Result<u32, KeyError> {
        let (part, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(KeyError("short u32"))?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*part))
    }

    /// Fails unless the whole key was read.
    pub fn end(self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &str, n: u64, t: &str) -> Vec<u8> {
        Key::new().str(s).u64(n).str(t).build()
    }

    proptest! {
        #[test]
        fn round_trip(s in "\\PC{0,12}", n in any::<u64>(), t in "\\PC{0,12}", m in any::<u32>()) {
            let k = Key::new().str(&s).u64(n).str(&t).u32(m).build();
            let mut r = KeyReader::new(&k);
            prop_assert_eq!(r.str().expect("str"), s.as_str());
            prop_assert_eq!(r.u64().expect("u64"), n);
            prop_assert_eq!(r.str().expect("str"), t.as_str());
            prop_assert_eq!(r.u32().expect("u32"), m);
            prop_assert!(r.end().is_ok());
        }

        #[test]
        fn integers_sort_numerically_under_a_shared_prefix(s in "\\PC{0,12}", a in any::<u64>(), b in any::<u64>(), t in "\\PC{0,4}", u in "\\PC{0,4}") {
            // Whatever follows the integer, the integer decides first.
            prop_assume!(a != b);
            prop_assert_eq!(key(&s, a, &t).cmp(&key(&s, b, &u)), a.cmp(&b));
        }

        #[test]
        fn single_string_parts_sort_as_strings(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let ka = Key::new().str(&a).build();
            let kb = Key::new().str(&b).build();
            // Equal iff equal; otherwise UTF-8 byte order with the terminator largest.
            let mut ea = a.as_bytes().to_vec(); ea.push(0xFF);
            let mut eb = b.as_bytes().to_vec(); eb.push(0xFF);
            prop_assert_eq!(ka.cmp(&kb), ea.cmp(&eb));
            prop_assert_eq!(ka == kb, a == b);
        }

        #[test]
        fn prefixes_are_contiguous(a in "\\PC{0,8}", b in "\\PC{0,8}", n in any::<u64>()) {
            // A key under prefix(a) is never matched by prefix(b) unless a == b,
            // even when one string is a prefix of the other.
            prop_assume!(a != b);
            let k = key(&a, n, "x");
            let pb = Key::new().str(&b).prefix();
            prop_assert!(!k.starts_with(&pb));
            prop_assert!(k.starts_with(&Key::new().str(&a).prefix()));
        }
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(KeyReader::new(b"abc").str().is_err());
        assert!(KeyReader::new(&[1, 2, 3]).u64().is_err());
        let k = Key::new().str("a").u32(1).build();
        let mut r = KeyReader::new(&k);
        r.str().expect("str");
        assert!(r.end().is_err());
    }
}
