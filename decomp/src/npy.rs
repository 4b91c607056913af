//! The strict `.npy` header parser shared by every `.npy` reader of the toolchain: the weight
//! loader ([`crate::weights`]) and the `smartdeal` CLI's int8 activations.
//!
//! `npyz` trusts its header: a crafted shape overflows its element count (a panic in debug
//! builds), a huge declared header length is allocated before it is read, and deeply nested
//! literals recurse in its parser. So every reader first parses the header with
//! [`parse_header`] — a strict grammar (exactly what numpy writes) with every size checked — and
//! hands only headers that pass to npyz. Every error is one line.

use std::fmt;

/// What [`parse_header`] found: the header dict's three keys, and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string without quotes, as written (`<f4`, `|i1`, …); not yet interpreted.
    pub descr: String,
    /// `fortran_order`: the data is stored first index fastest.
    pub fortran_order: bool,
    /// The dimensions; the product of the non-zero ones fits in a `u64`.
    pub shape: Vec<u64>,
    /// Length of the whole header (magic, version, length field and dict text, padding
    /// included): the data starts at this offset.
    pub header_len: usize,
}

/// Why [`parse_header`] refused a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a `.npy` header this parser accepts; the reason is one line, e.g. `unsupported .npy
    /// format version 4.0`.
    Malformed(String),
    /// `descr` is a list: a structured (record) dtype, which no reader here supports. The
    /// header is not parsed further.
    Structured,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Malformed(reason) => f.write_str(reason),
            HeaderError::Structured => f.write_str("the dtype is a structured record"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Longest header accepted. numpy's own `np.load` refuses headers over 10 000 bytes by default;
/// a float array's header is about 100.
const MAX_HEADER: usize = 65_536;
/// numpy allows at most 64 dimensions; far fewer make sense for weights.
const MAX_RANK: usize = 32;
/// Brackets nested deeper than this are reported as such before the grammar runs. The grammar
/// itself accepts two levels (the dict and the shape tuple) and names the first unexpected
/// bracket; a literal nested far deeper is not a damaged numpy header but one crafted against
/// recursive parsers, and the message says so.
const MAX_NESTING: usize = 16;

/// Parses the preamble and header dict of a `.npy` file with a strict grammar: exactly the dict
/// numpy (and npyz) write — keys `descr` (a string), `fortran_order` (`True`/`False`) and
/// `shape` (a tuple of decimal integers) in any order, quotes `'` or `"`, optional trailing
/// commas, then only whitespace. Anything this accepts means the same thing to npyz's general
/// Python-literal parser, so the sizes checked here are the sizes npyz will use (npyz refuses a
/// few spellings this allows, such as a line break inside the dict; callers that hand the
/// header to npyz report its error).
///
/// Only the header is examined: whether the data that follows fits the shape is the caller's
/// check (the data starts at [`NpyHeader::header_len`]).
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, HeaderError> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    let bad = |s: String| Err(HeaderError::Malformed(s));
    if !bytes.starts_with(MAGIC) {
        return if MAGIC.starts_with(bytes) {
            bad("the file ends inside the \\x93NUMPY magic".into())
        } else {
            bad("it does not start with the \\x93NUMPY magic".into())
        };
    }
    let (Some(&major), Some(&minor)) = (bytes.get(6), bytes.get(7)) else {
        return bad("the file ends inside the format version".into());
    };
    // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one.
    let text_start = match (major, minor) {
        (1, 0) => 10,
        (2, 0) | (3, 0) => 12,
        _ => return bad(format!("unsupported .npy format version {major}.{minor}")),
    };
    let Some(len_field) = bytes.get(8..text_start) else {
        return bad("the file ends inside the header length field".into());
    };
    let declared = len_field
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let available = bytes.len() - text_start;
    if declared > available {
        return bad(format!(
            "the header declares {declared} bytes but only {available} follow (truncated)"
        ));
    }
    if declared > MAX_HEADER {
        return bad(format!(
            "the header declares {declared} bytes, more than the {MAX_HEADER} accepted"
        ));
    }
    let header_len = text_start + declared;
    let text = &bytes[text_start..header_len];
    if nesting(text) > MAX_NESTING {
        return bad("the header literal is nested too deeply".into());
    }

    let (descr, fortran_order, shape) = parse_dict(text)?;
    // npyz also multiplies the dimensions partially (strides), where a zero does not help, so
    // the non-zero dimensions alone must not overflow either.
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |n, &d| n.checked_mul(d));
    if nonzero.is_none() {
        return bad(format!("shape {shape:?} is too large"));
    }
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        header_len,
    })
}

