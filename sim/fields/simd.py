"""8-wide float64 vectors for numba kernels, written as LLVM IR through numba intrinsics.

numba's auto-vectoriser does not produce the vector recurrences, transposes, expand loads
and compress stores the field kernels need; these intrinsics emit them directly (AVX-512
where the CPU has it; LLVM lowers them to narrower vectors elsewhere). The arithmetic is
plain IEEE (fused multiply-adds only where asked for, no reassociation), so the same
inputs give bit-identical outputs on every call, whatever the arrays' alignment. Loads and
stores take flat indices into C-contiguous float64 arrays; an 8-wide vector that starts on
a 64-byte boundary is one cache line (:func:`aligned_zeros` makes such arrays).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, register_model

__all__ = ["aligned_zeros", "popcount", "vadd", "vcompress", "vcount_valid", "vdiv",
           "vexpand", "vfma", "vload", "vmul", "vne_bits", "vsplat", "vstore", "vtranspose"]


def aligned_zeros(shape) -> np.ndarray:
    """A zero float64 array of ``shape`` whose data starts on a 64-byte boundary."""
    n = int(np.prod(shape))
    buf = np.zeros(n + 8)
    start = (-buf.ctypes.data % 64) // 8
    return buf[start:start + n].reshape(shape)


class _F64x8Type(types.Type):
    def __init__(self):
        super().__init__(name="f64x8")


_f64x8 = _F64x8Type()
_VEC = ir.VectorType(ir.DoubleType(), 8)
_I32 = ir.IntType(32)


@register_model(_F64x8Type)
class _F64x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _check_array(a, writing=False):
    if not (isinstance(a, types.Array) and a.dtype == types.float64 and a.layout == "C"
            and (a.mutable or not writing)):
        raise TypingError(f"vector access needs a C-contiguous float64 array, got {a}")


def _elem_ptr(context, builder, aryty, ary, offset):
    return builder.gep(context.make_array(aryty)(context, builder, ary).data, [offset])


def _vec_ptr(context, builder, aryty, ary, offset):
    return builder.bitcast(_elem_ptr(context, builder, aryty, ary, offset), _VEC.as_pointer())


@intrinsic
def vload(typingctx, a, offset):
    """Elements offset..offset+7 of C-contiguous array ``a`` (flat index) as a vector."""
    _check_array(a)

    def codegen(context, builder, sig, args):
        return builder.load(_vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=8)

    return _f64x8(a, types.intp), codegen


@intrinsic
def vstore(typingctx, a, offset, v):
    """Store vector ``v`` into elements offset..offset+7 of ``a`` (flat index)."""
    _check_array(a, writing=True)

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vec_ptr(context, builder, sig.args[0], args[0], args[1]),
                      align=8)
        return context.get_dummy_value()

    return types.void(a, types.intp, _f64x8), codegen


@intrinsic
def vsplat(typingctx, x):
    """A vector with all lanes equal to the scalar ``x``."""

    def codegen(context, builder, sig, args):
        v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[0],
                                   ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, 8), [0] * 8))

    return _f64x8(types.float64), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane with a single rounding (llvm.fma)."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v8f64")
        return builder.call(fn, list(args))

    return _f64x8(_f64x8, _f64x8, _f64x8), codegen


def _lanewise(op: str, doc: str):
    """An intrinsic applying the LLVM IR instruction ``op`` (e.g. ``fadd``) lane by lane."""

    def typer(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return getattr(builder, op)(*args)

        return _f64x8(_f64x8, _f64x8), codegen

    typer.__name__ = typer.__qualname__ = f"v{op[1:]}"
    typer.__doc__ = doc
    return intrinsic(typer)


vadd = _lanewise("fadd", "``a + b`` lane by lane.")
vmul = _lanewise("fmul", "``a * b`` lane by lane.")
vdiv = _lanewise("fdiv", "``a / b`` lane by lane (IEEE division).")


@intrinsic
def vcount_valid(typingctx, v):
    """How many lanes of ``v`` are >= 0 and finite (NaN is not)."""

    def codegen(context, builder, sig, args):
        inf = ir.Constant(_VEC, [float("inf")] * 8)
        zero = ir.Constant(_VEC, [0.0] * 8)
        ok = builder.and_(builder.fcmp_ordered(">=", args[0], zero),
                          builder.fcmp_ordered("<", args[0], inf))
        bits = builder.bitcast(ok, ir.IntType(8))
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(8), [ir.IntType(8)]), "llvm.ctpop.i8")
        return builder.zext(builder.call(fn, [bits]), ir.IntType(64))

    return types.int64(_f64x8), codegen


def _lane_mask(builder, bits):
    """The low 8 bits of integer ``bits`` as an <8 x i1> lane mask (bit m: lane m)."""
    return builder.bitcast(builder.trunc(bits, ir.IntType(8)),
                           ir.VectorType(ir.IntType(1), 8))


@intrinsic
def vexpand(typingctx, a, offset, bits, v):
    """``v`` with the lanes set in ``bits`` replaced, in order, by a[offset], a[offset+1], ...
    (reads popcount(bits) elements; llvm.masked.expandload)."""
    _check_array(a)

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        mask = _lane_mask(builder, args[2])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [ptr.type, mask.type, _VEC]),
            "llvm.masked.expandload.v8f64")
        return builder.call(fn, [ptr, mask, args[3]])

    return _f64x8(a, types.intp, types.intp, _f64x8), codegen


@intrinsic
def vcompress(typingctx, a, offset, bits, v):
    """Store the lanes of ``v`` set in ``bits``, in order, to a[offset], a[offset+1], ...
    (writes popcount(bits) elements; llvm.masked.compressstore)."""
    _check_array(a, writing=True)

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        mask = _lane_mask(builder, args[2])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_VEC, ptr.type, mask.type]),
            "llvm.masked.compressstore.v8f64")
        builder.call(fn, [args[3], ptr, mask])
        return context.get_dummy_value()

    return types.void(a, types.intp, types.intp, _f64x8), codegen


@intrinsic
def vne_bits(typingctx, v, w):
    """Bit m set where lane m of ``v`` differs from that of ``w`` (or either is NaN)."""

    def codegen(context, builder, sig, args):
        ne = builder.fcmp_unordered("!=", args[0], args[1])
        return builder.zext(builder.bitcast(ne, ir.IntType(8)), ir.IntType(64))

    return types.int64(_f64x8, _f64x8), codegen


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of the integer ``x``."""

    def codegen(context, builder, sig, args):
        x = args[0]
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(x.type, [x.type]),
                                            f"llvm.ctpop.i{x.type.width}")
        return builder.call(fn, [x])

    return x(x), codegen


