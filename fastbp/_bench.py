"""The benchmark behind ``python -m fastbp bench``: fastbp against scikit-learn (and PyTorch
when it is installed), as ratios measured side by side in one run.

Method. Each workload builds a set of *configurations* (an implementation, the rows it
trains on, a thread count). Every configuration first runs once untimed (fastbp compiles
its kernels or loads them from the on-disk cache; scikit-learn and PyTorch pay their own
first-call costs), then the configurations take turns, repeat after repeat, so that a
noisy neighbour slows them alike, and each one's median is reported. A fit runs a fixed
number of epochs (``tol=0``, no early stop); its time per epoch is the fit's time divided
by the epochs, fixed costs of ``fit`` included. Where scikit-learn would take minutes it
trains on a leading subset of the rows and its time is scaled per row to the full data
(an epoch's cost is proportional to its rows at a fixed batch size); the output says so.

Ceilings: a fit workload's speed-up row also reports the largest speed-up over
scikit-learn that the same arithmetic could reach on this machine: scikit-learn's time
per epoch over the epoch's matrix-product FLOPs (``training_flops``) at the peak rate of
a large square GEMM in the workload's dtype, timed in turns with the first workload of
that dtype (``PeakRates``). It is an upper bound, not an estimate: the work it leaves out
(bias, activation, loss, optimizer, small-matrix inefficiency) only adds time. A target
above it cannot be met here by any implementation of the same arithmetic.

Threads: the side-by-side comparisons run every library with as many threads as the
process may use (BLAS through threadpoolctl, numba, torch); the thread-scaling rows time
fastbp alone at 1 and at 2 threads. Any change of a thread count is undone in ``finally``.

Nothing here asserts a speed: targets are printed as met or missed, and the exit code is
0 either way (the numbers are a report, not a gate).
"""

import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ._cli import load_pyplot, pyplot_missing
from ._threads import usable_cores