/// The deepest bracket nesting (`(`, `[`, `{`) in `text`, strings not excepted.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The header dict's `descr`, `fortran_order` and `shape`, each exactly once; after the dict
/// only whitespace.
fn parse_dict(text: &[u8]) -> Result<(String, bool, Vec<u64>), HeaderError> {
    let bad = |s: String| Err(HeaderError::Malformed(s));
    let mut p = Parser { s: text, i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.ws();
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let duplicate = match key {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err(HeaderError::Structured);
                }
                descr.replace(p.string()?.to_string()).is_some()
            }
            "fortran_order" => {
                let value = if p.eat_word(b"True") {
                    true
                } else if p.eat_word(b"False") {
                    false
                } else {
                    return bad("'fortran_order' is not True or False".into());
                };
                fortran.replace(value).is_some()
            }
            "shape" => shape.replace(p.shape()?).is_some(),
            other => return bad(format!("unexpected key '{other}' in the header")),
        };
        if duplicate {
            return bad(format!("the header repeats the key '{key}'"));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != text.len() {
        return bad("unexpected text after the header dict".into());
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return bad("the header lacks one of 'descr', 'fortran_order', 'shape'".into());
    };
    Ok((descr, fortran, shape))
}

/// A cursor over the header text for [`parse_header`].
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A keyword not followed by more identifier characters (`True`, not `Trueish`).
    fn eat_word(&mut self, word: &[u8]) -> bool {
        let rest = &self.s[self.i..];
        let follows = rest.get(word.len()).copied();
        if rest.starts_with(word)
            && !follows.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), HeaderError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", char::from(c))))
        }
    }

    fn unexpected(&self, wanted: &str) -> HeaderError {
        let found = match self.peek() {
            None => "the end of the header".to_string(),
            Some(c) if c.is_ascii_graphic() => format!("`{}`", char::from(c)),
            Some(c) => format!("byte 0x{c:02x}"),
        };
        HeaderError::Malformed(format!(
            "header dict: expected {wanted} at offset {}, found {found}",
            self.i
        ))
    }

    /// A quoted string without escapes (numpy never writes any in these headers).
    fn string(&mut self) -> Result<&'a str, HeaderError> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.unexpected("a quoted string")),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote || c == b'\\' || c == b'\n')
            .ok_or_else(|| self.unexpected("a closing quote"))?;
        let end = start + len;
        if self.s[end] != quote {
            self.i = end;
            return Err(self.unexpected("a closing quote"));
        }
        self.i = end + 1;
        std::str::from_utf8(&self.s[start..end])
            .map_err(|_| HeaderError::Malformed("header dict: a string is not UTF-8".into()))
    }

    /// A decimal integer as Python writes it (no sign, no leading zeros, no `_`).
    fn uint(&mut self) -> Result<u64, HeaderError> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        if digits.is_empty() {
            return Err(self.unexpected("a dimension"));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            self.i = start;
            return Err(self.unexpected("a dimension without leading zeros"));
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| HeaderError::Malformed("header dict: a dimension is too large".into()))
    }

    /// `()`, `(3,)`, `(2, 3)`, `(2, 3, )`. A bare `(3)` is rejected: in Python it is the integer
    /// 3, not a tuple.
    fn shape(&mut self) -> Result<Vec<u64>, HeaderError> {
        self.expect(b'(')?;
        self.ws();
        let mut dims = Vec::new();
        if self.eat(b')') {
            return Ok(dims);
        }
        loop {
            dims.push(self.uint()?);
            if dims.len() > MAX_RANK {
                return Err(HeaderError::Malformed(format!(
                    "header dict: the shape has more than {MAX_RANK} dimensions"
                )));
            }
            self.ws();
            if self.eat(b')') {
                if dims.len() == 1 {
                    return Err(HeaderError::Malformed(
                        "header dict: 'shape' is a parenthesised integer, not a tuple".into(),
                    ));
                }
                return Ok(dims);
            }
            self.expect(b',')?;
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
        }
    }
}

