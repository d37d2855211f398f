"""exp, log, expm1, log1p, tanh and logistic that LLVM can vectorise, in float32 and
float64.

numba compiles ``math.exp``/``log``/``tanh`` to scalar libm calls (PyPI's llvmlite has
no SVML), and a loop that calls a function is not vectorised. These are straight-line
arithmetic (range reduction, a polynomial, the exponent set by integer bit operations,
special inputs by selects), so a plain loop over an array compiles to SIMD code under
the project's fastmath flags (``_config.FASTMATH``: no ``nnan``/``ninf``, so NaN and inf
still travel through).

Each function takes a float32 or a float64 scalar and computes in that dtype. Special
inputs give what libm gives: exp overflows to inf, underflows through the subnormals to
0 (inside the float32 kernels, which flush subnormals on x86-64, straight to 0: see
``fpenv``), expm1(-inf) = -1, log(0) = log1p(-1) = -inf, log(x < 0) = NaN, odd functions
keep the sign of -0.0, NaN in gives NaN out. Error bound, in ulps of the exact result in
the dtype, asserted by tests/test_vmath.py over 80,000-120,000 seeded inputs per
function and dtype with every edge (zeros, subnormals, every binade below 1, the
overflow and underflow thresholds, inf, NaN): at most 2 ulp for exp, log and log1p, 3
ulp for expm1, tanh and logistic. The sweep's worst, float64 / float32: exp 0.94 / 1.00,
log 0.78 / 0.77, log1p 1.33 / 1.41, expm1 1.74 / 1.54, tanh 2.16 / 2.16, logistic 1.87 /
2.04.

Constants are derived below from their definitions (ln 2 to 40 digits, Taylor and
continued-fraction coefficients as exact fractions), not typed in.

From compiled code call ``exp(x)``, ``log(x)``, ... on scalars (numba picks the dtype's
version); from Python the same names map over arrays.
"""

import math
from collections import namedtuple
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .._config import FASTMATH, HELPER_JIT_OPTIONS, JIT_OPTIONS

# ---------------------------------------------------------------------------------------
# Constants, per dtype


def _ln2():
    with localcontext() as ctx:
        ctx.prec = 40
        return Decimal(2).ln()


def _split_ln2(bits):
    """ln 2 = hi + lo with ``bits`` significant bits in hi: k * hi is exact for the
    exponents k a dtype can reach, so x - k * hi loses nothing (Cody and Waite)."""
    ln2 = _ln2()
    hi = math.floor(ln2 * 2**bits) / 2**bits
    return hi, float(ln2 - Decimal(hi))


def _exp_taylor(degree):
    """1/n! for n = degree down to 2 (Horner order, highest first)."""
    return tuple(1.0 / math.factorial(n) for n in range(degree, 1, -1))


def _atanh_series(terms):
    """2/(2n+1) for n = terms down to 1: log(1+f) = 2 atanh(s), s = f/(2+f)."""
    return tuple(2.0 / (2 * n + 1) for n in range(terms, 0, -1))


def _tanh_pade(depth):
    """Numerator and denominator of Lambert's continued fraction
    tanh x = x / (1 + x^2 / (3 + x^2 / (5 + ...))) cut after ``depth`` levels, as
    polynomials in x^2 (Horner order): tanh x ~ x P(x^2) / Q(x^2)."""
    # convergents of b0 + a1/(b1 + a2/(b2 + ...)) with b_i = 2i + 1, a_i = x^2; a
    # polynomial is a list of Fractions, lowest power first
    def add(p, q):
        n = max(len(p), len(q))
        p, q = p + [Fraction(0)] * (n - len(p)), q + [Fraction(0)] * (n - len(q))
        return [a + b for a, b in zip(p, q, strict=True)]

    def scale(p, c):
        return [c * a for a in p]

    def times_x2(p):
        return [Fraction(0)] + p

    # value of the tail 1/(b_depth), built inwards: den/num of the fraction
    num, den = [Fraction(1)], [Fraction(2 * depth + 1)]
    for i in range(depth - 1, -1, -1):
        # new = b_i + x^2 * num/den  =  (b_i den + x^2 num) / den
        num, den = den, add(scale(den, Fraction(2 * i + 1)), times_x2(num))
    # tanh x / x = 1 / value = num / den
    return tuple(float(c) for c in reversed(num)), tuple(float(c) for c in reversed(den))


