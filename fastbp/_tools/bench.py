"""The workloads of ``python -m fastbp bench``: fastbp against scikit-learn (and PyTorch
when it is installed) on the speed targets, and against its speed peers when they are
installed (JAX for training, onnxruntime for inference, both at 1 thread, and the
epoch's own matrix products: ``vs_peers.py``), as ratios measured side by side in one run.

Method. Each workload builds a set of *configurations* (an implementation, the rows it
trains on, a thread count) and times them in turns (``common.interleave``): every one
first runs once untimed (fastbp compiles its kernels or loads them from the on-disk
cache; scikit-learn and PyTorch pay their own first-call costs), then they take turns,
repeat after repeat, so that a noisy neighbour slows them alike; rows compare medians, and
their verdicts come from the ratio of each repeat (``report.verdict``). A fit runs a fixed
number of epochs (``tol=0``, no early stop); its time per epoch is the fit's time divided
by the epochs, fixed costs of ``fit`` included. Where scikit-learn would take minutes it
trains on a leading subset of the rows and its time is scaled per row to the full data
(an epoch's cost is proportional to its rows at a fixed batch size); the row says so.

Threads: the side-by-side comparisons with scikit-learn run every library with as many
threads as the process may use (BLAS through threadpoolctl, numba, torch; fastbp's
``n_threads`` set to the same count). fastbp's thread count is its ``n_threads``
parameter: it runs BLAS at one thread and reads the BLAS limit only as an outer bound
(an outer limit of 1 would make every fit single-threaded), so each fastbp
configuration sets ``n_threads`` and the outer limits to the same count. The
thread-scaling rows time fastbp alone at ``n_threads`` 1 and 2 (the 50k-row networks
in float32); JAX is compared at 1 thread and at 2, onnxruntime and the real-table
workload at 1; the busy-core row runs fastbp at its default ``n_threads``. Any change of
a thread count is undone in ``finally``.
"""

import contextlib
import copy
import os
import statistics
import time
import warnings

import numpy as np

from .._threads import usable_cores
from .ceilings import (
    WIDE_BATCH,
    add_ceiling,
    fit_flops,
    gemm_operands,
    gemm_seconds,
    layer_units,
    training_flops,
    validation_rows,
)
from .common import (
    ALPHA,
    SEED,
    busy_cores,
    classification,
    digits,
    fit_params,
    fit_seconds,
    fmt_seconds,
    interleave,
    median_call_seconds,
)
from .processes import burner, grid_workload, start_workload
from .report import Row, per_repeat
from .vs_peers import TrainingPeers, onnxruntime_config, predict_peer

WIDE_HIDDEN = (1024, 1024)
MC_HIDDEN = (256, 128)
# fastbp's speed-up from 1 thread to 2 (issue 13); "never slower" allows 3 % of noise
THREAD_TARGETS = {"digits64": 0.97, "digits32": 0.97, "mc-b32": 1.3, "mc-b200": 1.6,
                  "wide": 1.8, "lbfgs": 1.6, "predict": 0.97, "predict-rows": 0.97,
                  "predict-mc": 1.6}
BUSY_TARGET = 1.25  # busy-core epoch over the quiet 1-thread epoch
TABLE_TARGET = 6.0  # sklearn's whole fit over fastbp's, 10k x 90, early stopping
TABLE_VALIDATION = 0.1  # its fits' validation_fraction (the estimators' default)


def _median(samples, key):
    return statistics.median(samples[key])


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




def _fastbp_epochs(X, y, params, epochs=1, rows=None):
    """Seconds per epoch (per fit with ``epochs=1``) over all of X's rows of a fastbp fit
    with ``params`` on X's first ``rows`` rows (default all; a subset's time scaled per
    row)."""
    from .. import MLPClassifier as FastbpMLP

    rows = X.shape[0] if rows is None else rows
    Xs, ys, scale = X[:rows], y[:rows], X.shape[0] / rows / epochs
    return lambda: fit_seconds(FastbpMLP, params, Xs, ys) * scale


