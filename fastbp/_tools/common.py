"""What the demo and the bench share: data, fit parameters, timing in turns, thread
counts, the machine's description and the pyplot loader."""

import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .._threads import usable_cores

SEED = 0
ALPHA = 1e-4  # scikit-learn's default L2 penalty, used by every implementation


# ------------------------------------------------------------------------------- data
def digits(dtype="float64"):
    """All of digits (1797 x 64) scaled to [0, 1], in ``dtype``, and its labels."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(dtype), y


def digits_split():
    """Digits, stratified 75/25 train/test split with a fixed seed."""
    from sklearn.model_selection import train_test_split

    X, y = digits()
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=SEED)


def classification(n_rows, n_features, dtype="float64"):
    """make_classification data: 10 classes, 20 informative features, fixed seed."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows,
        n_features=n_features,
        n_informative=20,
        n_classes=10,
        random_state=SEED,
    )
    return X.astype(dtype), y


def fit_params(hidden, batch_size, epochs):
    """Estimator parameters of a fixed-epoch adam fit (shared by fastbp and sklearn)."""
    return dict(
        hidden_layer_sizes=hidden,
        solver="adam",
        alpha=ALPHA,
        batch_size=batch_size,
        random_state=SEED,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,  # never stop early: exactly `epochs` epochs
    )


# ----------------------------------------------------------------------------- timing
def timed_fit(cls, params, X, y):
    """A new ``cls(**params)`` fitted on (X, y), and the seconds the fit took."""
    est = cls(**params)
    start = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - start


def fit_seconds(cls, params, X, y):
    return timed_fit(cls, params, X, y)[1]


def timed(func):
    """``func()``'s wall and CPU seconds (CPU counts every thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def busy_cores(sample, cores):
    """``sample`` that also appends to ``cores`` the cores this process kept busy while it
    ran (CPU time over wall time): about 2 when two threads both ran throughout, about 1
    when another process held the second core (a 2-thread run cannot gain then)."""

    def run():
        wall, cpu = time.perf_counter(), time.process_time()
        value = sample()
        cores.append((time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9))
        return value

    return run


def call_seconds(func, calls):
    """Seconds per call of ``func()`` over ``calls`` calls: ``wall``, the median (stray
    stalls dropped), and ``cpu``, the mean (one call is below the CPU clock's reach)."""
    times = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return {"wall": statistics.median(times), "cpu": (time.process_time() - cpu) / calls}


def median_call_seconds(func, x, calls):
    """Median over ``calls`` single calls ``func(x)``: a latency robust to stray stalls."""
    return call_seconds(lambda: func(x), calls)["wall"]


@contextlib.contextmanager
def one_core(n):
    """With ``n`` 1, run the block with the calling thread pinned to the last usable core
    (the one the JAX peer's 1-thread child takes, ``peers.JaxEpochs``): a 1-thread
    figure is a one-core figure on every side, not one the scheduler moves between
    cores. The previous affinity comes back on exit. Any other ``n``, or a platform
    without ``sched_setaffinity``: nothing changes."""
    if n != 1 or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def threads(n):
    """Run the block with ``n`` BLAS, numba and (if imported) torch threads; with one,
    on one core (``one_core``).

    ``n=None`` leaves everything as it is. The previous counts come back on exit, also
    when the block raises.
    """
    if n is None:
        yield
        return
    import numba
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    old_numba = numba.get_num_threads()
    old_torch = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n), one_core(n):
        try:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            if torch is not None:
                torch.set_num_threads(n)
            yield
        finally:
            numba.set_num_threads(old_numba)
            if torch is not None:
                torch.set_num_threads(old_torch)


# Idle BLAS (OpenBLAS, OpenMP) threads spin for a while after a multi-threaded call before
# they sleep; a configuration whose turn comes right after shares a core with them.
# Measured on 2 cores with one taken by another process: fastbp's 1-thread mc-b200 epoch
# (10k rows, float32) took 102 ms right after scikit-learn's 2-thread fit, 79 ms after a
# 0.05 s pause, 56 ms after 0.2 s, as without the fit.
SETTLE_SECONDS = 0.2


def settle():
    """Wait until the threads a multi-threaded call left spinning have gone to sleep."""
    time.sleep(SETTLE_SECONDS)


def interleave(configs, repeats):
    """Time configurations in turns; return ``{key: [samples]}``.

    ``configs`` maps a key to ``(sample, warm_up, n_threads)``: ``warm_up()`` runs once,
    untimed, before any sample; ``sample()`` returns one measurement (seconds). Every
    call runs under ``threads(n_threads)``, and one with more than one thread (or the
    process's own, None) is followed by ``settle()``, so the next turn starts with no
    spinning threads. Taking turns makes a busy neighbour slow every configuration
    alike, so that their ratios stay meaningful.
    """

    def run(call, n_threads):
        with threads(n_threads):
            value = call()
        if n_threads != 1:
            settle()
        return value

    for sample, warm_up, n_threads in configs.values():
        run(warm_up or sample, n_threads)
    samples = {key: [] for key in configs}
    for _ in range(repeats):
        for key, (sample, _warm_up, n_threads) in configs.items():
            samples[key].append(run(sample, n_threads))
    return samples


def fmt_seconds(seconds):
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


# ---------------------------------------------------------------------------- machine
def cores_text():
    """Core count for a report: the machine's, and the usable ones if fewer."""
    total, usable = os.cpu_count(), usable_cores()
    return f"{total}" if usable == total else f"{total} ({usable} usable by this process)"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch=None):
    """The machine and the software versions of this run (call after a fastbp fit, so
    that the BLAS numba links to is loaded and listed)."""
    import numba
    import sklearn
    from threadpoolctl import threadpool_info

    from .. import __version__

    return {
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastbp": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "sklearn": sklearn.__version__,
        "torch": None if torch is None else torch.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "kernels_blas": _kernels_blas(),
        "blas": [
            {
                key: info.get(key)
                for key in (
                    "user_api",
                    "internal_api",
                    "version",
                    "num_threads",
                    "threading_layer",
                    "architecture",
                    "filepath",
                )
            }
            for info in threadpool_info()
        ],
    }


def print_machine(machine):
    """The machine, the versions and the BLAS libraries, in three lines or so."""
    print(
        f"machine: {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['cpu']}; {machine['platform']}"
    )
    print(
        f"python {machine['python']}, fastbp {machine['fastbp']}, numpy {machine['numpy']}, "
        f"numba {machine['numba']}, sklearn {machine['sklearn']}, "
        f"torch {machine['torch'] or 'not installed'}"
    )
    libs = [
        f"{lib['internal_api']} {lib['version']} ({lib['user_api']}, {lib['num_threads']} thr, "
        f"{Path(lib['filepath']).name})"
        for lib in machine["blas"]
    ]
    print("threadpools: " + "; ".join(libs))
    print(f"kernels' BLAS (FASTBP_BLAS): {machine.get('kernels_blas', 'scipy')}")


def _kernels_blas():
    """The library behind the kernels' products (``fastbp._blas``), as text."""
    from .. import _blas

    library = _blas.bind()
    if library.name == "scipy":
        return "scipy's (numba's np.dot's)"
    return f"{library.name}: {library.version} ({Path(str(library.path)).name})"


def load_average():
    """1-minute load average (None where the OS has none): other processes' share."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


# ---------------------------------------------------------------------------- figures
def load_pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pyplot_missing():
    """True, after telling the user how to get it, if matplotlib cannot be imported."""
    try:
        load_pyplot()
    except ImportError:
        print("error: --plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return True
    return False