Consts = namedtuple(
    "Consts",
    "zero half one two inf nan ln2_hi ln2_lo log2e shifter shifter_bits mant_bits bias "
    "mant_mask one_bits x_min x_max exp_poly log_poly pade_p pade_q min_normal "
    "denorm_scale denorm_bits sqrt2 tanh_switch expm1_tiny",
)


def _consts(dtype, mant_bits, bias, hi_bits, exp_degree, log_terms, pade_depth, x_min,
            x_max):
    """The constants of one float dtype, as that dtype's scalars (numba freezes the
    tuple into the compiled code)."""
    cast = np.dtype(dtype).type
    int_dtype = np.int64 if cast is np.float64 else np.int32
    hi, lo = _split_ln2(hi_bits)
    # adding 1.5 * 2**mant_bits rounds to an integer held in the low mantissa bits
    shifter = cast(1.5 * 2.0**mant_bits)
    p, q = _tanh_pade(pade_depth)
    return Consts(
        zero=cast(0.0), half=cast(0.5), one=cast(1.0), two=cast(2.0),
        inf=cast(np.inf), nan=cast(np.nan),
        ln2_hi=cast(hi), ln2_lo=cast(lo), log2e=cast(1.0 / math.log(2.0)),
        shifter=shifter, shifter_bits=int(np.array(shifter).view(int_dtype)),
        mant_bits=mant_bits, bias=bias, mant_mask=(1 << mant_bits) - 1,
        one_bits=bias << mant_bits,
        # beyond these exp is inf or 0 in this dtype; clamping keeps k in range
        x_min=cast(x_min), x_max=cast(x_max),
        exp_poly=tuple(cast(c) for c in _exp_taylor(exp_degree)),
        log_poly=tuple(cast(c) for c in _atanh_series(log_terms)),
        pade_p=tuple(cast(c) for c in p), pade_q=tuple(cast(c) for c in q),
        min_normal=cast(np.finfo(cast).tiny),
        # log scales a subnormal by 2**(mant_bits + 2) into the normal range first
        denorm_scale=cast(2.0 ** (mant_bits + 2)), denorm_bits=mant_bits + 2,
        sqrt2=cast(math.sqrt(2.0)),
        tanh_switch=cast(0.625),  # below: the Pade form; above: through exp(2|x|)
        expm1_tiny=cast(2.0 ** -(mant_bits + 2)),  # below: expm1(x) rounds to x
    )


# degree / terms / depth: the fewest whose truncation error is under 0.05 ulp on the
# reduced range (|r| <= ln2/2 for exp, |s| <= 0.1716 for log, |x| <= 0.625 for tanh)
_C64 = _consts(np.float64, 52, 1023, 32, 13, 11, 9, -746.0, 710.0)
_C32 = _consts(np.float32, 23, 127, 14, 7, 5, 5, -104.0, 89.0)

# ---------------------------------------------------------------------------------------
# Bit casts (LLVM ``bitcast``: free, and vectorisable)


@intrinsic
def _bits(typingctx, x):
    """The bit pattern of the float64 / float32 ``x`` as int64 / int32."""
    if x not in (types.float64, types.float32):
        return None
    sig = types.intp(x) if x == types.float64 else types.int32(x)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@intrinsic
def _from_bits(typingctx, bits, like):
    """The float of ``like``'s type whose bit pattern is the integer ``bits``, truncated
    or extended to that width (numba widens int32 arithmetic to int64)."""
    if not isinstance(bits, types.Integer) or like not in (types.float64, types.float32):
        return None
    sig = like(bits, like)

    def codegen(context, builder, signature, args):
        ftype = context.get_value_type(signature.return_type)
        itype = ir.IntType(ftype.get_abi_size(context.target_data) * 8)
        value = args[0]
        if value.type.width > itype.width:
            value = builder.trunc(value, itype)
        elif value.type.width < itype.width:
            value = builder.sext(value, itype)
        return builder.bitcast(value, ftype)

    return sig, codegen