def _fit_configs(X, y, hidden, batch_size, epochs, sklearn_rows, torch, X_threads, extra,
                 cores):
    """Configurations of one fit workload. Every sample is seconds per epoch over all of
    X's rows (scaled per row for a subset). Keys: fastbp, sklearn, torch (if given) on X;
    fastbp@1, fastbp@2 on ``X_threads`` (X in the thread rows' dtype); ``extra``
    configurations are added as they are. ``cores``: see ``_with_thread_configs``."""
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    n = X.shape[0]
    params = fit_params(hidden, batch_size, epochs)
    warm_rows = min(n, 2 * batch_size)
    main = usable_cores()

    def sklearn(rows):
        Xs, ys = X[:rows], y[:rows]
        return lambda: fit_seconds(SklearnMLP, params, Xs, ys) * (n / rows) / epochs

    def fastbp(data, threads):
        at = {**params, "n_threads": threads}
        return _fastbp_epochs(data, y, at, epochs), _fastbp_epochs(data, y, at, epochs, warm_rows)

    configs = {
        "fastbp": (*fastbp(X, main), main),
        "sklearn": (sklearn(min(sklearn_rows, n)), sklearn(warm_rows), main),
    }
    if torch is not None:

        def torch_fit(rows):
            Xs, ys = X[:rows], y[:rows]
            return lambda: _torch_fit_seconds(torch, Xs, ys, hidden, batch_size, epochs) / epochs

        configs["torch"] = (torch_fit(n), torch_fit(warm_rows), main)
    return _with_thread_configs(configs, lambda t: fastbp(X_threads, t), X_threads is X, extra,
                                cores)


def _with_thread_configs(configs, fastbp_at, main_is_twin, extra, cores):
    """``configs`` and fastbp at 1 thread and at 2 (``fastbp_at(n_threads)`` gives the
    ``(sample, warm_up)`` of fastbp with ``n_threads=n_threads``), then the ``extra``
    configurations. On 2 cores the main run is the 2-thread one when it is its twin
    (``main_is_twin``: same data and dtype), and is not run twice. Every 2-thread run
    appends the cores it kept busy to the list ``cores`` (``common.busy_cores``)."""
    for threads in (1, 2):
        if not (threads == 2 == usable_cores() and main_is_twin):
            configs[f"fastbp@{threads}"] = (*fastbp_at(threads), threads)
    two = "fastbp@2" if "fastbp@2" in configs else "fastbp"
    sample, warm_up, threads = configs[two]
    configs[two] = (busy_cores(sample, cores), warm_up, threads)
    configs.update(extra or {})
    return configs


def _thread_samples(samples):
    """fastbp's samples at 1 and 2 threads (the main run is the 2-thread one on 2 cores)."""
    two = samples["fastbp@2"] if "fastbp@2" in samples else samples["fastbp"]
    return samples["fastbp@1"], two


def thread_row(workload, label, one, two, target, unit, cores, note=""):
    """fastbp's speed-up from 1 thread (samples ``one``) to 2 (``two``), taken in turns;
    the note says how many cores its 2-thread runs kept busy (``cores``, one per run)."""
    per = {"s/epoch": "/epoch", "s/call": "/call", "s/fit": "/fit"}.get(unit, "")
    note = "; ".join(filter(None, [note, (
        f"2-thread runs kept {statistics.median(cores):.2f} cores busy (median CPU time over "
        "wall time; near 1: the second core was taken, no speed-up possible)")]))
    return Row(
        workload,
        f"{label} 2 vs 1 thr",
        "speed-up",
        statistics.median(one) / statistics.median(two),
        target,
        fmt_seconds(statistics.median(two)) + per + " (2 thr)",
        fmt_seconds(statistics.median(one)) + per + " (1 thr)",
        {"fastbp@1": one, "fastbp@2": two},
        unit,
        per_repeat(one, two),
        note=note,
    )


