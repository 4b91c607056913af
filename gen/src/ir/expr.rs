//! Typed expressions.
//!
//! Every operator checks its operand widths when the expression is built, so a width mismatch is
//! a generator bug caught at generation time (with a message naming the operator and widths),
//! never a silent Verilog extension. Width changes are explicit: [`Expr::sext`], [`Expr::zext`],
//! [`Expr::slice`], [`Expr::concat`].
//!
//! Verilog's signedness rules are a trap (an unsigned operand anywhere makes the whole expression
//! unsigned, turning `>>>` into `>>`), so the emitter declares every net unsigned and spells out
//! signed semantics where they matter: sign extension as a replicated MSB, arithmetic shift and
//! signed comparison inside self-determined wrappers (see `emit.rs`).

use std::fmt;

/// A bit vector type: width and whether arithmetic treats it as two's complement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ty {
    pub width: u32,
    pub signed: bool,
}

impl Ty {
    pub fn u(width: u32) -> Ty {
        assert!(width >= 1, "zero-width type");
        Ty {
            width,
            signed: false,
        }
    }
    pub fn s(width: u32) -> Ty {
        assert!(width >= 1, "zero-width type");
        Ty {
            width,
            signed: true,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", if self.signed { "s" } else { "u" }, self.width)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// A product of two signed operands, emitted with `$signed` (see [`Expr::mul_signed`]).
    MulSigned,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedOp {
    And,
    Or,
    Xor,
}

/// An expression node. Build with the constructor methods, which check widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A named net (port, wire or register).
    Net(String),
    /// A constant, `value` holding the low `ty.width` bits.
    Const(u128),
    /// `name[hi:lo]` of a named net.
    Slice(String, u32, u32),
    /// `{a, b, ...}`, first element most significant.
    Concat(Vec<Expr>),
    /// `{n{e}}`.
    Repeat(u32, Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Reduce(RedOp, Box<Expr>),
    /// Left shift by a variable amount (zeros in).
    Shl(Box<Expr>, Box<Expr>),
    /// Right shift by a variable amount: arithmetic when the operand is signed.
    Shr(Box<Expr>, Box<Expr>),
    Mux(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// A typed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub ty: Ty,
    pub node: Node,
}

fn mask(width: u32) -> u128 {
    if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

// The builders are named after the Verilog operators they emit; they are methods, not
// `std::ops` impls, because they check widths (and panic on a generator bug) rather than
// behave like arithmetic on values.
#[allow(clippy::should_implement_trait)]
impl Expr {
    /// A reference to a named net of type `ty`.
    pub fn net(name: impl Into<String>, ty: Ty) -> Expr {
        Expr {
            ty,
            node: Node::Net(name.into()),
        }
    }

    /// An unsigned constant; panics if `value` does not fit `width` bits.
    pub fn lit(value: u128, width: u32) -> Expr {
        assert!(
            value & !mask(width) == 0,
            "constant {value} does not fit {width} bits"
        );
        Expr {
            ty: Ty::u(width),
            node: Node::Const(value),
        }
    }

    /// A signed constant; panics if `value` does not fit `width` signed bits.
    pub fn slit(value: i128, width: u32) -> Expr {
        assert!(
            width >= 128 || (value >= -(1i128 << (width - 1)) && value < (1i128 << (width - 1))),
            "constant {value} does not fit {width} signed bits"
        );
        Expr {
            ty: Ty::s(width),
            node: Node::Const((value as u128) & mask(width)),
        }
    }

    pub fn zero(ty: Ty) -> Expr {
        Expr {
            ty,
            node: Node::Const(0),
        }
    }

    pub fn width(&self) -> u32 {
        self.ty.width
    }

    fn net_name(&self, what: &str) -> &str {
        match &self.node {
            Node::Net(n) => n,
            _ => panic!("{what} needs a named net (bind the expression to a wire first)"),
        }
    }

    /// Bits `[hi:lo]` of a named net (unsigned).
    pub fn slice(&self, hi: u32, lo: u32) -> Expr {
        assert!(
            hi >= lo && hi < self.width(),
            "slice [{hi}:{lo}] outside a {}-bit net",
            self.width()
        );
        let name = self.net_name("slice").to_string();
        if lo == 0 && hi + 1 == self.width() {
            return self.as_unsigned();
        }
        Expr {
            ty: Ty::u(hi - lo + 1),
            node: Node::Slice(name, hi, lo),
        }
    }

    /// `width` bits starting at `lo` (like Verilog `[lo +: width]`).
    pub fn field(&self, lo: u32, width: u32) -> Expr {
        self.slice(lo + width - 1, lo)
    }

    /// One bit of a named net.
    pub fn bit(&self, i: u32) -> Expr {
        self.slice(i, i)
    }

    /// Same bits, unsigned.
    pub fn as_unsigned(&self) -> Expr {
        Expr {
            ty: Ty::u(self.width()),
            node: self.node.clone(),
        }
    }

    /// Same bits, signed.
    pub fn as_signed(&self) -> Expr {
        Expr {
            ty: Ty::s(self.width()),
            node: self.node.clone(),
        }
    }

    /// `{a, b, ...}` (first most significant); unsigned.
    pub fn concat(parts: Vec<Expr>) -> Expr {
        assert!(!parts.is_empty(), "empty concatenation");
        if parts.len() == 1 {
            return parts[0].as_unsigned();
        }
        let w = parts.iter().map(Expr::width).sum();
        Expr {
            ty: Ty::u(w),
            node: Node::Concat(parts),
        }
    }

    /// `{n{e}}`; unsigned.
    pub fn repeat(n: u32, e: Expr) -> Expr {
        assert!(n >= 1, "zero repetition");
        Expr {
            ty: Ty::u(n * e.width()),
            node: Node::Repeat(n, Box::new(e)),
        }
    }

    /// Sign extension of a signed named net to `width` (≥ its width): `{{n{x[msb]}}, x}`.
    pub fn sext(&self, width: u32) -> Expr {
        assert!(self.ty.signed, "sext of an unsigned value {}", self.ty);
        assert!(
            width >= self.width(),
            "sext from {} to {width} narrows",
            self.ty
        );
        if width == self.width() {
            return self.clone();
        }
        let msb = self.bit(self.width() - 1);
        Expr::concat(vec![
            Expr::repeat(width - self.width(), msb),
            self.as_unsigned(),
        ])
        .as_signed()
    }

    /// Zero extension to `width` (≥ its width); keeps signedness flag off.
    pub fn zext(&self, width: u32) -> Expr {
        assert!(
            width >= self.width(),
            "zext from {} to {width} narrows",
            self.ty
        );
        if width == self.width() {
            return self.as_unsigned();
        }
        Expr::concat(vec![Expr::lit(0, width - self.width()), self.as_unsigned()])
    }

    fn same(&self, other: &Expr, what: &str) {
        assert!(
            self.width() == other.width(),
            "{what}: operand widths differ ({} vs {})",
            self.ty,
            other.ty
        );
    }

    fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        a.same(&b, &format!("{op:?}"));
        let ty = Ty {
            width: a.width(),
            signed: a.ty.signed && b.ty.signed,
        };
        Expr {
            ty,
            node: Node::Bin(op, Box::new(a), Box::new(b)),
        }
    }

    /// Modular sum: same-width operands, same-width result (extend first to keep the carry).
    pub fn add(self, b: Expr) -> Expr {
        Expr::bin(BinOp::Add, self, b)
    }
    /// Modular difference (same widths).
    pub fn sub(self, b: Expr) -> Expr {
        Expr::bin(BinOp::Sub, self, b)
    }
    /// Modular product (same widths, result truncated to that width: extend both operands to the
    /// product width first).
    pub fn mul(self, b: Expr) -> Expr {
        Expr::bin(BinOp::Mul, self, b)
    }
    /// [`mul`](Self::mul) of two signed operands (sign-extended to the product width first), emitted
    /// as `($signed(a) * $signed(b))`. The result's bits are the same (the low bits of a product do
    /// not depend on the operands' signedness), but synthesis then sees a signed multiplier whose
    /// sign-extension copies it can drop, so it maps the narrow product to fewer DSP blocks.
    pub fn mul_signed(self, b: Expr) -> Expr {
        assert!(
            self.ty.signed && b.ty.signed,
            "mul_signed takes two signed operands"
        );
        Expr::bin(BinOp::MulSigned, self, b)
    }
    pub fn and(self, b: Expr) -> Expr {
        Expr::bin(BinOp::And, self, b)
    }
    pub fn or(self, b: Expr) -> Expr {
        Expr::bin(BinOp::Or, self, b)
    }
    pub fn xor(self, b: Expr) -> Expr {
        Expr::bin(BinOp::Xor, self, b)
    }
    pub fn not(self) -> Expr {
        Expr {
            ty: self.ty,
            node: Node::Not(Box::new(self)),
        }
    }

    /// Comparison (1-bit result); signed when both operands are signed.
    pub fn cmp(self, op: CmpOp, b: Expr) -> Expr {
        self.same(&b, &format!("{op:?}"));
        assert!(
            self.ty.signed == b.ty.signed,
            "{op:?}: mixed signedness ({} vs {})",
            self.ty,
            b.ty
        );
        Expr {
            ty: Ty::u(1),
            node: Node::Cmp(op, Box::new(self), Box::new(b)),
        }
    }
    pub fn eq(self, b: Expr) -> Expr {
        self.cmp(CmpOp::Eq, b)
    }
    pub fn ne(self, b: Expr) -> Expr {
        self.cmp(CmpOp::Ne, b)
    }
    pub fn lt(self, b: Expr) -> Expr {
        self.cmp(CmpOp::Lt, b)
    }

    pub fn reduce(self, op: RedOp) -> Expr {
        Expr {
            ty: Ty::u(1),
            node: Node::Reduce(op, Box::new(self)),
        }
    }

    /// Left shift by a variable (unsigned) amount; keeps the width.
    pub fn shl(self, amount: Expr) -> Expr {
        assert!(!amount.ty.signed, "shift amount must be unsigned");
        Expr {
            ty: self.ty,
            node: Node::Shl(Box::new(self), Box::new(amount)),
        }
    }

    /// Right shift by a variable (unsigned) amount; arithmetic for signed operands.
    pub fn shr(self, amount: Expr) -> Expr {
        assert!(!amount.ty.signed, "shift amount must be unsigned");
        Expr {
            ty: self.ty,
            node: Node::Shr(Box::new(self), Box::new(amount)),
        }
    }

    /// `cond ? t : f` (1-bit condition, same-typed arms).
    pub fn mux(cond: Expr, t: Expr, f: Expr) -> Expr {
        assert_eq!(cond.width(), 1, "mux condition must be 1 bit");
        t.same(&f, "mux");
        let ty = Ty {
            width: t.width(),
            signed: t.ty.signed && f.ty.signed,
        };
        Expr {
            ty,
            node: Node::Mux(Box::new(cond), Box::new(t), Box::new(f)),
        }
    }

    /// Replicates a 1-bit expression to `width` bits (a mask).
    pub fn splat(self, width: u32) -> Expr {
        assert_eq!(self.width(), 1, "splat of a {}-bit value", self.width());
        if width == 1 {
            return self;
        }
        Expr::repeat(width, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "operand widths differ")]
    fn add_checks_widths() {
        let _ = Expr::net("a", Ty::u(8)).add(Expr::net("b", Ty::u(9)));
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn literal_checks_range() {
        let _ = Expr::slit(128, 8);
    }

    #[test]
    fn sext_and_zext_widths() {
        let a = Expr::net("a", Ty::s(8));
        assert_eq!(a.sext(12).ty, Ty::s(12));
        assert_eq!(a.zext(12).ty, Ty::u(12));
        assert_eq!(a.slice(6, 2).ty, Ty::u(5));
        assert_eq!(Expr::slit(-1, 4).node, Node::Const(0xf));
    }
}