SEED = 0
ALPHA = 1e-4  # scikit-learn's default L2 penalty, used by every implementation
WORKLOADS = ("digits64", "digits32", "mc-b32", "mc-b200", "wide", "predict", "start")
WIDE_HIDDEN = (1024, 1024)
WIDE_BATCH = 512
# A configuration whose slowest sample took this many times its fastest marks its row as
# noisy: another process took the cores for part of the run, the median may be off.
NOISY_SPREAD = 2.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run (full, --quick, or the test suite's tiny one)."""

    mode: str
    repeats: int  # interleaved timed repeats per configuration
    digits_epochs: int
    mc_rows: int  # rows of the 100-feature make_classification data
    mc_sklearn_rows: int  # leading rows scikit-learn trains on (time scaled per row)
    wide_rows: int  # rows of the 256-feature data of the wide net
    wide_sklearn_rows: int
    wide_repeats: int
    predict_calls: int  # one-row predictions per repeat (their median is one sample)
    cold_start: bool  # also time a first fit with an empty NUMBA_CACHE_DIR
    start_repeats: int
    gemm_calls: int  # GEMMs per sample of the reference GFLOP/s and of the peak rate
    peak_size: int  # side of the square GEMM that measures the peak rate (ceilings)
    # Compare with PyTorch when it is installed. Off in --quick: on a busy 2-core machine
    # torch's 2 OpenMP threads stall on every small operation (measured: 0.04 to 4.7 s
    # per digits epoch), which alone can take minutes.
    torch: bool = True


# The peak GEMM: OpenBLAS on the 2-core development machine reaches the same GFLOP/s at
# 512 as at 1024 (float64 43 at 1 thread, 83 at 2; float32 93, 180), in an eighth of
# the time; 256 is within 10 % of it.
FULL = Settings("full", 7, 20, 50_000, 10_000, 50_000, 5_000, 5, 1_000, True, 3, 25, 1024)
QUICK = Settings("quick", 3, 5, 10_000, 2_000, 4_096, 1_024, 3, 200, False, 1, 10, 512, False)
TINY = Settings("tiny", 1, 1, 400, 200, 512, 512, 1, 5, False, 1, 1, 256)


@dataclasses.dataclass
class Row:
    """One line of the report: a measured value against its target.

    ``value`` is a ratio (``metric`` "speed-up" or "fraction") or a time in seconds
    (``metric`` "seconds"); ``times`` holds the raw samples (seconds, see ``unit``) of
    every configuration that went into it. The speed-up rows of the fit workloads also
    carry their ``ceiling`` (see ``add_ceiling``): the largest speed-up over scikit-learn
    the same arithmetic could reach at this machine's peak GEMM rate, and
    ``ceiling_1thread``, the same at one thread's peak.
    """

    workload: str
    label: str
    metric: str
    value: float
    target: float | None
    fastbp: str  # table cells, formatted
    reference: str
    times: dict
    unit: str
    torch_ratio: float | None = None
    note: str = ""
    ceiling: float | None = None
    ceiling_1thread: float | None = None
    # A missed "never slower" thread row whose 1- and 2-thread samples overlap: the
    # difference is below what this run can measure (see ``within_noise``).
    within_noise: bool = False

    @property
    def comparison(self):
        return "<=" if self.metric == "seconds" else ">="

    @property
    def met(self):
        if self.target is None:
            return None
        if self.metric == "seconds":
            return bool(self.value <= self.target)
        return bool(self.value >= self.target)

    @property
    def spread(self):
        """Largest max/min ratio of the samples of one configuration (1.0: no noise)."""
        return max(max(t) / min(t) for t in self.times.values())

    def to_json(self):
        data = dataclasses.asdict(self)
        data["medians"] = {key: statistics.median(t) for key, t in self.times.items()}
        data["comparison"] = self.comparison
        data["met"] = self.met
        data["spread"] = self.spread
        return data


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def threads(n):
    """Run the block with ``n`` BLAS, numba and (if imported) torch threads.

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
    with threadpool_limits(limits=n):
        try:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            if torch is not None:
                torch.set_num_threads(n)
            yield
        finally:
            numba.set_num_threads(old_numba)
            if torch is not None:
                torch.set_num_threads(old_torch)


def training_flops(layer_units, n_rows):
    """Floating-point operations of one epoch of training, counted analytically.

    Per layer of ``fan_in x fan_out`` weights and per row: forward ``2 fan_in fan_out``
    (the matrix product), weight gradient ``2 fan_in fan_out``, and the delta handed to the
    previous layer ``2 fan_in fan_out`` except for the first layer (no delta is computed
    for the input). Element-wise work (bias, activation, loss, Adam) is not counted: it is
    under 1 % here and counting it would flatter the rate.
    """
    products = [a * b for a, b in zip(layer_units[:-1], layer_units[1:], strict=False)]
    return 2 * n_rows * (2 * sum(products) + sum(products[1:]))


def gemm_seconds(A, B, out, calls):
    """Seconds per ``A @ B`` (numpy's BLAS), averaged over ``calls`` calls into ``out``."""
    start = time.perf_counter()
    for _ in range(calls):
        np.dot(A, B, out=out)
    return (time.perf_counter() - start) / calls


def gemm_operands(dtype=np.float32, rows=WIDE_BATCH, inner=1024, cols=1024):
    """Random operands of the reference GEMM, ``(rows x inner) @ (inner x cols)``."""
    rng = np.random.default_rng(SEED)
    A = rng.random((rows, inner), dtype=dtype)
    B = rng.random((inner, cols), dtype=dtype)
    return A, B, np.empty((rows, cols), dtype=dtype)


class PeakRates:
    """The machine's peak matrix-product rate per (dtype, thread count), measured once
    per bench run.

    A sample is the mean time of ``calls`` square GEMMs ``(size x size) @ (size x size)``
    (numpy's BLAS), at 1 thread and at ``usable_cores()``. The first fit workload of a
    dtype times them in turns with its own configurations (``configs``, then
    ``collect``); later workloads of that dtype reuse those samples.
    """

    def __init__(self, size, calls):
        self.size, self.calls = size, calls
        self.samples = {}  # (dtype name, threads) -> [seconds per GEMM]

    @staticmethod
    def thread_counts():
        return sorted({1, usable_cores()})

    def configs(self, dtype):
        """Configurations for ``interleave`` (keys ``peak@<threads>``) of the rates of
        ``dtype`` not measured yet in this run."""
        dtype = np.dtype(dtype).name
        missing = [n for n in self.thread_counts() if (dtype, n) not in self.samples]
        if not missing:
            return {}
        A, B, out = gemm_operands(dtype, self.size, self.size, self.size)
        calls = self.calls

        def sample():
            return gemm_seconds(A, B, out, calls)

        return {f"peak@{n}": (sample, None, n) for n in missing}

    def collect(self, dtype, samples):
        """Move the ``peak@`` samples out of ``interleave``'s result into the cache."""
        for n in self.thread_counts():
            if f"peak@{n}" in samples:
                self.samples[np.dtype(dtype).name, n] = samples.pop(f"peak@{n}")

    def times(self, dtype):
        """``dtype``'s samples, keyed ``peak@<threads>`` (``collect`` first)."""
        dtype = np.dtype(dtype).name
        return {f"peak@{n}": self.samples[dtype, n] for n in self.thread_counts()}

    def gflops(self, dtype, n_threads):
        """Median GFLOP/s of the peak GEMM (``collect`` first)."""
        seconds = statistics.median(self.samples[np.dtype(dtype).name, n_threads])
        return 2 * self.size**3 / seconds / 1e9


def speedup_ceiling(reference_seconds, flops, gflops):
    """The largest speed-up over a reference run of ``reference_seconds`` that any
    implementation doing ``flops`` floating-point operations can reach at ``gflops``."""
    return reference_seconds * gflops * 1e9 / flops


def ceiling_note(value, target, ceiling, ceiling_1thread):
    """What a speed-up row's ceilings say about its value and target ("" if nothing)."""
    notes = []
    if target is not None and target > ceiling:
        notes.append(
            f"target {target:g}x is above this machine's ceiling {ceiling:.1f}x "
            "(FLOPs at peak GEMM rate): the same arithmetic cannot reach it here"
        )
    elif target is not None and target > ceiling_1thread:
        notes.append(
            f"target {target:g}x is above the 1-thread ceiling {ceiling_1thread:.1f}x "
            "(FLOPs at 1 thread's peak GEMM rate): reaching it takes more than one core"
        )
    if value > ceiling:
        # Faster than the peak rate allows: the GEMM samples were slowed, or a FLOP
        # count no longer matches the arithmetic.
        notes.append(f"the speed-up is above the ceiling {ceiling:.1f}x: check the peak")
    return "; ".join(notes)


def add_ceiling(row, peaks, dtype, layer_units, n_rows):
    """Set the ceilings of a fit workload's speed-up row and append them to its note.

    The ceiling is scikit-learn's median time per epoch over the epoch's training FLOPs
    (``training_flops``) at the peak GEMM rate: the best of the rates at 1 and at
    ``usable_cores()`` threads (a run allowed two threads may use one; on a busy machine
    the 2-thread GEMM can be the slower). It is an upper bound, not a prediction: it
    ignores bias, activation, loss and optimizer work and the inefficiency of small
    matrix products, all of which only add time. ``ceiling_1thread`` uses the 1-thread
    rate: fastbp runs small networks on one BLAS thread (``_threads.policy``).
    """
    flops = training_flops(layer_units, n_rows)
    row.times.update(peaks.times(dtype))
    rates = {n: peaks.gflops(dtype, n) for n in peaks.thread_counts()}
    reference = _median(row.times, "sklearn")
    row.ceiling = speedup_ceiling(reference, flops, max(rates.values()))
    row.ceiling_1thread = speedup_ceiling(reference, flops, rates[1])
    at = ", ".join(f"{rate:.1f} at {n} thr" for n, rate in sorted(rates.items(), reverse=True))
    notes = [
        f"ceiling from {flops / 1e9:.3g} GFLOP/epoch at the peak {np.dtype(dtype).name} "
        f"GEMM rate ({at}, GFLOP/s)",
        ceiling_note(row.value, row.target, row.ceiling, row.ceiling_1thread),
    ]
    row.note = "; ".join(filter(None, [row.note, *notes]))


def _layer_units(X, y, hidden):
    """Layer sizes of a classifier of ``hidden`` layers on (X, y), as scikit-learn's."""
    n_classes = len(np.unique(y))
    return [X.shape[1], *hidden, n_classes if n_classes > 2 else 1]


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


def _fit_seconds(cls, params, X, y):
    est = cls(**params)
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start


def _torch_net(torch, n_features, hidden, n_outputs, dtype):
    layers, fan_in = [], n_features
    for width in hidden:
        layers += [torch.nn.Linear(fan_in, width, dtype=dtype), torch.nn.ReLU()]
        fan_in = width
    layers.append(torch.nn.Linear(fan_in, n_outputs, dtype=dtype))
    return torch.nn.Sequential(*layers)


def _torch_fit_seconds(torch, X, y, hidden, batch_size, epochs):
    """Seconds of a plain eager PyTorch training loop of the same network: Linear+ReLU,
    softmax cross-entropy, Adam with scikit-learn's lr/betas/eps, the L2 penalty on the
    weights as scikit-learn applies it (alpha / batch rows), a fresh shuffle per epoch."""
    dtype = torch.float32 if X.dtype == np.float32 else torch.float64
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    n = Xt.shape[0]
    start = time.perf_counter()
    torch.manual_seed(SEED)
    net = _torch_net(torch, X.shape[1], hidden, int(y.max()) + 1, dtype)
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    optimizer = torch.optim.Adam(
        [{"params": weights, "weight_decay": ALPHA / batch_size}, {"params": biases}],
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(n)
        for first in range(0, n, batch_size):
            rows = order[first : first + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(Xt[rows]), yt[rows]).backward()
            optimizer.step()
    return time.perf_counter() - start


def _median_call_seconds(func, x, calls):
    """Median over ``calls`` single calls ``func(x)``: a latency robust to stray stalls."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        func(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleave(configs, repeats):
    """Time configurations in turns; return ``{key: [samples]}``.

    ``configs`` maps a key to ``(sample, warm_up, n_threads)``: ``warm_up()`` runs once,
    untimed, before any sample; ``sample()`` returns one measurement (seconds). Every
    call runs under ``threads(n_threads)``.
    """
    for sample, warm_up, n_threads in configs.values():
        with threads(n_threads):
            (warm_up or sample)()
    samples = {key: [] for key in configs}
    for _ in range(repeats):
        for key, (sample, _warm_up, n_threads) in configs.items():
            with threads(n_threads):
                samples[key].append(sample())
    return samples


def _median(samples, key):
    return statistics.median(samples[key])


def _fmt_seconds(seconds):
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def _fmt_value(row):
    if row.metric == "seconds":
        return "-"  # the value is the fastbp column
    if row.metric == "fraction":
        return f"{row.value:.2f}"
    return f"{row.value:.2f}x"


def _fmt_ceiling(row):
    if row.ceiling is None:
        return "-"
    return f"{row.ceiling:.1f}x ({row.ceiling_1thread:.1f}x)"


def _fmt_target(row):
    if row.target is None:
        return "-"
    suffix = {"seconds": " s", "fraction": "", "speed-up": "x"}[row.metric]
    return f"{row.comparison} {row.target:g}{suffix}"


def _fmt_result(row):
    result = {None: "report", True: "met", False: "missed"}[row.met]
    if row.within_noise:
        result = "noise"
    return result + (" (noisy)" if row.spread > NOISY_SPREAD else "")


# ---------------------------------------------------------------------------- workloads
def _digits(dtype="float64"):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(dtype), y


def _classification(n_rows, n_features, dtype="float64"):
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows,
        n_features=n_features,
        n_informative=20,
        n_classes=10,
        random_state=SEED,
    )
    return X.astype(dtype), y


def _fit_configs(X, y, hidden, batch_size, epochs, sklearn_rows, torch, extra=None):
    """Configurations of one fit workload. Every sample is seconds per epoch over all of
    X's rows (scaled per row for a subset). Keys: fastbp, sklearn, torch (if given),
    fastbp@1, fastbp@2; ``extra`` configurations are added as they are."""
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from . import MLPClassifier as FastbpMLP

    n = X.shape[0]
    params = fit_params(hidden, batch_size, epochs)
    warm_rows = min(n, 2 * batch_size)

    def fit(cls, rows):
        Xs, ys = X[:rows], y[:rows]
        return lambda: _fit_seconds(cls, params, Xs, ys) * (n / rows) / epochs

    main = usable_cores()
    warm_fastbp = fit(FastbpMLP, warm_rows)
    configs = {
        "fastbp": (fit(FastbpMLP, n), warm_fastbp, main),
        "sklearn": (fit(SklearnMLP, min(sklearn_rows, n)), fit(SklearnMLP, warm_rows), main),
    }
    if torch is not None:

        def torch_fit(rows):
            Xs, ys = X[:rows], y[:rows]
            return lambda: _torch_fit_seconds(torch, Xs, ys, hidden, batch_size, epochs) / epochs

        configs["torch"] = (torch_fit(n), torch_fit(warm_rows), main)
    configs["fastbp@1"] = (fit(FastbpMLP, n), warm_fastbp, 1)
    if main != 2:
        configs["fastbp@2"] = (fit(FastbpMLP, n), warm_fastbp, 2)
    configs.update(extra or {})
    return configs


def _thread_samples(samples):
    """fastbp's samples at 1 and 2 threads (the main run is the 2-thread one on 2 cores)."""
    two = samples["fastbp@2"] if "fastbp@2" in samples else samples["fastbp"]
    return samples["fastbp@1"], two


def _speed_rows(workload, label, samples, target, n, sklearn_rows, thread_target, unit):
    """The speed-up row and the thread-scaling row of a fit or predict workload."""
    fast, sk = _median(samples, "fastbp"), _median(samples, "sklearn")
    per = "/epoch" if unit == "s/epoch" else "/call"
    note = ""
    if sklearn_rows < n:
        note = f"; sklearn trained on {sklearn_rows} of {n} rows, its time scaled per row"
    torch_ratio = _median(samples, "torch") / fast if "torch" in samples else None
    speed = Row(
        workload,
        label,
        "speed-up",
        sk / fast,
        target,
        _fmt_seconds(fast) + per,
        "sklearn " + _fmt_seconds(sk) + per + ("*" if note else ""),
        {k: v for k, v in samples.items() if not k.startswith("fastbp@")},
        unit,
        torch_ratio,
        note,
    )
    one, two = _thread_samples(samples)
    scaling = Row(
        workload,
        f"{label} 2 vs 1 thr",
        "speed-up",
        statistics.median(one) / statistics.median(two),
        thread_target,
        _fmt_seconds(statistics.median(two)) + " (2 thr)",
        _fmt_seconds(statistics.median(one)) + " (1 thr)",
        {"fastbp@1": one, "fastbp@2": two},
        unit,
    )
    scaling.within_noise = scaling.met is False and within_noise(one, two)
    return [speed, scaling]


def within_noise(one, two):
    """True if the samples of two configurations overlap: the fastest run of ``two``
    was no slower than the slowest of ``one``. Small networks run on one BLAS thread
    in both (``_threads.policy``), so their "2 vs 1" medians differ by noise alone, on
    either side of 1."""
    return min(two) <= max(one)


def digits_workload(dtype):
    """digits (1797 x 64), hidden (64,), batch 32: >= 30x sklearn per epoch."""

    def run(settings, torch, peaks):
        X, y = _digits(dtype)
        E = settings.digits_epochs
        configs = _fit_configs(X, y, (64,), 32, E, len(X), torch, peaks.configs(dtype))
        samples = interleave(configs, settings.repeats)
        peaks.collect(dtype, samples)
        name = f"digits{dtype[-2:]}"
        rows = _speed_rows(name, name, samples, 30, len(X), len(X), 1.0, "s/epoch")
        rows[0].note = f"{E} epoch(s) per fit, all 1797 rows, {dtype}" + rows[0].note
        add_ceiling(rows[0], peaks, dtype, _layer_units(X, y, (64,)), len(X))
        return rows

    return run


def mc_workload(batch_size, target):
    """make_classification n x 100, 10 classes, hidden (256, 128), float64."""

    def run(settings, torch, peaks):
        n, m = settings.mc_rows, settings.mc_sklearn_rows
        X, y = _classification(n, 100)
        extra = peaks.configs(X.dtype)
        configs = _fit_configs(X, y, (256, 128), batch_size, 1, m, torch, extra)
        samples = interleave(configs, settings.repeats)
        peaks.collect(X.dtype, samples)
        name = f"mc-b{batch_size}"
        rows = _speed_rows(name, name, samples, target, n, min(m, n), 1.0, "s/epoch")
        rows[0].note = f"{n} x 100, 1 epoch per fit" + rows[0].note
        add_ceiling(rows[0], peaks, X.dtype, _layer_units(X, y, (256, 128)), n)
        return rows

    return run


def wide_workload(settings, torch, peaks):
    """n x 256, hidden (1024, 1024), batch 512, float32: the training FLOP rate against a
    same-run float32 GEMM, the speed-up over 1 thread, and (report) over sklearn."""
    n, m = settings.wide_rows, settings.wide_sklearn_rows
    X, y = _classification(n, 256, "float32")
    A, B, out = gemm_operands()
    calls = settings.gemm_calls
    extra = {
        "gemm": (lambda: gemm_seconds(A, B, out, calls), None, usable_cores()),
        "gemm@1": (lambda: gemm_seconds(A, B, out, calls), None, 1),
        **peaks.configs(X.dtype),
    }
    configs = _fit_configs(X, y, WIDE_HIDDEN, WIDE_BATCH, 1, m, torch, extra)
    samples = interleave(configs, settings.wide_repeats)
    peaks.collect(X.dtype, samples)

    gemm = {k: samples.pop(k) for k in ("gemm", "gemm@1")}
    speed, scaling = _speed_rows("wide", "wide", samples, None, n, min(m, n), 1.5, "s/epoch")
    speed.note = f"{n} x 256 float32, 1 epoch per fit" + speed.note
    add_ceiling(speed, peaks, X.dtype, _layer_units(X, y, WIDE_HIDDEN), n)
    gemm_scaling = _median(gemm, "gemm@1") / _median(gemm, "gemm")
    scaling.note = f"numpy's GEMM alone: {gemm_scaling:.2f}x from 1 to 2 threads"
    scaling.times.update(gemm)

    flops = training_flops([256, *WIDE_HIDDEN, 10], n)
    gemm_flops = 2 * A.shape[0] * A.shape[1] * B.shape[1]
    rate = flops / _median(samples, "fastbp") / 1e9
    reference = gemm_flops / _median(gemm, "gemm") / 1e9
    rate1 = flops / statistics.median(samples["fastbp@1"]) / 1e9
    reference1 = gemm_flops / _median(gemm, "gemm@1") / 1e9
    fraction = Row(
        "wide",
        "wide GFLOP/s vs GEMM",
        "fraction",
        rate / reference,
        0.5,
        f"{rate:.1f} GFLOP/s",
        f"GEMM {reference:.1f} GFLOP/s",
        {"fastbp": samples["fastbp"], "gemm": gemm["gemm"]},
        "s/epoch (fastbp), s/GEMM (gemm)",
        note=f"{flops / 1e9:.0f} GFLOP per epoch counted analytically; GEMM "
        f"({A.shape[0]}x{A.shape[1]})@({B.shape[0]}x{B.shape[1]}) float32; at 1 thread "
        f"{rate1:.1f} vs {reference1:.1f} GFLOP/s ({rate1 / reference1:.2f})",
    )
    return [fraction, speed, scaling]


def predict_workload(settings, torch, peaks):
    """Latency of predict on one row with a model fitted on digits: >= 20x sklearn."""
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from . import MLPClassifier as FastbpMLP

    X, y = _digits()
    params = fit_params((64,), 32, settings.digits_epochs)
    x, calls, main = X[:1], settings.predict_calls, usable_cores()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {"fastbp": FastbpMLP(**params).fit(X, y), "sklearn": SklearnMLP(**params)}
        models["sklearn"].fit(X, y)

    def latency(predict):
        return lambda: _median_call_seconds(predict, x, calls)

    configs = {key: (latency(est.predict), None, main) for key, est in models.items()}
    if torch is not None:
        net = _torch_net(torch, X.shape[1], (64,), 10, torch.float64)

        def torch_predict(x):
            with torch.no_grad():
                return net(torch.from_numpy(x)).argmax(1).numpy()

        configs["torch"] = (latency(torch_predict), None, main)
    configs["fastbp@1"] = (latency(models["fastbp"].predict), None, 1)
    if main != 2:
        configs["fastbp@2"] = (latency(models["fastbp"].predict), None, 2)
    samples = interleave(configs, settings.repeats)
    rows = _speed_rows("predict", "predict 1 row", samples, 20, 1, 1, 1.0, "s/call")
    rows[0].note = f"median of {calls} calls per sample, digits model, float64" + rows[0].note
    return rows


_START_SCRIPT = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
data = np.load(sys.argv[1])
X, y = data["X"], data["y"]
start = time.perf_counter()
from fastbp import MLPClassifier
imported = time.perf_counter()
MLPClassifier(**json.loads(sys.argv[2])).fit(X, y)
done = time.perf_counter()
import fastbp
print(json.dumps({"import": imported - start, "first_fit": done - start,
                  "fastbp": fastbp.__file__}))
"""


def _start_seconds(data_path, params, cache_dir):
    """Import of fastbp + first fit on digits in a fresh interpreter.

    The data are loaded with numpy alone beforehand, so importing scikit-learn is part of
    the time. Returns ``{"first_fit": s, "import": s, "wall": s}``: the first two
    measured in the child from before the import, the last the whole child process.
    """
    env = dict(os.environ)
    # The child imports this very fastbp (a worktree or checkout), not another install.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _START_SCRIPT, str(data_path), json.dumps(params)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"start-up subprocess failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(result.pop("fastbp")) != Path(__file__).parent / "__init__.py":
        raise RuntimeError(f"the start-up subprocess imported another fastbp: {proc.stdout}")
    return {**result, "wall": wall}


def start_workload(settings, torch, peaks):
    """Import + first fit on digits in a fresh process: with an empty NUMBA_CACHE_DIR
    (cold: compiles, <= 15 s) and with the cache it left (warm: <= 2 s). Without
    ``settings.cold_start`` only the warm one runs, with this process's cache."""
    X, y = _digits()
    params = fit_params((64,), 32, settings.digits_epochs)
    kinds = ("cold", "warm") if settings.cold_start else ("warm",)
    runs = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="fastbp-bench-") as tmp:
        data_path = Path(tmp) / "digits.npz"
        np.savez(data_path, X=X, y=y)
        for r in range(settings.start_repeats):
            cache = None
            if settings.cold_start:
                cache = Path(tmp) / f"numba-cache-{r}"  # empty; the warm run reuses it
                cache.mkdir()
            for kind in kinds:
                runs[kind].append(_start_seconds(data_path, params, cache))

    caches = {
        "cold": "empty NUMBA_CACHE_DIR",
        "warm": "the cold run's cache" if settings.cold_start else "this process's cache",
    }
    rows = []
    for kind in kinds:
        times = {f"{kind} {key}": [run[key] for run in runs[kind]] for key in runs[kind][0]}
        med = {key: statistics.median(t) for key, t in times.items()}
        seconds = med[f"{kind} first_fit"]
        row = Row(
            "start",
            f"{kind} start",
            "seconds",
            seconds,
            15.0 if kind == "cold" else 2.0,
            _fmt_seconds(seconds),
            f"import {_fmt_seconds(med[f'{kind} import'])}",
            times,
            "s",
            note=f"import fastbp + first fit on digits in a fresh process, {caches[kind]}; "
            f"whole process {_fmt_seconds(med[f'{kind} wall'])}",
        )
        rows.append(row)
    return rows


RUNNERS = {
    "digits64": digits_workload("float64"),
    "digits32": digits_workload("float32"),
    "mc-b32": mc_workload(32, 8),
    "mc-b200": mc_workload(200, 5),
    "wide": wide_workload,
    "predict": predict_workload,
    "start": start_workload,
}
DESCRIPTIONS = {
    "digits64": "digits 1797x64, hidden (64,), batch 32, float64",
    "digits32": "digits 1797x64, hidden (64,), batch 32, float32",
    "mc-b32": "make_classification 50k x 100, 10 classes, hidden (256,128), batch 32",
    "mc-b200": "make_classification 50k x 100, 10 classes, hidden (256,128), batch 200",
    "wide": "50k x 256, hidden (1024,1024), batch 512, float32",
    "predict": "predict one row, digits model",
    "start": "import + first fit in a fresh process (cold and warm numba cache)",
}
assert tuple(RUNNERS) == WORKLOADS == tuple(DESCRIPTIONS)


# ------------------------------------------------------------------------ machine, output
def _cpu_model():
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

    from . import __version__

    return {
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastbp": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "sklearn": sklearn.__version__,
        "torch": None if torch is None else torch.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
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


def _load_average():
    """1-minute load average (None where the OS has none): other processes' share."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _print_machine(machine):
    print(
        f"machine: {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['cpu']}; {machine['platform']}"
    )
    print(
        f"python {machine['python']}, fastbp {machine['fastbp']}, numpy {machine['numpy']}, "
        f"numba {machine['numba']}, sklearn {machine['sklearn']}, "
        f"torch {machine['torch'] or 'not installed'}"
    )
    for lib in machine["blas"]:
        print(
            f"threadpool: {lib['internal_api']} {lib['version']} ({lib['user_api']}), "
            f"{lib['num_threads']} threads, {Path(lib['filepath']).name}"
        )


def print_table(rows, torch):
    header = ["workload", "fastbp", "reference", "ratio", "ceiling (1 thr)", "target", "result"]
    if torch is not None:
        header.append("vs torch")
    lines = [header]
    for row in rows:
        cells = [
            row.label,
            row.fastbp,
            row.reference,
            _fmt_value(row),
            _fmt_ceiling(row),
            _fmt_target(row),
            _fmt_result(row),
        ]
        if torch is not None:
            cells.append("-" if row.torch_ratio is None else f"{row.torch_ratio:.2f}x")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    if any(row.spread > NOISY_SPREAD for row in rows):
        print(
            f"(noisy): in some configuration of the row the slowest sample took over "
            f"{NOISY_SPREAD:g}x the fastest: the machine was busy, the median may be off"
        )
    if any(row.within_noise for row in rows):
        print(
            "noise: below its target, but the two configurations' samples overlap: the\n"
            "  difference is not measurable in this run (neither met nor missed)"
        )
    if any(row.ceiling is not None for row in rows):
        print(
            "ceiling: the largest speed-up over sklearn the same arithmetic could reach here\n"
            "  = sklearn's time per epoch / (the epoch's matrix-product FLOPs at the peak rate\n"
            f"  of a square GEMM timed in this run, best of 1 and {usable_cores()} threads); in "
            "brackets: at 1\n  thread's peak. An upper bound: bias, activation, loss, "
            "optimizer and small-matrix\n  costs are left out"
        )
    notes = [row for row in rows if row.note]
    if notes:
        print("notes:")
        for row in notes:
            print(f"  {row.label}: {row.note}")


def plot(path, rows, title):
    """Horizontal bars of every ratio row (log scale), its target, ceiling and the torch
    ratio."""
    plt = load_pyplot()
    rows = [row for row in rows if row.metric != "seconds"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    ypos = np.arange(len(rows))[::-1]
    colors = {True: "tab:green", False: "tab:red", None: "tab:gray", "noise": "tab:olive"}
    ax.barh(
        ypos,
        [row.value for row in rows],
        color=[colors["noise" if row.within_noise else row.met] for row in rows],
    )

    def mark(value_of, fmt, label, **style):
        """One marker per row that has a value; True if any."""
        points = [(value_of(row), y) for y, row in zip(ypos, rows, strict=True)]
        points = [(v, y) for v, y in points if v is not None]
        if points:
            ax.plot([v for v, _ in points], [y for _, y in points], fmt, label=label, **style)
        return bool(points)

    targeted = mark(lambda r: r.target, "k|", "target", markersize=16, markeredgewidth=2)
    with_ceiling = mark(
        lambda r: r.ceiling, "v", "ceiling (FLOPs at peak GEMM rate)", color="tab:purple"
    )
    with_torch = mark(lambda r: r.torch_ratio, "D", "fastbp vs PyTorch", color="tab:orange")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(ypos, [row.label for row in rows])
    for y, row in zip(ypos, rows, strict=True):
        ax.annotate(
            _fmt_value(row),
            (row.value, y),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel(
        "fastbp's speed-up over sklearn or 1 thread; GFLOP/s over a GEMM's\n"
        "green: target met, red: missed, olive: within noise, grey: no target"
    )
    ax.set_title(title)
    if targeted or with_ceiling or with_torch:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------ command
def _load_torch():
    """PyTorch if it can be imported: an optional side comparison."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _warm_fastbp():
    """A tiny fit in each dtype: kernels compiled or loaded, numba's BLAS loaded."""
    from . import MLPClassifier

    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in ("float64", "float32"):
            MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, batch_size=32).fit(
                X[:64].astype(dtype), y[:64]
            ).predict(X[:2].astype(dtype))


def run(settings, names, torch=None, log=print):
    """Run the workloads ``names``; return the report rows and each workload's seconds."""
    from sklearn.exceptions import ConvergenceWarning

    rows, seconds = [], {}
    peaks = PeakRates(settings.peak_size, settings.gemm_calls)  # shared by the workloads
    with warnings.catch_warnings():
        # Stopping after a fixed number of epochs is the point here, not a problem.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, name in enumerate(names, 1):
            log(f"[{i}/{len(names)}] {name}: {DESCRIPTIONS[name]}", end="", flush=True)
            start = time.perf_counter()
            rows += RUNNERS[name](settings, torch, peaks)
            seconds[name] = time.perf_counter() - start
            log(f" ({seconds[name]:.0f} s)", flush=True)
    return rows, seconds


def bench(args):
    """``python -m fastbp bench``: run, print the table, write JSON and PNG; exit code."""
    if args.plot and pyplot_missing():
        return 1
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path and not Path(path).resolve().parent.is_dir():
            print(f"error: {option}: no directory {Path(path).resolve().parent}", file=sys.stderr)
            return 1

    settings = TINY if args.tiny else QUICK if args.quick else FULL
    if args.repeats is not None:
        settings = dataclasses.replace(
            settings, repeats=args.repeats, wide_repeats=args.repeats, start_repeats=args.repeats
        )
    names = args.only or WORKLOADS
    torch = _load_torch() if settings.torch and not args.no_torch else None

    started = time.perf_counter()
    _warm_fastbp()
    machine = machine_info(torch)
    _print_machine(machine)
    print(
        f"mode: {settings.mode}; ratios are medians of {settings.repeats} interleaved "
        f"repeats ({settings.wide_repeats} for wide), all libraries at "
        f"{usable_cores()} threads unless a row says otherwise"
    )
    if settings.mode != "full":
        print(
            f"note: {settings.mode} mode uses smaller data and fewer repeats: its numbers "
            "are indicative only; the cold start is skipped"
        )
    if torch is None:
        why = (
            "--no-torch"
            if args.no_torch
            else f"not in {settings.mode} mode"
            if not settings.torch
            else "torch not installed"
        )
        print(f"PyTorch comparison: off ({why})")
    machine["load_average"] = {"start": _load_average()}
    rows, workload_seconds = run(settings, names, torch)
    wall = time.perf_counter() - started
    machine["load_average"]["end"] = _load_average()
    print()
    print_table(rows, torch)
    load = machine["load_average"]
    if load["start"] is not None:
        print(
            f"load average (1 min): {load['start']:.2f} at start, {load['end']:.2f} at end "
            f"({machine['usable_cores']} cores)"
        )
    print(f"wall time: {wall:.1f} s")

    if args.json:
        report = {
            "format": 1,
            "mode": settings.mode,
            "settings": dataclasses.asdict(settings),
            "workloads": list(names),
            "machine": machine,
            "wall_seconds": wall,
            "workload_seconds": workload_seconds,
            "rows": [row.to_json() for row in rows],
        }
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"results saved to {args.json}")
    if args.plot:
        title = f"fastbp speed-ups ({settings.mode}, {usable_cores()} cores)"
        plot(args.plot, rows, title)
        print(f"ratios plotted to {args.plot}")
    return 0