def speed_rows(workload, label, samples, target, n, sklearn_rows, thread_target, unit,
               cores):
    """The speed-up row and the thread-scaling row of a fit or predict workload (its
    2-thread runs kept ``cores`` busy)."""
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
        fmt_seconds(fast) + per,
        "sklearn " + fmt_seconds(sk) + per + ("*" if note else ""),
        {k: v for k, v in samples.items() if not k.startswith("fastbp@")},
        unit,
        per_repeat(samples["sklearn"], samples["fastbp"]),
        torch_ratio,
        note,
    )
    scaling = thread_row(workload, label, *_thread_samples(samples), thread_target, unit,
                         cores)
    return [speed, scaling]


def _fit_workload(settings, torch, peaks, shape, extra=None):
    """Interleave a fit workload's configurations with its peers' (``TrainingPeers``);
    return ``(samples, peers, cores)`` (``cores``: see ``_with_thread_configs``).
    ``shape`` is ``(name, X, y, hidden, batch_size, epochs, sklearn_rows, repeats,
    peer_dtype, large)``; ``large`` workloads leave JAX out unless ``settings.jax_large``."""
    name, X, y, hidden, batch_size, epochs, sklearn_rows, repeats, peer_dtype, large = shape
    skip_jax = f"left out in {settings.mode} mode" if large and not settings.jax_large else None
    # the thread rows and the peers share fastbp's 1- and 2-thread fits in peer_dtype
    X_threads = X if X.dtype == np.dtype(peer_dtype) else X.astype(peer_dtype)
    with contextlib.ExitStack() as stack:  # the JAX processes live through the turns
        vs = TrainingPeers(stack, name, X_threads, y, hidden, batch_size, epochs, skip_jax)
        # the peak rates of the sklearn rows' dtype, and of the peers' when JAX runs
        # (its ceiling); once for a dtype both share
        peer = [np.dtype(peer_dtype).name] if vs.why_no_jax is None else []
        dtypes = dict.fromkeys([X.dtype.name, *peer])
        rates = {key: config for dtype in dtypes for key, config in peaks.configs(dtype).items()}
        extra = {**(extra or {}), **rates, **vs.configs}
        cores = []
        configs = _fit_configs(X, y, hidden, batch_size, epochs, sklearn_rows, torch,
                               X_threads, extra, cores)
        samples = interleave(configs, repeats)
    for dtype in dtypes:
        peaks.collect(dtype, samples)
    vs.take(samples)
    return samples, vs, cores


def digits_workload(dtype):
    """digits (1797 x 64), hidden (64,), batch 32: >= 30x sklearn per epoch; 2 threads
    never slower than 1; >= 1.25x JAX at 1 thread and at 2."""

    def run(settings, torch, peaks):
        X, y = digits(dtype)
        E, name = settings.digits_epochs, f"digits{dtype[-2:]}"
        shape = (name, X, y, (64,), 32, E, len(X), settings.repeats, dtype, False)
        samples, vs, cores = _fit_workload(settings, torch, peaks, shape)
        rows = speed_rows(name, name, samples, 30, len(X), len(X), THREAD_TARGETS[name],
                          "s/epoch", cores)
        rows[0].note = f"{E} epoch(s) per fit, all 1797 rows, {dtype}" + rows[0].note
        add_ceiling(rows[0], peaks, dtype, training_flops(layer_units(X, y, (64,)), len(X)))
        return [*rows, *vs.rows(*rows, peaks)]

    return run