def _shuffle(builder, a, b, idx):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, 8), idx))


@intrinsic
def vtranspose(typingctx, v0, v1, v2, v3, v4, v5, v6, v7):
    """Transpose the 8x8 block whose rows are v0..v7; returns the block's columns."""

    def codegen(context, builder, sig, args):
        r = list(args)
        t = []
        for k in range(0, 8, 2):  # interleave pairs of rows
            t.append(_shuffle(builder, r[k], r[k + 1], [0, 8, 2, 10, 4, 12, 6, 14]))
            t.append(_shuffle(builder, r[k], r[k + 1], [1, 9, 3, 11, 5, 13, 7, 15]))
        lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
        s = [None] * 8  # interleave pairs of pairs
        for a, b in ((0, 2), (1, 3), (4, 6), (5, 7)):
            s[a] = _shuffle(builder, t[a], t[b], lo)
            s[b] = _shuffle(builder, t[a], t[b], hi)
        out = [None] * 8  # join 256-bit halves
        for k in range(4):
            out[k] = _shuffle(builder, s[k], s[k + 4], [0, 1, 2, 3, 8, 9, 10, 11])
            out[k + 4] = _shuffle(builder, s[k], s[k + 4], [4, 5, 6, 7, 12, 13, 14, 15])
        return context.make_tuple(builder, sig.return_type, out)

    return types.UniTuple(_f64x8, 8)(*([_f64x8] * 8)), codegen


# ------------------------------------------------ additions for the multigrid (steady.py)
@intrinsic
def vmload(typingctx, a, offset, bits, v):
    """``v`` with the lanes set in ``bits`` replaced by a[offset + m] (llvm.masked.load;
    the other lanes are not read, so they may lie outside the array)."""
    _check_array(a)

    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        mask = _lane_mask(builder, args[2])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [ptr.type, _I32, mask.type, _VEC]),
            "llvm.masked.load.v8f64.p0v8f64")
        return builder.call(fn, [ptr, ir.Constant(_I32, 8), mask, args[3]])

    return _f64x8(a, types.intp, types.intp, _f64x8), codegen


@intrinsic
def vmstore(typingctx, a, offset, bits, v):
    """Store the lanes of ``v`` set in ``bits`` to a[offset + m] (llvm.masked.store; the
    other elements are neither read nor written)."""
    _check_array(a, writing=True)

    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        mask = _lane_mask(builder, args[2])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_VEC, ptr.type, _I32, mask.type]),
            "llvm.masked.store.v8f64.p0v8f64")
        builder.call(fn, [args[3], ptr, ir.Constant(_I32, 8), mask])
        return context.get_dummy_value()

    return types.void(a, types.intp, types.intp, _f64x8), codegen


@intrinsic
def vselect(typingctx, bits, v, w):
    """Lane m of ``v`` where bit m of ``bits`` is set, else lane m of ``w``."""

    def codegen(context, builder, sig, args):
        return builder.select(_lane_mask(builder, args[0]), args[1], args[2])

    return _f64x8(types.intp, _f64x8, _f64x8), codegen


