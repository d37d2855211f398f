"""Compile the kernels once, for both float dtypes, into numba's on-disk cache: every
activation and loss, every solver's epoch, prediction, validation loss and L-BFGS, serial and
parallel, on dense input without dropout (a fit with dropout or sparse input compiles
its own variant of the training kernels on first use, a few seconds: see
``_kernels.forward``).

Run it once after installing (``python -m fastbp warmup``), or before starting workers
(Dask, joblib): every later process then loads the machine code from the cache instead
of compiling it again. On the 2-core development machine (empty cache, load 0.1-0.9):
67 s of wall time for both dtypes, 5.1-5.2 s per dtype of it the column-task epoch of
wide networks (53 s before that engine; 61 s with an epoch kernel per optimizer; 89 s
before the activations became functions of their own and the helpers lost their
CPython wrappers; 33-34 s before the parallel kernels).

The dtypes are compiled one after the other. On the 2-core development machine (shared,
empty cache each time): two threads took as long as one (99 vs 104 s at load average 7;
numba holds one compiler lock for a whole compile), and two processes, one per dtype,
were slower in both of two alternating pairs at load average 2-3 (52.4 and 34.8 s
against 48.7 and 32.4 s) for 13-20% more CPU (each initialises numba's compiler).
"""

import sys
import time
import warnings

import numpy as np

from ._compile_notice import GROUPS, CompileWarning


def _steps():
    """(kernel group, entry kernel, call) in an order where each call reaches one more
    entry kernel of ``_kernels.train`` or ``_kernels.parallel``; a call takes X in the
    dtype to compile (40 rows: the serial kernels; more, with a wider network: the
    parallel ones; the training engines' run at any thread count, the whole-data passes'
    only on two threads or more)."""
    from . import MLPClassifier, MLPRegressor
    from ._training import STOCHASTIC_SOLVERS

    rng = np.random.default_rng(0)
    labels = np.arange(600) % 3
    small = MLPClassifier((4,), max_iter=2, random_state=0)
    # batches of 64 rows x 17,000 parameters: blocked steps (fastbp._threads.blocked)
    wide = dict(hidden_layer_sizes=(128, 128), max_iter=1, random_state=0)
    large = MLPClassifier(batch_size=64, **wide)

    def rows(X, n):
        return np.resize(X, (n, X.shape[1]))

    def training(X):
        # every optimizer's rule (dropout and sparse X compile on first use)
        for solver in STOCHASTIC_SOLVERS:
            small.set_params(solver=solver).fit(X, labels[:40])

    calls = {
        "train_epoch": training,
        "predict_rows": lambda X: small.predict(X),
        "mean_loss": lambda X: MLPClassifier((4,), max_iter=2, early_stopping=True,
                                             random_state=0).fit(X, labels[:40]),
        "full_loss_grad": lambda X: MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs",
                                                 max_iter=2).fit(X, rng.normal(size=40)),
        "train_epoch_blocked": lambda X: large.fit(rows(X, 128), labels[:128]),
        # 128 rows x 256 inputs x 256 columns: the smallest column task
        # (fastbp._threads.engine)
        "train_epoch_columns": lambda X: MLPClassifier(
            (512, 512), batch_size=128, max_iter=1, random_state=0
        ).fit(np.resize(X, (128, 256)), labels[:128]),
        # 2,400 rows x 17,411 parameters: parallel forward passes (_threads.whole_data)
        "predict_rows_parallel": lambda X: large.predict(rows(X, 2400)),
        "mean_loss_parallel": lambda X: MLPClassifier(
            batch_size=300, early_stopping=True, validation_fraction=0.5, **wide
        ).fit(rows(X, 4800), np.resize(labels, 4800)),
        "full_loss_grad_parallel": lambda X: MLPClassifier(solver="lbfgs", **wide).fit(
            rows(X, 600), labels),
    }
    return [(GROUPS[kernel][0], kernel, calls[kernel]) for kernel in calls]


def _compiles(kernel):
    """How many signatures of entry kernel ``kernel`` this process compiled or loaded."""
    from ._kernels import parallel, train

    found = train.dispatchers(kernel) if hasattr(train, kernel) else (getattr(parallel, kernel),)
    stats = [d.stats for d in found]
    return (sum(sum(s.cache_misses.values()) for s in stats),
            sum(sum(s.cache_hits.values()) for s in stats))


def _outcome(before, after):
    misses, hits = (a - b for a, b in zip(after, before, strict=True))
    if misses:
        return "compiled"
    return "loaded from the cache" if hits else "already in memory"


def warm_up(dtypes=(np.float64, np.float32), verbose=True):
    """Compile every activation, then fit and predict tiny models through every kernel
    entry point, in each dtype.

    With ``verbose``, prints on stderr, for each dtype and kernel group, whether it was
    compiled or loaded from numba's cache and the seconds it took, then the total.

    Returns the seconds spent (compiling, or loading from the cache when warm).
    """
    from sklearn.exceptions import ConvergenceWarning

    from ._kernels import activations, losses, train

    def say(text, end="\n"):
        if verbose:
            print(text, end=end, file=sys.stderr, flush=True)

    start = time.perf_counter()
    X = np.random.default_rng(1).normal(size=(40, 3))
    steps = _steps()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", CompileWarning)  # these lines say it instead
        for dtype in dtypes:
            name = np.dtype(dtype).name
            for what, table in (("activations", activations), ("losses", losses)):
                say(f"fastbp warm-up: {name} {what}... ", end="")
                t0 = time.perf_counter()
                compiled, loaded = table.warm(dtype)
                outcome = ("compiled" if compiled else "loaded from the cache" if loaded
                           else "already in memory")
                say(f"{outcome} in {time.perf_counter() - t0:.2f} s")
            for group, kernel, call in steps:
                say(f"fastbp warm-up: {name} {group} kernels ({kernel})... ", end="")
                before, t0 = _compiles(kernel), time.perf_counter()
                call(X.astype(dtype))
                seconds = time.perf_counter() - t0
                say(f"{_outcome(before, _compiles(kernel))} in {seconds:.2f} s")
    total = time.perf_counter() - start
    cache = getattr(train.train_epoch._cache, "_cache_path", None)
    say(f"fastbp warm-up: {total:.1f} s in all; numba's cache: {cache or 'off'}")
    return total
