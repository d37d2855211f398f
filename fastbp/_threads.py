"""Threads of fit and predict: the budget, the threading layer, and BLAS kept at one.

fastbp's own kernels carry the parallelism (``fastbp._kernels.parallel``): numba
``prange`` regions over a decomposition fixed by the data and the network, never by
the thread count, so results are bit-identical for any ``n_threads``. BLAS runs
single-threaded under every fit and predict: its threads would oversubscribe the
regions, and its static split waits for a thread that another process has
descheduled (measured: an epoch ran 6x slower with one core busy).

Which kernels run parallel (``blocked``, ``whole_data``) depends on the work only: a
minibatch step or a pass too small to pay for a region's start (a few microseconds)
stays serial, and its kernel is never compiled in parallel form.

The threading layer is numba's TBB one when the ``tbb`` package is installed (a
dependency on Linux x86-64): work stealing (an idle thread takes the next task, so a
descheduled thread delays only its own), safe after ``fork`` and in concurrent Python
threads. numba's fallbacks: OpenMP (thread-safe, not fork-safe with GNU's runtime) or
its workqueue (fork-safe, but it aborts on concurrent calls, so fastbp's parallel
kernels then take turns through a lock).
"""

import ctypes
import os
import sys
import threading
from contextlib import contextmanager, nullcontext

from . import _blas as blas_library

# Multiply-adds (rows x parameters) of a minibatch step from which the training step
# runs blocked and parallel; below it a step takes under ~20 us on one core.
PARALLEL_STEP = 1 << 20
# ... and of a whole-data pass: a forward pass (predict, the validation loss) from about
# 3 ms on one core; L-BFGS's loss and gradient (three products per layer) from a
# quarter of that work. Higher than a step's threshold mainly because each parallel
# pass is one more kernel to compile on first use, and below it a second thread gained
# little or nothing: a small pass is not worth that wait. Measured (predict of a
# digits-shaped float64 model, 4,810 parameters, medians of 30 calls, one thread
# against two): 1,797 rows (8.2 Mi multiply-adds) 0.57 against 0.47 ms, 4,000 rows
# 1.37 against 1.54 ms, 8,000 rows 3.3 against 2.8 ms. The forward threshold was 2**23
# before: a cold first predict of those 1,797 rows compiled the parallel kernel, 2.5 s
# against 1.4 s now (medians of 4 alternating fresh processes, load 1.6-1.8).
PARALLEL_PASS = 1 << 25
PARALLEL_GRADIENT_PASS = 1 << 23  # not measured again
# Multiply-adds of a column task (``engine``) from which a network of two or more hidden
# layers, each of two tasks or more, trains by column tasks. Measured with 256-column
# tasks (float32, one epoch, 50,000 rows for the first and 20,000 for the others, three
# alternating runs, load 0.7-1.4, 1 thread / 2 threads): 256-1024-1024-10 at batch
# 512: blocked 4.85-4.94 / 2.54-2.77 s, columns 4.34-4.40 / 2.46-2.58 s; at batch 128
# (8.4 M per task in its first layer): blocked 2.37-2.43 / 1.26-1.99 s, columns 2.08-2.13
# / 1.11-1.62 s. Networks of one hidden layer lost: 256-2048-10 at batch 256, blocked
# 615-619 / 315-447 ms, columns 625-652 / 353-362 ms; 100-1024-10 at batch 128 (3.3 M
# per task), blocked 151-155 / 89 ms, columns 164-169 / 115-119 ms (two runs); and
# 100-512-512-10 at batch 256 (6.6 M) came out even (433-457 / 241-248 against 431-441
# / 250-256 ms).
COLUMN_TASK = 1 << 23
# Multiply-adds of a batch's largest product below which OpenBLAS does not split a
# product at all: predict skips the thread bookkeeping for such inputs (``unsplit``).
TINY_PRODUCT = 1 << 16

_controller = None


def _blas():
    """threadpoolctl's controller of the BLAS libraries, listed once per process."""
    global _controller
    if _controller is None:
        # the kernels call scipy's BLAS (numba's np.dot's), which may be another library
        # than numpy's, or MKL (fastbp._blas): load it before the controller lists the
        # libraries it limits
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        blas_library.bind()

        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


