"""fastbp._kernels.vmath: error bounds in ulps over sweeps with every edge, libm's
special values, one answer whichever code path (SIMD body or scalar remainder) computes
an element, and a SIMD loop where the kernels call them."""

import re

import numpy as np
import pytest
from numba import njit

from fastbp._config import JIT_OPTIONS
from fastbp._kernels import vmath

# The bounds the module's docstring states, in ulps of the exact result in the dtype.
BOUND = {"exp": 2.0, "log": 2.0, "tanh": 3.0, "logistic": 3.0, "expm1": 3.0, "log1p": 2.0}
DTYPES = [np.float64, np.float32]

# x86 long double carries 11 more bits than float64: its libm is exact to well under
# 0.01 float64 ulp. Where long double is float64 the reference itself may be 1 ulp off.
EXTENDED = np.finfo(np.longdouble).nmant >= 60
REF_SLACK = 0.0 if EXTENDED else 1.0


def reference(name, x):
    """The function at ``x`` in long double (from float32 inputs: exactly their value)."""
    x = x.astype(np.longdouble)
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(x)
        if name == "log":
            return np.log(x)
        if name == "tanh":
            return np.tanh(x)
        if name == "expm1":
            return np.expm1(x)
        if name == "log1p":
            return np.log1p(x)
        return 1 / (1 + np.exp(-x))


def ulp_error(got, want, dtype):
    """|got - want| in units of the last place of ``want`` in ``dtype`` (the subnormals'
    spacing below the normal range)."""
    info = np.finfo(dtype)
    _, e = np.frexp(np.abs(want).astype(np.float64))
    ulp = np.ldexp(1.0, e - 1 - info.nmant).astype(np.longdouble)
    ulp = np.maximum(ulp, np.longdouble(info.smallest_subnormal))
    return np.abs(got.astype(np.longdouble) - want) / ulp


def edges(dtype):
    """Inputs where implementations go wrong: zeros, subnormals, the extremes, the
    exp overflow / underflow thresholds and their neighbours, inf, NaN, huge |x|."""
    info = np.finfo(dtype)
    big = np.log(np.float64(info.max))
    small = np.log(np.float64(info.smallest_subnormal))
    points = [0.0, -0.0, 1.0, -1.0, info.smallest_subnormal, info.tiny, info.tiny / 3,
              info.max, -info.max, np.inf, -np.inf, np.nan, big, -big, small,
              small - 1.0, np.log(np.float64(info.tiny)), 0.625, -0.625, 1e-30, -1e-30,
              -1e4, 1e4]
    points = np.array(points, dtype=dtype)
    with np.errstate(over="ignore"):  # the neighbour of max is inf
        near = np.concatenate(
            [np.nextafter(points, np.array(np.inf, dtype)), np.nextafter(points, -points)]
        )
    return np.concatenate([points, near, -points])


def sweep(name, dtype, n=20000):
    """Seeded inputs over the function's whole range plus the edges."""
    rng = np.random.default_rng(12)
    info = np.finfo(dtype)
    lim = np.log(np.float64(info.max)) * 1.05
    lo = np.log(np.float64(info.smallest_subnormal))
    hi = np.log(np.float64(info.max))
    parts = [edges(dtype), rng.uniform(-1, 1, n), rng.uniform(-lim, lim, n),
             rng.uniform(-25, 25, n),
             # every binade below 1, both signs: where expm1 and log1p earn their keep
             rng.choice([-1.0, 1.0], n) * np.exp(rng.uniform(lo, 0.0, n))]
    if name in ("log", "log1p"):  # every binade above too, and the neighbourhood of -1
        parts.append(np.exp(rng.uniform(lo, hi, n)))
        parts.append(rng.uniform(0.5, 2.0, n) - (name == "log1p"))
    with np.errstate(over="ignore"):
        return np.concatenate([np.asarray(p).astype(dtype) for p in parts])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BOUND))
def test_error_bound_and_special_values(name, dtype):
    x = sweep(name, dtype)
    got = getattr(vmath, name)(x)
    assert got.dtype == dtype
    want = reference(name, x)
    with np.errstate(over="ignore"):
        rounded = want.astype(dtype)
    special = ~np.isfinite(rounded) | (rounded == 0)
    # NaN, inf, 0 and -0 (log(0) = -inf, exp(-inf) = 0, tanh(-0) = -0) exactly as libm
    np.testing.assert_array_equal(got[special], rounded[special])
    signed = special & ~np.isnan(rounded)  # a NaN's sign bit means nothing
    assert (np.signbit(got[signed]) == np.signbit(rounded[signed])).all()
    err = ulp_error(got[~special], want[~special], dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= BOUND[name] + REF_SLACK, (
        f"{name}({x[~special][worst]!r}) = {got[~special][worst]!r}: "
        f"{float(err[worst]):.3f} ulp"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BOUND))
def test_same_bits_in_the_simd_body_and_the_scalar_remainder(name, dtype):
    # a long array runs mostly through the vector body; one element at a time runs
    # through the scalar remainder loop: kernels must not depend on where a value sits
    x = sweep(name, dtype, n=300)
    whole = getattr(vmath, name)(x)
    one_by_one = np.array([getattr(vmath, name)(x[i : i + 1])[0] for i in range(x.size)])
    np.testing.assert_array_equal(whole.view(np.uint8), one_by_one.view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BOUND))
def test_a_loop_over_them_compiles_to_simd_code_in_the_dtype(name, dtype):
    fn = getattr(vmath, name)

    @njit(**{**JIT_OPTIONS, "cache": False})
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    x = np.ones(64, dtype=dtype)
    loop(x, np.empty_like(x))
    ir = loop.inspect_llvm(loop.signatures[0])
    float_t = "double" if dtype == np.float64 else "float"
    # the loop vectorised (any SIMD width), with no libm call left to scalarise ...
    assert re.search(rf"<\d+ x {float_t}>", ir)
    assert not re.search(r"@(llvm\.)?(exp|log|tanh)[\w.]*\(", ir)
    # ... and a float32 loop never widens to float64
    if dtype == np.float32:
        assert not re.search(r"<\d+ x double>", ir)
