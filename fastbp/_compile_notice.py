"""The one-line notice, on stderr, that fastbp is compiling its kernels in this process.

numba compiles a kernel on its first call unless its on-disk cache already holds it; the
first fit in a fresh environment then spends seconds with nothing on screen. numba's
``"numba:compile"`` event fires exactly when a dispatcher misses its cache and is about
to compile (a cache load fires nothing), so a listener on it says so before the wait,
once per float dtype, and costs nothing in a process that loads from the cache.

The notice is a warning, not a log record: Python prints warnings by default, and
``warnings.filterwarnings("ignore", category=fastbp.CompileWarning)``, ``-W`` or pytest's
filters silence it, as they do scikit-learn's ConvergenceWarning.
"""

import threading
import warnings

from numba.core import event

from . import _caller

# What each entry kernel of ``_kernels.train`` is for, and the CPU seconds it took to
# compile with an empty cache on the 2-core development machine (numba 0.68, LLVM,
# callees included: the training kernel compiles the forward, loss and backward code
# that the later ones reuse, the rule of one optimizer and the fit's activations; each
# other optimizer's rule about 0.2 s more, without a notice). Measured in fresh
# processes with an empty NUMBA_CACHE_DIR at load 0.7-1.3: a first digits fit 4.1-4.4 s
# (2026-12-01); the others from ``python -m fastbp warmup``, each after the kernels above
# it, and first fits of their own (blocked 7.2-7.9 s, column tasks 6.1-6.4 s).
GROUPS = {
    "train_epoch": ("training", 4),
    "predict_rows": ("prediction", 1),
    "mean_loss": ("validation-loss", 1),
    "full_loss_grad": ("L-BFGS objective", 2),
    # the parallel kernels (fastbp._kernels.parallel), compiled on first use by a fit or
    # predict large enough to run them
    "train_epoch_blocked": ("parallel training", 8),
    "train_epoch_columns": ("column-parallel training", 6),
    "predict_rows_parallel": ("parallel prediction", 2),
    "mean_loss_parallel": ("parallel validation-loss", 2),
    "full_loss_grad_parallel": ("parallel L-BFGS objective", 3),
}
KERNEL_PACKAGE = "fastbp._kernels."

class CompileWarning(UserWarning):
    """fastbp is compiling its kernels (once per dtype; numba then caches them on disk).

    Silence it with ``warnings.filterwarnings("ignore", category=fastbp.CompileWarning)``;
    avoid the compile itself with ``python -m fastbp warmup`` (or ``fastbp.warm_up()``)
    when building an image or a CI cache.
    """


def _dtype_of(args):
    """The float dtype name of a kernel's first array argument, or None."""
    for arg in args:
        dtype = getattr(arg, "dtype", None)
        if dtype is not None and str(dtype).startswith("float"):
            return str(dtype)
    return None


def message(kernel, dtype, cache_dir):
    """The text of the notice for entry kernel ``kernel`` (a function name)."""
    what, seconds = GROUPS.get(kernel, (kernel, None))
    cost = f"about {seconds} s of CPU" if seconds else "a few seconds"
    if cache_dir is None:
        where = ("numba's on-disk cache is off here (no writable directory: set "
                 "NUMBA_CACHE_DIR), so every new process compiles them again")
    else:
        where = (f"once: numba caches the machine code in {cache_dir}, and later "
                 "processes load it in a fraction of a second")
    return (f"fastbp is compiling its {what} kernels for {dtype} ({cost}), {where}. "
            "To compile ahead of time (images, containers, CI), run `python -m fastbp "
            "warmup`. Silence this notice with warnings.filterwarnings('ignore', "
            "category=fastbp.CompileWarning).")


class _Listener(event.Listener):
    """Warns when one of fastbp's kernels is about to compile, once per dtype."""

    def __init__(self):
        self._lock = threading.Lock()
        self.told = set()  # dtypes already announced in this process

    def on_start(self, ev):
        dispatcher = ev.data["dispatcher"]
        func = dispatcher.py_func
        # entry kernels only: their callees compile inside them (and a callee's first
        # float array, such as the float64 ``hp``, need not be the network's dtype)
        if not func.__module__.startswith(KERNEL_PACKAGE) or func.__name__ not in GROUPS:
            return
        self.announce(dispatcher, _dtype_of(ev.data["args"]))

    def announce(self, dispatcher, dtype):
        """Warn that entry kernel ``dispatcher`` compiles for ``dtype`` (a name), unless
        this process said so for that dtype before."""
        with self._lock:
            if dtype is None or dtype in self.told:
                return
            self.told.add(dtype)
        cache_dir = getattr(dispatcher._cache, "_cache_path", None)
        try:
            warnings.warn(message(dispatcher.py_func.__name__, dtype, cache_dir),
                          CompileWarning, stacklevel=_caller.stacklevel())
        except CompileWarning:
            # An "error" filter would abort the compile that the notice announces (and
            # a cold cache would then fail fits that pass on a warm one): a notice
            # never changes what the fit does.
            pass

    def on_end(self, ev):
        pass


def installer(kind, make):
    """``install()``: registers ``make()`` as a listener of numba's ``kind`` events, once
    per process, and returns it."""
    listener = None
    lock = threading.Lock()

    def install():
        nonlocal listener
        with lock:
            if listener is None:
                listener = make()
                event.register(kind, listener)
        return listener

    return install


install = installer("numba:compile", _Listener)


def announce(dispatcher, dtype):
    """The notice for entry kernel ``dispatcher`` and ``dtype`` (a name), said here when
    another process compiles it while this one waits (``_compile_ahead``)."""
    install().announce(dispatcher, dtype)