# OpenBLAS cores with small-matrix gemm kernels for x86-64 (SMALL_MATRIX_OPT, from
# 0.3.18 on; Zen4 runs the SkylakeX ones), and the largest product (m * n * k
# multiply-adds) they take (``blas.small_width``).
SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")
SMALL_KERNEL_VERSION = (0, 3, 18)
SMALL_PRODUCT = 100**3
_small = None


def small_kernel_limit(libraries):
    """SMALL_PRODUCT when every BLAS in ``libraries`` (threadpoolctl's ``info()``
    dicts; ``numbas_blas``) is an OpenBLAS with small-matrix kernels, else 0: with
    none, cutting a product into chunks only costs calls (2-8% measured)."""
    def version(text):
        parts = []
        for part in str(text).split(".")[:3]:
            if not part.isdigit():
                return ()
            parts.append(int(part))
        return tuple(parts)

    ok = bool(libraries) and all(
        lib.get("internal_api") == "openblas"
        and str(lib.get("architecture", "")).lower() in SMALL_KERNEL_CORES
        and version(lib.get("version")) >= SMALL_KERNEL_VERSION
        for lib in libraries
    )
    return SMALL_PRODUCT if ok else 0


def numbas_blas(libraries):
    """Of ``libraries`` (threadpoolctl's ``info()`` dicts), the BLAS numba's products
    call: numba takes its functions from ``scipy.linalg.cython_blas``, so scipy's own
    library where a wheel bundles one next to scipy; all of them where none is found
    there (a shared system or conda BLAS)."""
    import scipy

    root = os.path.dirname(os.path.realpath(scipy.__file__))
    places = (root + os.sep, root + ".libs" + os.sep)
    own = [lib for lib in libraries
           if os.path.realpath(str(lib.get("filepath") or "")).startswith(places)]
    return own or list(libraries)


def small_products():
    """``small_kernel_limit`` of the BLAS the kernels call in this process, found once
    (0 under MKL, ``fastbp._blas``: no OpenBLAS to cut for)."""
    global _small
    if _small is None:
        scipys = blas_library.bind().name == "scipy"
        _small = small_kernel_limit(numbas_blas(_blas().info())) if scipys else 0
    return _small


def unsplit(multiply_adds):
    """Whether the kernels' BLAS computes products of at most ``multiply_adds`` on one
    thread by itself, so that a call needs no limit and no look-up of the libraries
    (about 12 ms, a first one-row predict's cost): scipy's BLAS below TINY_PRODUCT
    (OpenBLAS's threshold is far above). With MKL (``fastbp._blas``) a call is always
    limited: its products above SMALL_GEMM are MKL's."""
    return multiply_adds < TINY_PRODUCT and blas_library.bind().name == "scipy"


def usable_cores():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _environment_limit():
    """The usable cores, within the BLAS thread count found now: what the environment
    allows. joblib's loky and Dask start their workers with OMP_NUM_THREADS and the
    like set to the worker's share, which BLAS reads when it loads; an outer
    ``threadpoolctl`` limit lowers it too. (The variables themselves are not read:
    importing ``dask.distributed`` sets them to 1 in the running process, where BLAS
    keeps the count it started with.)"""
    limit = usable_cores()
    blas = [lib.num_threads for lib in _blas().lib_controllers if not _ours(lib)]
    return max(1, min(limit, *blas) if blas else limit)


def _ours(controller):
    """Whether ``controller`` (threadpoolctl's) is the MKL fastbp made sequential
    (``fastbp._blas``), whose thread count of 1 says nothing of the environment."""
    library = blas_library.bind()
    return (library.name == "mkl" and getattr(controller, "threading_layer", "") == "sequential"
            and os.path.realpath(controller.filepath) == os.path.realpath(library.path))


def budget(n_threads):
    """Threads for one fit or predict: ``n_threads`` (None or -1: the usable cores
    within the environment's limits), never more than numba's pool."""
    import numba

    pool = numba.config.NUMBA_NUM_THREADS
    if n_threads is None or n_threads == -1:
        return min(pool, _environment_limit())
    return max(1, min(int(n_threads), pool))


def blocked(batch_rows, n_params, min_block_rows):
    """Whether minibatches of ``batch_rows`` rows train blocked and parallel (shape
    only: the choice fixes the arithmetic, so it must not depend on the threads)."""
    return batch_rows >= 2 * min_block_rows and batch_rows * n_params >= PARALLEL_STEP


