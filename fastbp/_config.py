"""One place for the compiler flags and the dtype policy of the compiled core."""

import functools
import hashlib
import os
import warnings

import numpy as np

from . import _cache_lock

# LLVM fast-math flags for every kernel. `nnan` and `ninf` are deliberately absent:
# divergence shows up as NaN/inf in the loss or the weights, and the estimators must
# see it to stop and raise. `reassoc` is absent too, so that a kernel's result does not
# depend on how the compiler vectorised a reduction (parity with scikit-learn); the one
# exception, the squared norm behind the reported L2 term, says why in penalties.py.
FASTMATH = {"nsz", "arcp", "contract"}

# Every kernel is compiled with the on-disk cache, so that a second process does not
# pay the compile time again. error_model="numpy": a float division by zero gives inf/NaN
# (which the estimators detect as divergence) instead of raising ZeroDivisionError; the
# Python model's zero check on every division also stops LLVM from vectorising loops
# that divide (measured: Adam's update ran 4x slower with it).
#
# no_cfunc_wrapper: no kernel is called as a C callback (the activations, losses,
# optimizer rules and finishing passes, which are, are numba.cfunc and make their own);
# numba would otherwise compile a C wrapper for every function it compiles.
JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy",
                   no_cfunc_wrapper=True)


def _cache_writable():
    """Whether numba finds a writable cache directory for the kernels: next to their
    source (``fastbp/_kernels/__pycache__``), in ``NUMBA_CACHE_DIR`` or in the user's
    cache directory. numba's own locators decide; without one, ``cache=True`` makes
    numba raise at import (a read-only install with no writable home or cache dir)."""
    try:
        import numba.core.caching  # noqa: F401
    except ImportError:  # another numba layout: let numba decide as before
        return True
    return kernels_cache_folder() is not None


@functools.cache
def kernels_cache_folder():
    """The folder numba's locators choose for the kernels' cache (the first that takes
    a file of ``_kernels``, as numba asks them); None if none does, or with another
    numba layout."""
    try:
        from numba.core.caching import CacheImpl
    except ImportError:
        return None
    source = os.path.join(os.path.dirname(__file__), "_kernels", "activations.py")
    for locator in CacheImpl._locator_classes:
        try:
            found = locator.from_function(_cache_writable, source)
        except Exception:  # a locator that cannot even be asked counts as absent
            continue
        if found is not None:
            return found.get_cache_path()
    return None


KERNELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels")
_FLAGS_FILE = os.path.abspath(__file__)


def kernels_stamp(folder=KERNELS_DIR, extra=(_FLAGS_FILE,)):
    """A hash of the names and contents of all the ``.py`` files of ``folder``
    (``fastbp/_kernels``) and of the files ``extra`` (this one: the compile flags),
    re-hashed when one of them changes.

    numba stamps a cached function with its own file alone. A kernel holds copies of the
    helpers it links or inlines from other files, calls the passes of
    ``_kernels.unlinked`` where they are now, and was compiled with this module's flags:
    a kernel cached before another file changed would run old helpers beside new passes.
    The kernels' cache stamp is this hash, as the process first computed it, with
    numba's own stamp of the function's file (the locators below)."""
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".py"))
    paths += list(extra)
    key = tuple((p, st.st_mtime_ns, st.st_size) for p, st in ((p, os.stat(p)) for p in paths))
    return _hashed(key)


@functools.cache
def _hashed(key):  # the files' mtimes and sizes in the key: re-hashed on a change
    digest = hashlib.sha256()
    for path, *_ in key:
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


@functools.cache
def _first_kernels_stamp():
    return kernels_stamp()


