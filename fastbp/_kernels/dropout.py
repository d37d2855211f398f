"""Inverted dropout with counter-based random numbers.

Every mask entry is a pure function of ``(seed, step, layer, row, unit)``: a SplitMix64
hash turned into a uniform number in [0, 1). No generator state is carried or shared, so
masks are reproducible from ``random_state``, identical for any thread count or order of
evaluation, and two estimators training in two threads cannot disturb each other.
"""

import numpy as np
from numba import njit

from .._config import HELPER_JIT_OPTIONS

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(**HELPER_JIT_OPTIONS)
def mix(x):
    """SplitMix64's output function of the counter ``x`` (uint64 -> uint64)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX_1
    z = (z ^ (z >> _S27)) * _MIX_2
    return z ^ (z >> _S31)


@njit(**HELPER_JIT_OPTIONS)
def unit(h):
    """The top 53 bits of the hash ``h`` as a float64 in [0, 1)."""
    return float(h >> _S11) * _TO_UNIT


@njit(**HELPER_JIT_OPTIONS)
def batch_key(seed, step):
    """Key of one minibatch: ``seed`` and the global step count (int64 each)."""
    return mix(mix(np.uint64(seed)) ^ np.uint64(step))


@njit(**HELPER_JIT_OPTIONS)
def apply(A, dA, p, key, layer, row0):
    """Drop each entry of ``A`` with probability ``p``; scale the kept by 1 / (1 - p).

    ``dA`` holds f'(z) of the same layer and gets the same factor, so the backward pass
    multiplies by mask * f'(z) in one product. ``key`` comes from ``batch_key``; row i of
    ``A`` is row ``row0 + i`` of the minibatch (a block of it in the parallel kernels,
    which so draw the same masks as one pass over the whole batch).
    """
    n, m = A.shape
    scale = A.dtype.type(1.0 / (1.0 - p))  # A's dtype: no float64 pass over float32
    zero = A.dtype.type(0.0)
    base = mix(key ^ mix(np.uint64(layer)))
    for i in range(n):
        for j in range(m):
            u = unit(mix(base + np.uint64((row0 + i) * m + j) * _GOLDEN))
            if u < p:
                A[i, j] = zero
                dA[i, j] = zero
            else:
                A[i, j] *= scale
                dA[i, j] *= scale