@intrinsic
def _to_float(typingctx, k, like):
    """The integer ``k`` converted to the float type of ``like`` (numba would make
    float32 * int64 a float64)."""
    if not isinstance(k, types.Integer) or like not in (types.float64, types.float32):
        return None

    def codegen(context, builder, signature, args):
        return builder.sitofp(args[0], context.get_value_type(signature.return_type))

    return like(k, like), codegen


# ---------------------------------------------------------------------------------------
# The kernels, generic over the dtype: ``c`` is that dtype's constant tuple (_C32 or
# _C64), a compile-time constant once inlined


@njit(**HELPER_JIT_OPTIONS)
def _poly(coefs, v):
    """Horner's rule, highest coefficient first."""
    q = coefs[0]
    for a in coefs[1:]:
        q = q * v + a
    return q


@njit(**HELPER_JIT_OPTIONS)
def _exp_parts(x, c):
    """``(e**r - 1, k)`` with x = k ln2 + r, |r| <= ln2 / 2, for x clamped to
    [x_min, x_max]. NaN compares false, so it becomes x_max (k stays in range): callers
    put it back; +-inf and huge |x| land on the clamps, whose exp is inf / 0."""
    xc = x if x < c.x_max else c.x_max
    xc = xc if xc > c.x_min else c.x_min
    t = xc * c.log2e + c.shifter
    k = _bits(t) - c.shifter_bits  # round(x / ln 2), from t's low mantissa bits
    kf = t - c.shifter
    r = (xc - kf * c.ln2_hi) - kf * c.ln2_lo
    return r + r * r * _poly(c.exp_poly, r), k


@njit(**HELPER_JIT_OPTIONS)
def _scale(p, k, c, like):
    """p * 2**k in two halves, so that neither overflows the exponent field: the
    second product rounds once into the subnormals, or overflows to inf."""
    k1 = k >> 1
    s1 = _from_bits((k1 + c.bias) << c.mant_bits, like)
    s2 = _from_bits((k - k1 + c.bias) << c.mant_bits, like)
    return (p * s1) * s2


@njit(**HELPER_JIT_OPTIONS)
def _exp(x, c):
    em1r, k = _exp_parts(x, c)
    e = _scale(c.one + em1r, k, c, x)
    return e if x == x else x


@njit(**HELPER_JIT_OPTIONS)
def _expm1(x, c):
    em1r, k = _exp_parts(x, c)
    s = _scale(c.one, k, c, x)  # 2**k: 0 below the subnormals, inf above the range
    y = s * em1r + (s - c.one)  # s - 1 exact while 2**k - 1 fits the mantissa
    # beyond that e**x - 1 rounds like e**x (and s * em1r + (s - 1) could be inf - inf)
    y = _scale(c.one + em1r, k, c, x) - c.one if k > c.mant_bits + 2 else y
    y = x if abs(x) < c.expm1_tiny else y  # x + x**2/2 rounds to x; keeps -0.0
    return y if x == x else x


@njit(**HELPER_JIT_OPTIONS)
def _log(x, c):
    tiny = x < c.min_normal
    bits = _bits(x * c.denorm_scale if tiny else x)
    k = (bits >> c.mant_bits) - c.bias
    k = k - c.denorm_bits if tiny else k
    m = _from_bits((bits & c.mant_mask) | c.one_bits, x)  # x = m 2**k, 1 <= m < 2
    big = m > c.sqrt2
    m = m * c.half if big else m  # now sqrt(1/2) < m <= sqrt(2): |s| <= 0.1716
    kf = _to_float(k + 1 if big else k, x)
    f = m - c.one  # exact
    s = f / (c.two + f)
    R = s * s * _poly(c.log_poly, s * s)  # 2 atanh(s) = 2 s + s R
    hfsq = c.half * f * f
    # log(1+f) = f - hfsq + s (hfsq + R): f exact, the rest small corrections
    y = kf * c.ln2_hi + (f - (hfsq - (s * (hfsq + R) + kf * c.ln2_lo)))
    y = x if x == c.inf else y
    y = y if x > c.zero else c.nan  # negative or NaN
    return -c.inf if x == c.zero else y