/// Helpers for the tests of `.npy` readers in this crate and in the `smartdeal` CLI. Not part of
/// the API.
#[doc(hidden)]
pub mod test_support {
    /// A v1 `.npy` file with a hand-written header dict (padded the way numpy pads it).
    pub fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        let pad = (64 - (10 + h.len() + 1) % 64) % 64;
        h.push_str(&" ".repeat(pad));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        b
    }

    /// Files whose header [`super::parse_header`] refuses, each with a fragment of its message:
    /// what either of the two former guards (the weight loader's grammar and the CLI's
    /// pre-check) rejected. Every `.npy` reader must reject each one, with a message that
    /// contains the fragment.
    pub fn crafted_headers() -> Vec<(Vec<u8>, &'static str)> {
        let dict = |shape: &str| {
            let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            npy_with_header(&header, &[0; 24])
        };
        let preamble = |version: &[u8], len: &[u8], text: &[u8]| {
            let mut b = b"\x93NUMPY".to_vec();
            b.extend_from_slice(version);
            b.extend_from_slice(len);
            b.extend_from_slice(text);
            b
        };
        let rank33 = format!("({})", "1, ".repeat(33));
        vec![
            (
                b"hello".to_vec(),
                "does not start with the \\x93NUMPY magic",
            ),
            (b"\x93NUM".to_vec(), "ends inside the \\x93NUMPY magic"),
            (b"\x93NUMPY\x01".to_vec(), "ends inside the format version"),
            (
                preamble(b"\x01\x05", b"\x00\x00", b""),
                "unsupported .npy format version 1.5",
            ),
            (
                preamble(b"\x04\x00", b"\x00\x00", b""),
                "unsupported .npy format version 4.0",
            ),
            (
                preamble(b"\x02\x00", b"\x10\x00", b""),
                "ends inside the header length field",
            ),
            (
                preamble(b"\x02\x00", &u32::MAX.to_le_bytes(), b"{}"),
                "the header declares 4294967295 bytes but only 2 follow",
            ),
            (
                preamble(b"\x02\x00", &70_000u32.to_le_bytes(), &[b' '; 70_000]),
                "70000 bytes, more than the 65536 accepted",
            ),
            (
                npy_with_header(&format!("{}{}", "[".repeat(5000), "]".repeat(5000)), &[]),
                "nested too deeply",
            ),
            (dict(&rank33), "more than 32 dimensions"),
            (dict("(0, 4294967296, 4294967296)"), "too large"),
            (dict("(4294967296, 4294967296, 2)"), "too large"),
            (dict("(99999999999999999999999,)"), "too large"),
            (dict("(6)"), "not a tuple"),
            (dict("((((((((6,),),),),),),),)"), "expected a dimension"),
            (dict("(02, 3)"), "without leading zeros"),
            (dict("(2L, 3L)"), "found `L`"),
            (dict("[2, 3]"), "expected `(`"),
            (
                npy_with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'shape': (1, 1), }",
                    &[0; 24],
                ),
                "repeats the key 'shape'",
            ),
            (
                npy_with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
                    &[0; 24],
                ),
                "unexpected key 'x'",
            ),
            (
                npy_with_header("{'descr': '<f4', 'fortran_order': False, }", &[0; 24]),
                "lacks one of",
            ),
            (
                npy_with_header(
                    "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }",
                    &[0; 24],
                ),
                "not True or False",
            ),
            (
                npy_with_header(
                    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }",
                    &[0; 24],
                ),
                "structured record",
            ),
            (
                npy_with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x",
                    &[0; 24],
                ),
                "unexpected text after the header dict",
            ),
            (
                npy_with_header(
                    "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }",
                    &[0; 24],
                ),
                "expected `}`",
            ),
            (
                npy_with_header("{'descr': '<f4\\x', 'fortran_order': False, }", &[0; 24]),
                "expected a closing quote",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{crafted_headers, npy_with_header};
    use super::*;

    #[test]
    fn reads_what_numpy_writes() {
        let b = npy_with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &[0; 24],
        );
        let want = NpyHeader {
            descr: "<f4".into(),
            fortran_order: true,
            shape: vec![2, 3],
            header_len: 128, // 10 + 58 + newline, padded to a multiple of 64
        };
        assert_eq!(parse_header(&b), Ok(want));

        // Version 3 (4-byte length), double quotes, any key order, no trailing comma, a 1-tuple.
        let text = b"{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"|i1\"}\n";
        let mut v3 = b"\x93NUMPY\x03\x00".to_vec();
        v3.extend_from_slice(&(text.len() as u32).to_le_bytes());
        v3.extend_from_slice(text);
        v3.extend_from_slice(&[1, 2, 3]);
        let h = parse_header(&v3).unwrap();
        assert_eq!(h.descr, "|i1");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, [3]);
        assert_eq!(h.header_len, 12 + text.len());

        let scalar = npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            &[0; 8],
        );
        assert!(parse_header(&scalar).unwrap().shape.is_empty());
    }

    /// What npyz writes, this parser reads the same way npyz does.
    #[test]
    fn agrees_with_npyz() {
        fn file(shape: &[u64], order: npyz::Order) -> Vec<u8> {
            let data: Vec<i8> = (0..shape.iter().product::<u64>())
                .map(|i| i as i8)
                .collect();
            crate::weights::test_util::npy_bytes(shape, order, &data)
        }
        for shape in [&[][..], &[0], &[5], &[2, 3], &[1, 2, 3, 4], &[3, 0, 2]] {
            for order in [npyz::Order::C, npyz::Order::Fortran] {
                let bytes = file(shape, order);
                let ours = parse_header(&bytes).unwrap();
                let theirs = npyz::NpyHeader::from_reader(&bytes[..]).unwrap();
                assert_eq!(ours.shape, theirs.shape());
                assert_eq!(ours.fortran_order, theirs.order() == npyz::Order::Fortran);
                assert_eq!(format!("'{}'", ours.descr), theirs.dtype().descr());
                let count: u64 = shape.iter().product();
                assert_eq!(bytes.len() - ours.header_len, count as usize);
            }
        }
    }

    #[test]
    fn crafted_headers_are_refused_with_one_line_messages() {
        for (bytes, want) in crafted_headers() {
            let e = parse_header(&bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let structured = npy_with_header(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        );
        assert_eq!(parse_header(&structured), Err(HeaderError::Structured));
    }

    /// Up to the nesting limit the grammar names the first unexpected bracket; beyond it the
    /// message says the literal is nested too deeply.
    #[test]
    fn nesting_limit_only_chooses_the_message() {
        let nested = |depth: usize| {
            // The dict is one level, the shape tuple and its parenthesised first dimension the rest.
            let shape = format!("{}6{}", "(".repeat(depth - 1), ",)".repeat(depth - 1));
            npy_with_header(
                &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"),
                &[],
            )
        };
        let at_limit = parse_header(&nested(MAX_NESTING)).unwrap_err().to_string();
        assert!(at_limit.contains("expected a dimension"), "{at_limit}");
        let beyond = parse_header(&nested(MAX_NESTING + 1))
            .unwrap_err()
            .to_string();
        assert_eq!(beyond, "the header literal is nested too deeply");
    }
}
