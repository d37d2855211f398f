"""The BLAS thread policy of fit and predict.

The kernels are single-threaded numba code around BLAS matrix products (numba's np.dot
calls scipy's BLAS), so the only thread pool at work is BLAS's. Measured on the 2-core
development machine (`python -m fastbp bench`): a second BLAS thread gains nothing on
small products (digits, 32 x 64 x 64: 1.00x) and up to 1.6x on wide ones (512 x 1024 x
1024), but when another process holds a core, a 2-thread product waits for the
descheduled thread: an epoch ran 60x slower than with one thread (and so did
scikit-learn's). Hence the default: one thread for networks whose largest product per
batch is small, the environment's setting otherwise, and never more threads than the
environment allows (a Dask or joblib worker's share, OMP_NUM_THREADS, an outer
``threadpool_limits``). Every change is undone when the call returns.
"""

import os
import threading
from contextlib import contextmanager, nullcontext

# Multiply-adds of a batch's largest matrix product below which one thread is used.
SMALL_PRODUCT = 1 << 21
# ... and below which there is nothing to decide (BLAS does not split such products).
TINY_PRODUCT = 1 << 16

_controller = None


def _blas():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()  # scans the BLAS libraries loaded by now
    return _controller.select(user_api="blas")


def usable_cores():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def policy(n_threads, rows, units):
    """BLAS threads for batches of ``rows`` rows through layers ``units``: an int, or
    None to leave the environment's setting."""
    if n_threads is None:
        largest = max(int(rows) * int(units[i]) * int(units[i + 1])
                      for i in range(len(units) - 1))
        return 1 if largest < SMALL_PRODUCT else None
    return usable_cores() if n_threads == -1 else int(n_threads)


_lock = threading.Lock()
_users = 0  # fit/predict calls inside a limit, in all threads
_limiter = None  # restores the setting found by the first of them


_UNCHANGED = nullcontext()


def limited(threads):
    """Run the block with at most ``threads`` BLAS threads (None: unchanged).

    The BLAS setting is process-wide, so concurrent calls (threads fitting at once)
    share one limit: the first sets it, later ones may only lower it, and the last one
    out restores the original. A fit thus never sees its limit lifted by another
    thread's exit halfway through (which would change its rounding).
    """
    # None costs nothing (a generator context manager is a tenth of a one-row predict)
    return _UNCHANGED if threads is None else _limited(threads)


@contextmanager
def _limited(threads):
    global _users, _limiter
    blas = _blas()
    with _lock:
        current = [lib.num_threads for lib in blas.lib_controllers]
        if current and threads < max(current):  # never raise the environment's limit
            limiter = blas.limit(limits=min(threads, *current))
            if _limiter is None:
                _limiter = limiter
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