def mc_workload(batch_size, target):
    """make_classification n x 100, 10 classes, hidden (256, 128), float64 against
    scikit-learn; float32 from 1 thread to 2 (``THREAD_TARGETS``), against JAX at 1
    thread and at 2 (>= 1.25x) and against the own-shape GEMM (fraction >= 0.8)."""

    def run(settings, torch, peaks):
        n, m = settings.mc_rows, settings.mc_sklearn_rows
        X, y = classification(n, 100)
        name = f"mc-b{batch_size}"
        shape = (name, X, y, MC_HIDDEN, batch_size, 1, m, settings.repeats, "float32", True)
        samples, vs, cores = _fit_workload(settings, torch, peaks, shape)
        rows = speed_rows(name, name, samples, target, n, min(m, n), THREAD_TARGETS[name],
                          "s/epoch", cores)
        rows[0].note = f"{n} x 100, 1 epoch per fit" + rows[0].note
        rows[1].note = f"{n} x 100 float32, 1 epoch per fit; " + rows[1].note
        add_ceiling(rows[0], peaks, X.dtype, training_flops(layer_units(X, y, MC_HIDDEN), n))
        return [*rows, *vs.rows(*rows, peaks)]

    return run


def _gflops_row(n, samples, gemm, gemm_shape):
    """The wide net's training GFLOP/s over the same-run GEMM's (target >= 0.5)."""
    flops = training_flops([256, *WIDE_HIDDEN, 10], n)
    gemm_flops = 2 * gemm_shape[0] * gemm_shape[1] * gemm_shape[2]

    def rate(key, configuration):
        return flops / _median(samples, key), gemm_flops / _median(gemm, configuration)

    (fit, reference), (fit1, reference1) = rate("fastbp", "gemm"), rate("fastbp@1", "gemm@1")
    fit_rates = [flops / t for t in samples["fastbp"]]
    gemm_rates = [gemm_flops / t for t in gemm["gemm"]]
    return Row(
        "wide",
        "wide GFLOP/s vs GEMM",
        "fraction",
        fit / reference,
        0.5,
        f"{fit / 1e9:.1f} GFLOP/s",
        f"GEMM {reference / 1e9:.1f} GFLOP/s",
        {"fastbp": samples["fastbp"], "gemm": gemm["gemm"]},
        "s/epoch (fastbp), s/GEMM (gemm)",
        per_repeat(fit_rates, gemm_rates),
        note=f"{flops / 1e9:.0f} GFLOP per epoch counted analytically; GEMM "
        "({}x{})@({}x{}) float32; at 1 thread ".format(*gemm_shape[:2], *gemm_shape[1:])
        + f"{fit1 / 1e9:.1f} vs {reference1 / 1e9:.1f} GFLOP/s ({fit1 / reference1:.2f})",
    )


def wide_workload(settings, torch, peaks):
    """n x 256, hidden (1024, 1024), batch 512, float32: the training FLOP rate against a
    same-run float32 GEMM, the speed-up over 1 thread, and (report) over sklearn; >= 1.25x
    JAX at 1 thread and at 2; an own-shape GEMM fraction >= 0.9 at 1 thread."""
    n, m = settings.wide_rows, settings.wide_sklearn_rows
    X, y = classification(n, 256, "float32")
    A, B, out = gemm_operands()
    calls = settings.gemm_calls
    extra = {
        "gemm": (lambda: gemm_seconds(A, B, out, calls), None, usable_cores()),
        "gemm@1": (lambda: gemm_seconds(A, B, out, calls), None, 1),
    }
    shape = ("wide", X, y, WIDE_HIDDEN, WIDE_BATCH, 1, m, settings.wide_repeats, "float32", True)
    samples, vs, cores = _fit_workload(settings, torch, peaks, shape, extra)

    gemm = {k: samples.pop(k) for k in ("gemm", "gemm@1")}
    speed, scaling = speed_rows("wide", "wide", samples, None, n, min(m, n),
                                THREAD_TARGETS["wide"], "s/epoch", cores)
    speed.note = f"{n} x 256 float32, 1 epoch per fit" + speed.note
    add_ceiling(speed, peaks, X.dtype, training_flops(layer_units(X, y, WIDE_HIDDEN), n))
    gemm_scaling = _median(gemm, "gemm@1") / _median(gemm, "gemm")
    scaling.note = f"numpy's GEMM alone: {gemm_scaling:.2f}x from 1 to 2 threads; " + scaling.note
    scaling.times.update(gemm)
    fraction = _gflops_row(n, samples, gemm, (A.shape[0], A.shape[1], B.shape[1]))
    return [fraction, speed, scaling, *vs.rows(speed, scaling, peaks)]