@njit(**HELPER_JIT_OPTIONS)
def _log1p(x, c):
    w = c.one + x
    lw = _log(w, c)
    # w rounds 1 + x; (x - (w - 1)) / w is the first-order term of what it lost
    y = lw + (x - (w - c.one)) / w
    y = x if w == c.one else y  # |x| under half an ulp of 1: log1p(x) = x; keeps -0.0
    # w = 0 (x = -1), w < 0, NaN, inf: the correction is 0/0 or inf - inf; log(w) is right
    return y if (w > c.zero and w != c.inf) else lw


@njit(**HELPER_JIT_OPTIONS)
def _tanh(x, c):
    a = abs(x)
    x2 = x * x
    small = x * (_poly(c.pade_p, x2) / _poly(c.pade_q, x2))  # keeps the sign of -0.0
    # 1 - 2 / (e**2a + 1): no cancellation once tanh a >= 1/2; e**2a = inf gives 1
    t = c.one - c.two / (_exp(c.two * a, c) + c.one)
    large = t if x > c.zero else -t  # NaN: t is NaN already
    return small if a < c.tanh_switch else large


@njit(**HELPER_JIT_OPTIONS)
def _logistic(x, c):
    # e = exp(-|x|) <= 1 never overflows; 1 / (1 + e) or e / (1 + e) by the sign
    e = _exp(-abs(x), c)
    return (c.one if x >= c.zero else e) / (c.one + e)


# ---------------------------------------------------------------------------------------
# Public names: numba overloads on scalars, array maps from Python

_KERNELS = {"exp": _exp, "log": _log, "tanh": _tanh, "logistic": _logistic,
            "expm1": _expm1, "log1p": _log1p}
_CODES = {name: i for i, name in enumerate(_KERNELS)}


def _register(public, kernel):
    # log1p's overload is inlined into the caller's numba IR: LLVM's inliner declined
    # the float64 log1p (log inside it), and a call left in a loop keeps it scalar.
    # Inlining all of them compiled activate in 9.6 s of CPU instead of 4.1 s.
    @overload(public, inline="always" if kernel is _log1p else "never",
              jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
    def _select(x):
        if x == types.float32:
            return lambda x: kernel(x, _C32)
        if x == types.float64:
            return lambda x: kernel(x, _C64)
        return None


def exp(x):
    """e**x elementwise (at most 2 ulp). Compiled code: a scalar; Python: an array."""
    return _map(x, _CODES["exp"])


def log(x):
    """Natural log elementwise (at most 2 ulp). Compiled code: a scalar; Python: an array."""
    return _map(x, _CODES["log"])


def tanh(x):
    """tanh elementwise (at most 3 ulp). Compiled code: a scalar; Python: an array."""
    return _map(x, _CODES["tanh"])


def logistic(x):
    """1 / (1 + e**-x) elementwise (at most 3 ulp). Compiled code: a scalar; Python: an
    array."""
    return _map(x, _CODES["logistic"])


def expm1(x):
    """e**x - 1 elementwise (at most 3 ulp). Compiled code: a scalar; Python: an array."""
    return _map(x, _CODES["expm1"])


def log1p(x):
    """log(1 + x) elementwise (at most 2 ulp). Compiled code: a scalar; Python: an
    array."""
    return _map(x, _CODES["log1p"])


for _public in (exp, log, tanh, logistic, expm1, log1p):
    _register(_public, _KERNELS[_public.__name__])


@njit(**JIT_OPTIONS)
def _map_loop(x, out, code):
    """out[i] = f(x[i]), one plain loop per function: the loop shape the kernels use,
    so the values are those of the SIMD code."""
    if code == 0:
        for i in range(x.shape[0]):
            out[i] = exp(x[i])
    elif code == 1:
        for i in range(x.shape[0]):
            out[i] = log(x[i])
    elif code == 2:
        for i in range(x.shape[0]):
            out[i] = tanh(x[i])
    elif code == 3:
        for i in range(x.shape[0]):
            out[i] = logistic(x[i])
    elif code == 4:
        for i in range(x.shape[0]):
            out[i] = expm1(x[i])
    else:
        for i in range(x.shape[0]):
            out[i] = log1p(x[i])


def _map(x, code):
    """Apply function ``code`` to every element of ``x``; float32 stays float32,
    anything else is computed in float64."""
    x = np.asarray(x)
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    out = np.empty_like(x)
    _map_loop(np.ascontiguousarray(x).reshape(-1), out.reshape(-1), code)
    return out
