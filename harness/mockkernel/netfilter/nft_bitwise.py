"""nft_bitwise: `x & c`, `x | c`, `x ^ c`, `x << n`, `x >> n` on a loaded value
(net/netfilter/nft_bitwise.c; nftables src/evaluate.c expr_evaluate_binop(),
netlink_linearize.c netlink_gen_bitwise(), netlink_delinearize.c
netlink_parse_bitwise_bool()).

nft linearizes a chain of `&`, `|` and `^` with constants into ONE
NFT_BITWISE_BOOL expression, `dst = (src & mask) ^ xor` (combine_binop():
`& v` is mask &= v, xor &= v; `| v` is mask &= ~v, xor |= v; `^ v` is
xor ^= v), and a shift into NFT_BITWISE_LSHIFT/RSHIFT. `nft list` prints what
the kernel holds, not what was written: netlink_parse_bitwise_bool() turns
(mask, xor) back into `x [& m] [^ x'] [| o]` with o = xor & ~mask, x' = xor &
mask, m = mask | o; so `ct mark or 1 xor 3` (`|` binds loosest: `1 ^ 3` is
folded first) lists as `ct mark | 0x00000002`. Constants on both sides are
folded by the evaluation (`ct mark set 0x11 xor 0x1331` is `ct mark set
0x00001320`). In a relation, expr_evaluate_relational()'s binop_transfer()
moves a top-level `^` to the right side (`ct mark xor 0x23 == 0x11` is
`ct mark 0x00000032`). Printing puts parentheses where a looser operation is
an operand of a tighter one (expression.c binop_arg_print(), precedences
shift 1, and 2, xor 3, or 4).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector

# expression.c expr_binop_precedence[]: a smaller number binds tighter
PRECEDENCE = {"<<": 1, ">>": 1, "&": 2, "^": 3, "|": 4}


class Bitwise(Selector):
    """NFT_BITWISE_BOOL: (value & mask) ^ xor over `bits` bits."""

    is_binop = True

    def __init__(self, expr: Selector, mask: int | None = None, xor: int = 0):
        self.expr, self.dtype = expr, expr.dtype
        self.bits = expr.dtype.size
        self.mask = self.full if mask is None else mask
        self.xor = xor

    @property
    def full(self) -> int:
        return (1 << self.bits) - 1

    def loaded(self) -> Selector:
        return self.expr.loaded()

    def combine(self, op: str, value: int) -> "Bitwise":
        """netlink_gen_bitwise()'s combine_binop() of one more operation."""
        full = self.full
        if op == "&":
            return Bitwise(self.expr, self.mask & value, self.xor & value)
        if op == "|":
            return Bitwise(self.expr, self.mask & ~value & full, self.xor | value)
        return Bitwise(self.expr, self.mask, self.xor ^ value)

    def parts(self) -> list[tuple[str, int]]:
        """netlink_parse_bitwise_bool(): the operations nft lists, in order."""
        mask, xor = self.mask, self.xor
        orred = (mask & xor) ^ xor
        xor &= mask
        mask |= orred
        out = []
        if mask != self.full:
            out.append(("&", mask))
        if xor:
            out.append(("^", xor))
        if orred:
            out.append(("|", orred))
        return out

    def tree(self):
        """The listed expression as nested (op, left, value) tuples over `expr`."""
        node = self.expr
        for op, value in self.parts():
            node = (op, node, value)
        return node

    def text(self, pctx: PrintCtx) -> str:
        return tree_text(self.tree(), self.dtype, pctx)

    def load(self, ctx: CompileCtx):
        load, mask, xor = self.expr.load(ctx), self.mask, self.xor

        def bitwise_bool(pkt):
            value = load(pkt)
            return None if value is None else (value & mask) ^ xor
        return bitwise_bool


class Shift(Selector):
    """NFT_BITWISE_LSHIFT / RSHIFT by a constant (nft_bitwise_eval_lshift() and
    _rshift() shift the register's 32-bit words with carry: over the value's
    width, a plain shift with the bits shifted out lost)."""

    is_binop = True

    def __init__(self, expr: Selector, op: str, amount: int):
        self.expr, self.op, self.amount, self.dtype = expr, op, amount, expr.dtype
        self.bits = expr.dtype.size

    def loaded(self) -> Selector:
        return self.expr.loaded()

    def tree(self):
        inner = self.expr.tree() if isinstance(self.expr, (Bitwise, Shift)) else self.expr
        return (self.op, inner, ("integer", self.amount))

    def text(self, pctx: PrintCtx) -> str:
        return tree_text(self.tree(), self.dtype, pctx)

    def load(self, ctx: CompileCtx):
        load, amount, full = self.expr.load(ctx), self.amount, (1 << self.bits) - 1
        if self.op == "<<":
            def bitwise_lshift(pkt):
                value = load(pkt)
                return None if value is None else (value << amount) & full
            return bitwise_lshift

        def bitwise_rshift(pkt):
            value = load(pkt)
            return None if value is None else value >> amount
        return bitwise_rshift


def tree_text(node, dtype, pctx: PrintCtx) -> str:
    """binop_expr_print(): an operand looser than its operation in parentheses."""
    if not isinstance(node, tuple):
        return node.text(pctx)
    op, left, value = node
    left_text = tree_text(left, dtype, pctx)
    if isinstance(left, tuple) and PRECEDENCE[left[0]] > PRECEDENCE[op]:
        left_text = f"({left_text})"
    if isinstance(value, tuple):
        return f"{left_text} {op} {value[1]}"
    return f"{left_text} {op} {dtype.format(value)}"


def tree_json(node, dtype, selector_json, value_json):
    """The listed expression as json.c's binop_expr_json() gives it: `{op: [left, right]}`."""
    if not isinstance(node, tuple):
        return selector_json(node)
    op, left, value = node
    right = value[1] if isinstance(value, tuple) else value_json(dtype, value)
    return {op: [tree_json(left, dtype, selector_json, value_json), right]}


def binop(left, op: str, right: int) -> Selector:
    """`left op right` with a constant right side, as nft evaluates and
    linearizes it: a bool operation joins the one before it."""
    if op in ("<<", ">>"):
        return Shift(left, op, right)
    if not isinstance(left, Bitwise):
        left = Bitwise(left)
    return left.combine(op, right)


def fold(left: int, op: str, right: int, bits: int) -> int:
    """Constant folding (expr_evaluate_binop() of two values), over `bits` bits."""
    full = (1 << bits) - 1
    if op == "&":
        return left & right
    if op == "|":
        return left | right
    if op == "^":
        return left ^ right
    if op == "<<":
        return (left << right) & full
    return left >> right


def evaluate(node, dtype, parse):
    """A parsed operation tree -> a Selector (a load with bitwise operations)
    or an int (constants folded). Leaves are Selectors, or constants that
    `parse(token, dtype)` reads with the type of what they combine with (a
    shift's amount is an integer); a non-constant right side is refused as
    nft refuses it."""
    if not isinstance(node, tuple):
        return node if isinstance(node, Selector) else parse(node, dtype)
    op, left_node, right_node = node
    left = evaluate(left_node, dtype, parse)
    right_type = types.integer if op in ("<<", ">>") else (left.dtype if isinstance(left, Selector) else dtype)
    right = evaluate(right_node, right_type, parse)
    if isinstance(right, Selector):
        raise ValueError(f"Right hand side of binary operation ({op}) must be constant")
    if isinstance(left, Selector):
        return binop(left, op, right)
    return fold(left, op, right, dtype.size)