PREDICT_ROWS = 10_000
ROWS_CALLS = 5  # calls on the 10,000 rows per sample (their median is the sample)


def predict_workload(n_rows, dtype, method, target, peer_target):
    """``method`` ("predict" or "predict_proba") on ``n_rows`` rows (digits repeated) with
    a model fitted on digits in ``dtype``: fastbp against sklearn (``target``), and at
    1 thread against a 1-thread onnxruntime session (``peer_target``)."""

    def run(settings, torch, peaks):
        from sklearn.neural_network import MLPClassifier as SklearnMLP

        from .. import MLPClassifier as FastbpMLP

        X, y = digits(dtype)
        params = fit_params((64,), 32, settings.digits_epochs)
        x = np.resize(X, (n_rows, X.shape[1]))
        calls = settings.predict_calls if n_rows == 1 else ROWS_CALLS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = {key: cls(**params).fit(X, y)
                      for key, cls in (("fastbp", FastbpMLP), ("sklearn", SklearnMLP))}

        def latency(predict):
            return lambda: median_call_seconds(predict, x, calls)

        def fastbp_at(threads):
            return latency(getattr(at_threads(models["fastbp"], threads), method)), None

        main = usable_cores()
        configs = {"fastbp": (*fastbp_at(main), main),
                   "sklearn": (latency(getattr(models["sklearn"], method)), None, main)}
        if torch is not None:
            configs["torch"] = (latency(_torch_predict(torch, X.shape[1], X.dtype)), None, main)
        peer, why_not = onnxruntime_config(models["fastbp"], x, calls)
        cores = []
        configs = _with_thread_configs(configs, fastbp_at, True, peer, cores)
        samples = interleave(configs, settings.repeats)
        label = "predict 1 row" if n_rows == 1 else f"predict {n_rows} rows"
        name = workload_name(n_rows)
        rows = speed_rows(name, label, samples, target, 1, 1, THREAD_TARGETS[name], "s/call",
                          cores)
        rows[0].note = (f"{method}, median of {calls} calls per sample, digits model, "
                        f"{dtype}" + rows[0].note)
        predict_peer(rows[0], samples, why_not, peer_target)
        return rows

    return run


def workload_name(n_rows):
    return "predict" if n_rows == 1 else "predict-rows"


def at_threads(estimator, n_threads):
    """A copy of the fitted ``estimator`` that predicts on ``n_threads`` threads."""
    return copy.deepcopy(estimator).set_params(n_threads=n_threads)


PREDICT_MC_CALLS = 3  # calls on the 100,000 rows per sample (their median is the sample)