@intrinsic
def vsub(typingctx, a, b):
    """``a - b`` lane by lane."""

    def codegen(context, builder, sig, args):
        return builder.fsub(*args)

    return _f64x8(_f64x8, _f64x8), codegen


@intrinsic
def vpairadd(typingctx, a, b):
    """Sums of neighbouring lanes: (a0 + a1, a2 + a3, a4 + a5, a6 + a7, b0 + b1, ..., b6 + b7)."""

    def codegen(context, builder, sig, args):
        even = _shuffle(builder, args[0], args[1], list(range(0, 16, 2)))
        odd = _shuffle(builder, args[0], args[1], list(range(1, 16, 2)))
        return builder.fadd(even, odd)

    return _f64x8(_f64x8, _f64x8), codegen


@intrinsic
def vswaphalves(typingctx, v):
    """``v`` with lanes 0-3 and 4-7 exchanged."""

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[0], [4, 5, 6, 7, 0, 1, 2, 3])

    return _f64x8(_f64x8), codegen


@intrinsic
def vlane(typingctx, v, k):
    """Lane ``k`` of ``v`` as a scalar."""

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], builder.trunc(args[1], _I32))

    return types.float64(_f64x8, types.intp), codegen


@intrinsic
def vbits_differ(typingctx, v, w):
    """Bit m set where lanes m of ``v`` and ``w`` differ in their bit patterns (so +0 and
    -0 differ, and a NaN equals the same NaN)."""

    def codegen(context, builder, sig, args):
        i64x8 = ir.VectorType(ir.IntType(64), 8)
        ne = builder.icmp_unsigned("!=", builder.bitcast(args[0], i64x8),
                                   builder.bitcast(args[1], i64x8))
        return builder.zext(builder.bitcast(ne, ir.IntType(8)), ir.IntType(64))

    return types.int64(_f64x8, _f64x8), codegen


@intrinsic
def vge_bits(typingctx, v, w):
    """Bit m set where lane m of ``v`` >= lane m of ``w`` (false for NaN)."""

    def codegen(context, builder, sig, args):
        ge = builder.fcmp_ordered(">=", args[0], args[1])
        return builder.zext(builder.bitcast(ge, ir.IntType(8)), ir.IntType(64))

    return types.int64(_f64x8, _f64x8), codegen


@intrinsic
def vlt_bits(typingctx, v, w):
    """Bit m set where lane m of ``v`` < lane m of ``w`` (false for NaN)."""

    def codegen(context, builder, sig, args):
        lt = builder.fcmp_ordered("<", args[0], args[1])
        return builder.zext(builder.bitcast(lt, ir.IntType(8)), ir.IntType(64))

    return types.int64(_f64x8, _f64x8), codegen


@intrinsic
def vslide_up(typingctx, a, b):
    """``b`` moved up one lane, the last lane of ``a`` entering: (a7, b0, b1, ..., b6)."""

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[1], list(range(7, 15)))

    return _f64x8(_f64x8, _f64x8), codegen


@intrinsic
def vslide_down(typingctx, b, c):
    """``b`` moved down one lane, the first lane of ``c`` entering: (b1, ..., b7, c0)."""

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[1], list(range(1, 9)))

    return _f64x8(_f64x8, _f64x8), codegen


@intrinsic
def vstretch(typingctx, e, k):
    """Lanes (k, k+1, k+1, k+2, k+2, k+3, k+3, k+4) of ``e``, for k = 0 or 1 (a literal): each
    coarse value twice, as the left (k = 0) or right (k = 1) neighbours of fine cells
    2J + 1, 2J + 2 in a 1:2 interpolation."""
    if not isinstance(k, types.IntegerLiteral) or k.literal_value not in (0, 1):
        raise TypingError("vstretch needs k = 0 or 1 as a literal")
    idx = [k.literal_value + (m + 1) // 2 for m in range(8)]

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[0], idx)

    return _f64x8(_f64x8, k), codegen


__all__ += ["vbits_differ", "vge_bits", "vlane", "vlt_bits", "vmload", "vmstore", "vpairadd",
            "vselect", "vslide_down", "vslide_up", "vstretch", "vsub", "vswaphalves"]


# ------------------------------------------ for the field worker (sim/fields/stepper.py)
@intrinsic
def atomic_fetch_add(typingctx, a, offset, value):
    """Add ``value`` to the int64 ``a[offset]`` atomically (sequentially consistent) and
    return the value it held before: threads claiming work from a shared counter each get a
    different number (llvm ``atomicrmw add``)."""
    if not (isinstance(a, types.Array) and a.dtype == types.int64 and a.layout == "C"
            and a.mutable):
        raise TypingError(f"atomic_fetch_add needs a writeable C-contiguous int64 array, "
                          f"got {a}")

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.int64(a, types.intp, types.int64), codegen


__all__ += ["atomic_fetch_add"]
