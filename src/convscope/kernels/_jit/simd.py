"""Explicit SIMD vectors for Numba loops: one vector = 64 bytes (16 float32 / 8 float64).

LLVM's auto-vectoriser does not keep a block of accumulators in registers when they live in
an array (it cannot prove the array does not alias the inputs), so register-blocked loops
came out 5-10x slower than they should. Here a vector is a value of its own Numba type,
lowered to an LLVM ``<16 x float>``; local variables of that type become registers.

Each operation is a plain Python function (used as is under ``NUMBA_DISABLE_JIT=1``, on
NumPy slices) with a Numba ``overload`` that emits the LLVM vector instruction:

``lanes(a)``                  values per vector for ``a``'s dtype (a compile-time constant)
``vzero(a)``                  a vector of zeros of ``a``'s dtype
``vsplat(a, s)``              ``s`` in every lane
``vload(a, i)``               ``a[i : i + lanes]`` of a 1-D contiguous array (unaligned)
``vstore(a, i, v)``           ``a[i : i + lanes] = v``
``vfma(a, b, c)``             ``a * b + c`` with one rounding per lane
``vadd(a, b)``, ``vsub``, ``vmul``  lane by lane
``vpick(v, m, a, b)``         per lane ``a`` where ``v > m`` or ``v`` is NaN, else ``b``
``veven(a, b)``               the even lanes of ``a`` then of ``b`` (a stride-2 load)
``vshift1(a, b)``, ``vshift2``  lanes 1.. (2..) of ``a`` then ``b``'s first: the vector one
                              (two) values further along, from two aligned loads
``vziplo(a, b)``, ``vziphi``   the lower (upper) halves of ``a`` and ``b`` interleaved:
                              ``a0 b0 a1 b1 ...`` (a stride-2 store)
``prefetch(a, i)``             ask for the cache line of ``a[i]`` (a hint: no effect on values;
                              ``i`` may lie past the end, nothing is read)
``vload_index(a, i, like)``   ``a[i : i + lanes]`` (integers) as a vector of ``like``'s floats
``vstore_index(a, i, v, base, step)``  ``a[i + l] = base + l * step + int(v[l])`` (integer ``a``)

No bounds are checked: callers guarantee ``0 <= i`` and ``i + lanes <= len(a)``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

VECTOR_BYTES = 64


def lanes(a):
    return VECTOR_BYTES // a.dtype.itemsize


def vzero(a):
    return np.zeros(lanes(a), a.dtype)


def vsplat(a, s):
    return np.full(lanes(a), s, a.dtype)


def vload(a, i):
    return a[i : i + lanes(a)].copy()


def vstore(a, i, v):
    a[i : i + len(v)] = v


def vfma(a, b, c):
    return (a * b + c).astype(a.dtype)


def vadd(a, b):
    return (a + b).astype(a.dtype)


def vsub(a, b):
    return (a - b).astype(a.dtype)


def vmul(a, b):
    return (a * b).astype(a.dtype)


def vpick(v, m, a, b):
    return np.where((v > m) | (v != v), a, b).astype(a.dtype)


def veven(a, b):
    return np.concatenate([a, b])[::2].copy()


def vshift1(a, b):
    return np.concatenate([a, b])[1 : 1 + len(a)].copy()


def vshift2(a, b):
    return np.concatenate([a, b])[2 : 2 + len(a)].copy()


def vziplo(a, b):
    return np.stack([a, b], axis=1).ravel()[: len(a)].copy()


def vziphi(a, b):
    return np.stack([a, b], axis=1).ravel()[len(a) :].copy()


def prefetch(a, i):
    return None


def vload_index(a, i, like):
    return a[i : i + lanes(like)].astype(like.dtype)


def vstore_index(a, i, v, base, step):
    a[i : i + len(v)] = base + np.arange(len(v)) * step + v.astype(np.int64)


# --------------------------------------------------------------------------- Numba side


class Vector(types.Type):
    """``lanes`` values of ``dtype`` held in one SIMD register."""

    def __init__(self, dtype, n):
        self.dtype, self.lanes = dtype, n
        super().__init__(name=f"Vector({dtype} x {n})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = ir.FloatType() if fe_type.dtype == types.float32 else ir.DoubleType()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _vector_of(dtype):
    return Vector(dtype, VECTOR_BYTES * 8 // dtype.bitwidth)


def _element_pointer(context, builder, arrty, arr, index, vector):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), context.get_value_type(vector).as_pointer())


@intrinsic
def _zero(typingctx, a):
    vt = _vector_of(a.dtype)
    return vt(a), lambda context, builder, sig, args: ir.Constant(context.get_value_type(vt), None)


@intrinsic
def _splat(typingctx, a, s):
    vt = _vector_of(a.dtype)

    def codegen(context, builder, sig, args):
        llvt = context.get_value_type(vt)
        value = context.cast(builder, args[1], sig.args[1], a.dtype)
        one = builder.insert_element(
            ir.Constant(llvt, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)
        )
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(one, ir.Constant(llvt, ir.Undefined), mask)

    return vt(a, s), codegen


@intrinsic
def _load(typingctx, a, i):
    vt = _vector_of(a.dtype)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, a, args[0], args[1], vt)
        return builder.load(ptr, align=a.dtype.bitwidth // 8)

    return vt(a, types.intp), codegen


@intrinsic
def _store(typingctx, a, i, v):
    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, a, args[0], args[1], v)
        builder.store(args[2], ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(a, types.intp, v), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    def codegen(context, builder, sig, args):
        llvt = args[0].type
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(llvt, [llvt] * 3),
            f"llvm.fma.v{a.lanes}f{a.dtype.bitwidth}",
        )
        return builder.call(fn, args)

    return a(a, b, c), codegen


def _arith_intrinsic(op):
    @intrinsic
    def _arith(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return getattr(builder, op)(args[0], args[1])

        return a(a, b), codegen

    return _arith


_add, _sub, _mul = (_arith_intrinsic(op) for op in ("fadd", "fsub", "fmul"))


@overload(vadd)
def _vadd_impl(a, b):
    return lambda a, b: _add(a, b)


@overload(vsub)
def _vsub_impl(a, b):
    return lambda a, b: _sub(a, b)


@overload(vmul)
def _vmul_impl(a, b):
    return lambda a, b: _mul(a, b)


@intrinsic
def _pick(typingctx, v, m, a, b):
    def codegen(context, builder, sig, args):
        value, best, x, y = args
        take = builder.or_(builder.fcmp_ordered(">", value, best),
                           builder.fcmp_unordered("uno", value, value))
        return builder.select(take, x, y)

    return a(v, m, a, b), codegen


@intrinsic
def _even(typingctx, a, b):
    def codegen(context, builder, sig, args):
        mask = ir.Constant(ir.VectorType(ir.IntType(32), a.lanes), list(range(0, 2 * a.lanes, 2)))
        return builder.shuffle_vector(args[0], args[1], mask)

    return a(a, b), codegen


def _shift_intrinsic(by):
    @intrinsic
    def _shift(typingctx, a, b):
        def codegen(context, builder, sig, args):
            mask = ir.Constant(ir.VectorType(ir.IntType(32), a.lanes),
                               list(range(by, by + a.lanes)))
            return builder.shuffle_vector(args[0], args[1], mask)

        return a(a, b), codegen

    return _shift


_shift1, _shift2 = _shift_intrinsic(1), _shift_intrinsic(2)


@overload(vshift1)
def _vshift1_impl(a, b):
    return lambda a, b: _shift1(a, b)


@overload(vshift2)
def _vshift2_impl(a, b):
    return lambda a, b: _shift2(a, b)


def _zip_intrinsic(upper):
    @intrinsic
    def _zip(typingctx, a, b):
        first = a.lanes // 2 if upper else 0
        order = [first + k // 2 + (k % 2) * a.lanes for k in range(a.lanes)]

        def codegen(context, builder, sig, args):
            mask = ir.Constant(ir.VectorType(ir.IntType(32), a.lanes), order)
            return builder.shuffle_vector(args[0], args[1], mask)

        return a(a, b), codegen

    return _zip


_ziplo, _ziphi = _zip_intrinsic(False), _zip_intrinsic(True)


@intrinsic
def _load_index(typingctx, a, i, like):
    vt = _vector_of(like.dtype)

    def codegen(context, builder, sig, args):
        it = ir.VectorType(ir.IntType(a.dtype.bitwidth), vt.lanes)
        data = context.make_array(a)(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), it.as_pointer())
        ints = builder.load(ptr, align=a.dtype.bitwidth // 8)
        return builder.sitofp(ints, context.get_value_type(vt))

    return vt(a, types.intp, like), codegen


@intrinsic
def _prefetch(typingctx, a, i):
    def codegen(context, builder, sig, args):
        data = context.make_array(a)(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(a, types.intp), codegen


@overload(prefetch)
def _prefetch_impl(a, i):
    return lambda a, i: _prefetch(a, i)


@overload(vziplo)
def _vziplo_impl(a, b):
    return lambda a, b: _ziplo(a, b)


@overload(vziphi)
def _vziphi_impl(a, b):
    return lambda a, b: _ziphi(a, b)


@overload(vload_index)
def _vload_index_impl(a, i, like):
    return lambda a, i, like: _load_index(a, i, like)


@intrinsic
def _store_index(typingctx, a, i, v, base, step):
    def codegen(context, builder, sig, args):
        arr, at, vec, b0, st = args
        ity = a.dtype  # int32 or int64: the index array's own width
        vt = ir.VectorType(ir.IntType(ity.bitwidth), v.lanes)
        ints = builder.fptosi(vec, vt)
        b0 = context.cast(builder, b0, sig.args[3], ity)
        st = context.cast(builder, st, sig.args[4], ity)
        undef = ir.Constant(vt, ir.Undefined)
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), v.lanes), [0] * v.lanes)
        first = ir.Constant(ir.IntType(32), 0)
        bv = builder.shuffle_vector(builder.insert_element(undef, b0, first), undef, zeros)
        sv = builder.shuffle_vector(builder.insert_element(undef, st, first), undef, zeros)
        lanes_v = ir.Constant(vt, list(range(v.lanes)))
        total = builder.add(builder.add(bv, builder.mul(lanes_v, sv)), ints)
        data = context.make_array(a)(context, builder, arr).data
        ptr = builder.bitcast(builder.gep(data, [at]), vt.as_pointer())
        builder.store(total, ptr, align=8)
        return context.get_dummy_value()

    return types.none(a, types.intp, v, types.intp, types.intp), codegen


@overload(vstore_index)
def _vstore_index_impl(a, i, v, base, step):
    return lambda a, i, v, base, step: _store_index(a, i, v, base, step)


@overload(vpick)
def _vpick_impl(v, m, a, b):
    return lambda v, m, a, b: _pick(v, m, a, b)


@overload(veven)
def _veven_impl(a, b):
    return lambda a, b: _even(a, b)


@overload(lanes)
def _lanes_impl(a):
    n = VECTOR_BYTES // (a.dtype.bitwidth // 8)
    return lambda a: n


@overload(vzero)
def _vzero_impl(a):
    return lambda a: _zero(a)


@overload(vsplat)
def _vsplat_impl(a, s):
    return lambda a, s: _splat(a, s)


@overload(vload)
def _vload_impl(a, i):
    return lambda a, i: _load(a, i)


@overload(vstore)
def _vstore_impl(a, i, v):
    return lambda a, i, v: _store(a, i, v)


@overload(vfma)
def _vfma_impl(a, b, c):
    return lambda a, b, c: _fma(a, b, c)