def predict_mc_workload(settings, torch, peaks):
    """``predict`` on n rows (100,000 in full and quick runs) with the mc network
    (100 features, hidden (256, 128), 10 classes) in float32: 2 threads vs 1, >= 1.6x.
    The weights come from one epoch on the first 2,000 rows (they change no timing)."""
    from .. import MLPClassifier as FastbpMLP

    n = settings.predict_mc_rows
    X, y = classification(n, 100, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge: not the point here
        fitted = FastbpMLP(**fit_params(MC_HIDDEN, 200, 1)).fit(X[:2_000], y[:2_000])

    def fastbp_at(threads):
        predict = at_threads(fitted, threads).predict
        return (lambda: median_call_seconds(predict, X, PREDICT_MC_CALLS)), None

    cores = []
    samples = interleave(_with_thread_configs({}, fastbp_at, False, None, cores),
                         settings.repeats)
    return [thread_row(
        "predict-mc", f"predict {n} rows mc", *_thread_samples(samples),
        THREAD_TARGETS["predict-mc"], "s/call", cores,
        note=f"predict, median of {PREDICT_MC_CALLS} calls per sample, {n} x 100 float32, "
        f"hidden {MC_HIDDEN}; n_threads 1 and 2",
    )]


def lbfgs_workload(settings, torch, peaks):
    """L-BFGS on the mc data (n x 100, hidden (256, 128), float32), a fixed number of
    iterations per fit: 2 threads vs 1, >= 1.6x. Both thread counts compute the same
    objective bit for bit, so they make the same evaluations: the ratio per fit is the
    ratio per evaluation."""
    n, iterations = settings.mc_rows, settings.lbfgs_iterations
    X, y = classification(n, 100, "float32")
    params = {key: value for key, value in fit_params(MC_HIDDEN, 200, iterations).items()
              if key not in ("batch_size", "n_iter_no_change")}  # no effect with L-BFGS
    params["solver"] = "lbfgs"

    def fastbp_at(threads):
        at = {**params, "n_threads": threads}
        return _fastbp_epochs(X, y, at), _fastbp_epochs(X, y, at, rows=min(n, 512))

    cores = []
    samples = interleave(_with_thread_configs({}, fastbp_at, False, None, cores),
                         settings.repeats)
    return [thread_row(
        "lbfgs", f"lbfgs {n} rows", *_thread_samples(samples), THREAD_TARGETS["lbfgs"],
        "s/fit", cores, note=f"{n} x 100 float32, hidden {MC_HIDDEN}, {iterations} L-BFGS "
        "iterations per fit; n_threads 1 and 2",
    )]


def _torch_predict(torch, n_features, dtype):
    """An untrained PyTorch net of the digits model's shape, as a predict function."""
    net = _torch_net(torch, n_features, (64,), 10, getattr(torch, np.dtype(dtype).name))

    def predict(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)).argmax(1).numpy()

    return predict


def table_workload(settings, torch, peaks):
    """A real table's shape: n x 90 dense standardised features, hidden (100,), batch
    200, early stopping on (its validation score every epoch, best weights kept), a
    fixed number of epochs; whole fits, fastbp against sklearn at 1 thread: >= 6x. The
    row's ceiling counts a whole fit's FLOPs: the epochs on the training rows and the
    validation set's forward pass after each."""
    from sklearn.neural_network import MLPClassifier as SklearnMLP
    from sklearn.preprocessing import StandardScaler

    from .. import MLPClassifier as FastbpMLP

    n, epochs = settings.table_rows, settings.table_epochs
    X, y = classification(n, 90)
    X = StandardScaler().fit_transform(X)
    params = {**fit_params((100,), 200, epochs), "early_stopping": True,
              "validation_fraction": TABLE_VALIDATION}

    def fit(cls):
        return lambda: fit_seconds(cls, params, X, y)

    configs = {"fastbp": (fit(FastbpMLP), None, 1), "sklearn": (fit(SklearnMLP), None, 1),
               **peaks.configs(X.dtype)}
    samples = interleave(configs, settings.repeats)
    peaks.collect(X.dtype, samples)
    fast, sk = _median(samples, "fastbp"), _median(samples, "sklearn")
    n_validation = validation_rows(n, TABLE_VALIDATION)
    flops = fit_flops(layer_units(X, y, (100,)), n - n_validation, n_validation, epochs)
    row = Row(
        "table",
        f"table {n}x90 fit",
        "speed-up",
        sk / fast,
        TABLE_TARGET,
        fmt_seconds(fast) + "/fit",
        "sklearn " + fmt_seconds(sk) + "/fit",
        samples,
        "s/fit",
        per_repeat(samples["sklearn"], samples["fastbp"]),
        note=f"{epochs} epochs per whole fit, early_stopping=True (validation_fraction "
        f"{TABLE_VALIDATION:g}), float64, both at 1 thread",
    )
    add_ceiling(row, peaks, X.dtype, flops, per="fit", one_thread=True)
    return [row]