def engine(batch_rows, units, n_params, min_block_rows, cols, dense=True):
    """How minibatches of ``batch_rows`` rows of a network of layer sizes ``units``
    (``n_params`` parameters) train (shape and input kind only, like ``blocked``):
    "serial", "blocked" or "columns" (the whole minibatch, each product cut in
    ``cols``-column tasks). Sparse
    input stays blocked: the column engine multiplies CSR rows by the first layer on
    one thread, where the blocks split them (not measured against each other)."""
    units = [int(u) for u in units]
    if not blocked(batch_rows, n_params, min_block_rows):
        return "serial"
    hidden = range(1, len(units) - 1)
    if dense and len(hidden) >= 2 and all(
        units[i] >= 2 * cols and batch_rows * units[i - 1] * cols >= COLUMN_TASK
        for i in hidden
    ):
        return "columns"
    return "blocked"


def whole_data(rows, chunk, n_params, threads, gradient=False):
    """Whether a pass over ``rows`` rows runs parallel (its result is the same): a
    forward pass, or with ``gradient`` L-BFGS's loss and gradient."""
    least = PARALLEL_GRADIENT_PASS if gradient else PARALLEL_PASS
    return threads > 1 and rows > chunk and rows * n_params >= least


# ------------------------------------------------------------------ threading layer
_layer_lock = threading.Lock()
_layer = None  # numba's threading layer, once fastbp has started it
_turns = nullcontext()  # what a parallel call holds: a lock under the workqueue layer


def _load_tbb():
    """Make numba's TBB layer loadable: the ``tbb`` wheel puts ``libtbb.so.12`` in the
    environment's ``lib`` directory, where the loader does not look for numba's
    extension; loading it first by path lets the extension find it by name."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = os.path.join(prefix, "lib", "libtbb.so.12")
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return


def _start_layer():
    """Choose and start numba's threading layer once (TBB when available, unless the
    user chose one with NUMBA_THREADING_LAYER or numba runs one already)."""
    global _layer, _turns
    if _layer is not None:  # every parallel call asks: no lock once it is chosen
        return
    import numba
    from numba.np.ufunc import parallel

    with _layer_lock:
        if _layer is not None:
            return
        if not parallel._is_initialized and "NUMBA_THREADING_LAYER" not in os.environ:
            _load_tbb()
            try:
                from numba.np.ufunc import tbbpool  # noqa: F401
            except ImportError:
                pass  # numba's default order: omp, then workqueue
            else:
                numba.config.THREADING_LAYER = "tbb"
        numba.get_num_threads()  # starts the pool
        _layer = numba.threading_layer()
        if _layer == "workqueue":
            _turns = threading.Lock()


def layer():
    """numba's threading layer as fastbp runs it (starting it if need be)."""
    _start_layer()
    return _layer


@contextmanager
def numba_threads(threads):
    """Run the block's parallel kernels on ``threads`` numba threads, one iteration per
    task (per-thread settings of numba's, restored on exit)."""
    import numba

    _start_layer()
    with _turns:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        # one iteration per task (numba's default splits a region's iterations into one
        # chunk per thread): an idle thread takes the next block instead of waiting for
        # a descheduled one to finish its share
        chunksize = numba.set_parallel_chunksize(1)
        try:
            yield
        finally:
            numba.set_parallel_chunksize(chunksize)
            numba.set_num_threads(previous)


# ---------------------------------------------------------------------- BLAS at one
_lock = threading.Lock()
_users = 0  # fit/predict calls inside a limit, in all threads
_found = {}  # BLAS library -> its thread count before the first of them lowered it


def one_blas_thread():
    """Run the block with one BLAS thread.

    The BLAS setting is process-wide, so concurrent calls (threads fitting at once)
    share the limit: the first sets it and the last one out restores the original. A
    fit thus never sees its limit lifted by another thread's exit halfway through.
    """
    return _limited(1)


@contextmanager
def _limited(threads):
    """Each library's own get and set, not threadpoolctl's ``limit``: that one lists
    and queries every library anew, 15 us of each 1.2 ms predict on 10,000 rows
    (against 4 us)."""
    global _users
    libraries = _blas().lib_controllers
    with _lock:
        for lib in libraries:
            found = lib.get_num_threads()
            if found is not None and threads < found:  # never raise the environment's
                _found.setdefault(lib, found)
                lib.set_num_threads(threads)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                for lib, found in _found.items():
                    lib.set_num_threads(found)
                _found.clear()