def _stamp_the_kernels():
    """Put locators in front of numba's that take the kernels' files (and only those) to
    the same places as numba's own, stamped with ``kernels_stamp``, and lock the folders
    they choose (``_cache_lock``: several processes may fill the cache at once)."""
    try:
        from numba.core import caching
    except ImportError:  # another numba layout: numba's own stamps
        return
    _cache_lock.install()
    if any(getattr(c, "_fastbp", False) for c in caching.CacheImpl._locator_classes):
        return
    made = []
    for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                 caching.UserWideCacheLocator):
        class Kernels(base):
            _fastbp = True

            def get_source_stamp(self):
                # all the files as this process first saw them (hashed once: every
                # dispatcher asks at import), and the function's own file as numba
                # stamps it (a module edited and imported again compiles again)
                return _first_kernels_stamp(), super().get_source_stamp()

            @classmethod
            def from_function(cls, py_func, py_file):
                if os.path.dirname(os.path.abspath(py_file)) != KERNELS_DIR:
                    return None
                locator = super().from_function(py_func, py_file)
                if locator is not None:
                    _cache_lock.register(locator.get_cache_path())
                return locator

        Kernels.__name__ = Kernels.__qualname__ = f"Kernels{base.__name__}"
        made.append(Kernels)
    caching.CacheImpl._locator_classes[:0] = made


_stamp_the_kernels()

if not _cache_writable():
    JIT_OPTIONS["cache"] = False
    warnings.warn(
        "fastbp: no writable directory for numba's cache (read-only install, and no "
        "writable NUMBA_CACHE_DIR or user cache directory): the kernels compile in every "
        "new process. Set NUMBA_CACHE_DIR to a writable directory to keep them.",
        RuntimeWarning,
        stacklevel=2,
    )

# Small helpers that one pass calls are inlined into it by numba, before typing, instead
# of being compiled on their own (the backward pass into ``train.batch_loss_grad``, the
# optimizer step into ``train.update`` and the parallel epochs). numba finalises every
# compiled function as a whole module (callees linked in, the full LLVM pipeline over
# all of them, machine code emitted), so each level of the call tree optimised the
# whole tree below it again. Inlining the loss-and-gradient step and the backward pass
# took a cold first fit (digits, float64, CPU medians of 3 alternating fresh processes,
# load 2.2-2.5) from 9.6 to 8.0 s, but typed them again in every entry kernel: the
# passes that several kernels share are now called without a copy instead
# (``_kernels.unlinked``). Made after the read-only fallback above, whose cache setting
# it must carry.
INLINED_JIT_OPTIONS = dict(JIT_OPTIONS, inline="always")

# Functions that only compiled code calls (everything below the entry kernels) are
# compiled without numba's CPython wrapper, the boxing and unboxing code that lets Python
# call them: each of the two dozen helpers a first fit compiles paid for one it never
# used. Measured with the matrix products of ``_kernels.blas`` (cold first digits fit,
# float64, CPU, alternating fresh processes, load 1.2-1.9): 7.0-7.5 -> 5.1-5.6 s, and
# 16.6-17.2 -> 13.7-14.7 s for it plus a predict, an early-stopping, an sgd and an
# L-BFGS fit. Tests call them from Python through a compiled trampoline.
HELPER_JIT_OPTIONS = dict(JIT_OPTIONS, no_cpython_wrapper=True)

# Training runs in the dtype of X when X is float32 or float64; anything else becomes
# float64 (scikit-learn's rule).
FLOAT_DTYPES = (np.float64, np.float32)

# The dtypes whose kernels compute with subnormal numbers flushed to zero (x86-64's FTZ
# and DAZ bits, set for the kernel's duration only; ``_kernels.fpenv`` says why and what
# it measured). float64 keeps IEEE arithmetic: its results are scikit-learn's.
FLUSH_SUBNORMALS = (np.float32,)

# Rows per chunk when a kernel walks a whole data set (lbfgs loss, predict): bounds the
# workspace to chunk x widest layer instead of n_samples x widest layer. 256, not more:
# the weight gradient of a chunk is a product summed over its rows, and OpenBLAS rounds
# such long sums differently when two threads call it at once (measured: two lbfgs fits
# in two threads differed from the same fits run alone by 4e-14 with 1024-row chunks,
# and not at all with 256).
CHUNK_ROWS = 256