def busy_workload(settings, torch, peaks):
    """An epoch of the mc-b200 network in float32 at fastbp's default thread count while
    a CPU burner holds one core, over the quiet 1-thread epoch: <= 1.25x. A 2-thread
    BLAS product waits for its descheduled thread; the thread policy must not let that
    cost more than a quarter."""
    from .. import MLPClassifier as FastbpMLP

    n = settings.mc_rows
    X, y = classification(n, 100, "float32")
    params = fit_params(MC_HIDDEN, 200, 1)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]

    def quiet():
        return fit_seconds(FastbpMLP, {**params, "n_threads": 1}, X, y)

    def busy():
        with burner(cores[-1]):
            return fit_seconds(FastbpMLP, params, X, y)  # n_threads=None: the default

    # Busy at fastbp's default n_threads (the usable cores) and the thread counts the
    # process had (None: unchanged); quiet at one thread.
    samples = interleave({"quiet@1": (quiet, None, 1), "busy": (busy, quiet, None)},
                         settings.repeats)
    quiet_median, busy_median = _median(samples, "quiet@1"), _median(samples, "busy")
    note = f"{n} x 100 float32, 1 epoch per fit; burner on core {cores[-1]}"
    if len(cores) == 1:
        note += "; one usable core: the burner shares it, so this measures time-slicing"
    return [Row(
        "busy",
        "busy core",
        "slowdown",
        busy_median / quiet_median,
        BUSY_TARGET,
        fmt_seconds(busy_median) + "/epoch (busy)",
        fmt_seconds(quiet_median) + "/epoch (quiet 1 thr)",
        samples,
        "s/epoch",
        per_repeat(samples["busy"], samples["quiet@1"]),
        note=note,
    )]


RUNNERS = {
    "digits64": digits_workload("float64"),
    "digits32": digits_workload("float32"),
    "mc-b32": mc_workload(32, 8),
    "mc-b200": mc_workload(200, 5),
    "wide": wide_workload,
    "lbfgs": lbfgs_workload,
    "predict": predict_workload(1, "float64", "predict", 20, 1.0),
    "predict-rows": predict_workload(PREDICT_ROWS, "float32", "predict_proba", None, 1.2),
    "predict-mc": predict_mc_workload,
    "table": table_workload,
    "busy": busy_workload,
    "start": start_workload,
    "grid": grid_workload,
}
DESCRIPTIONS = {
    "digits64": "digits 1797x64, hidden (64,), batch 32, float64",
    "digits32": "digits 1797x64, hidden (64,), batch 32, float32",
    "mc-b32": "make_classification 50k x 100, 10 classes, hidden (256,128), batch 32",
    "mc-b200": "make_classification 50k x 100, 10 classes, hidden (256,128), batch 200",
    "wide": "50k x 256, hidden (1024,1024), batch 512, float32",
    "lbfgs": "L-BFGS on make_classification 50k x 100, hidden (256,128), float32",
    "predict": "predict one row, digits model; onnxruntime at 1 thread",
    "predict-rows": "predict_proba on 10,000 rows, digits model, float32; onnxruntime",
    "predict-mc": "predict on 100,000 rows, 100 features, hidden (256,128), float32",
    "table": "10k x 90 standardised, hidden (100,), batch 200, early stopping, 1 thread",
    "busy": "mc-b200 in float32 with one core taken by a CPU burner",
    "start": "import + first fit in fresh processes (cold and warm numba cache; JAX's beside "
    "it when installed)",
    "grid": "GridSearchCV(n_jobs=2) of 18 small fits in a fresh process vs scikit-learn",
}
WORKLOADS = tuple(RUNNERS)
assert WORKLOADS == tuple(DESCRIPTIONS)
