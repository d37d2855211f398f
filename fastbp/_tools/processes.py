"""The bench's other processes: fresh interpreters for the cold and warm start, and a CPU
burner that holds one core while the busy-core row is timed."""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import peers
from .common import digits, fit_params, fmt_seconds, interleave
from .report import Row, per_repeat
from .vs_peers import set_fastest_peer

PACKAGE = Path(__file__).resolve().parents[1]  # the fastbp these tools belong to
# Start-up runs: the dtypes fitted in one fresh process, one fit each.
START_DTYPES = {"float64": ["float64"], "float32": ["float32"], "both": ["float64", "float32"]}
# Issue 14's targets, seconds of import + first fit(s) in a fresh process: one dtype
# with an empty numba cache, both dtypes with an empty cache, and any warm start
# (scikit-learn's own import of its MLP is about 1.1-1.5 s of the 1.5 on this machine).
START_TARGETS = {"cold": {"float64": 4.0, "float32": 4.0, "both": 6.0},
                 "warm": {"float64": 1.5, "float32": 1.5, "both": 1.5}}
# fastbp's start-up over JAX's (the moonshot: a cold start no slower than JAX's
# without its persistent cache; the warm ones are reported)
JAX_START_TARGETS = {"cold": 1.0, "warm": None}
GRID_TARGET = 2.0  # speed-up over scikit-learn of a small grid search in a fresh process

_START_SCRIPT = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
data = np.load(sys.argv[1])
X, y = data["X"], data["y"]
params = json.loads(sys.argv[2])
start = time.perf_counter()
from fastbp import MLPClassifier
imported = time.perf_counter()
for dtype in sys.argv[3].split(","):
    MLPClassifier(**params).fit(X.astype(dtype), y)
done = time.perf_counter()
import fastbp
print(json.dumps({"import": imported - start, "first_fit": done - start,
                  "fastbp": fastbp.__file__}))
"""


def _child_env(cache_dir):
    """The environment of a child interpreter that imports this very fastbp (a worktree
    or checkout, not another install), with numba's cache in ``cache_dir`` (None: this
    tree's)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE.parent), env.get("PYTHONPATH")]))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def start_seconds(data_path, params, dtypes, cache_dir):
    """Import of fastbp + one first fit per dtype on digits in a fresh interpreter.

    The data are loaded with numpy alone beforehand, so importing scikit-learn is part of
    the time. Returns ``{"first_fit": s, "import": s, "wall": s}``: the first two
    measured in the child from before the import, the last the whole child process.
    ``cache_dir`` None keeps numba's cache next to the sources (this tree's).
    """
    command = [sys.executable, "-c", _START_SCRIPT, str(data_path), json.dumps(params)]
    start = time.perf_counter()
    proc = subprocess.run([*command, ",".join(dtypes)], env=_child_env(cache_dir),
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"start-up subprocess failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(result.pop("fastbp")) != PACKAGE / "__init__.py":
        raise RuntimeError(f"the start-up subprocess imported another fastbp: {proc.stdout}")
    return {**result, "wall": wall}


def _jax_warm_caches(jax_arguments, tmp, names):
    """JAX's persistent caches for its warm runs of the dtypes ``names``: one untimed
    start-up run fills each (JAX keys its programs by the x64 mode too, so a cache
    filled in x64 mode for both dtypes would miss the float32 programs of a float32-only
    process)."""
    caches = {}
    for name in names:
        caches[name] = Path(tmp) / f"jax-cache-{name}"
        caches[name].mkdir()
        peers.jax_start_seconds(jax_arguments, START_DTYPES[name], caches[name])
    return caches


def start_runs(settings, data_path, params, tmp, jax_arguments=None, kinds=None,
               names=tuple(START_DTYPES)):
    """``({(library, kind, dtypes name): [run, ...]}, why)`` over
    ``settings.start_repeats`` repeats, fastbp and (with ``jax_arguments``, see
    ``peers.jax_arguments``) JAX taking turns on each start-up; ``why`` says why JAX's
    runs are missing when its process failed (None otherwise). ``kinds`` (default: cold
    and warm, or warm alone without ``settings.cold_start``) and ``names`` (keys of
    ``START_DTYPES``) choose the start-ups.

    fastbp's cold runs each get a new empty NUMBA_CACHE_DIR; its warm runs of a repeat
    reuse the cache its cold "both" run filled (every kernel, both dtypes), else this
    tree's cache. JAX's cold runs have no persistent compilation cache (JAX's default);
    its warm ones use caches filled once beforehand by untimed runs of the same dtypes.
    """
    if kinds is None:
        kinds = ("cold", "warm") if settings.cold_start else ("warm",)
    libraries = ("fastbp",) if jax_arguments is None else ("fastbp", "jax")
    runs = {(library, kind, name): []
            for kind in kinds for name in names for library in libraries}
    jax_warm, why = {}, None

    def failed(exc):  # JAX's process failed: fastbp's runs go on without their peer
        return f"the JAX start-up process failed: {str(exc).splitlines()[-1]}"

    if jax_arguments is not None and "warm" in kinds:
        try:
            jax_warm = _jax_warm_caches(jax_arguments, tmp, names)
        except RuntimeError as exc:
            why = failed(exc)
    for r in range(settings.start_repeats):
        fastbp_warm = None
        for library, kind, name in runs:
            dtypes = START_DTYPES[name]
            if library == "jax":
                if why is None:
                    cache = jax_warm[name] if kind == "warm" else None
                    try:
                        runs[library, kind, name].append(
                            peers.jax_start_seconds(jax_arguments, dtypes, cache))
                    except RuntimeError as exc:
                        why = failed(exc)
                continue
            cache = fastbp_warm
            if kind == "cold":
                cache = Path(tmp) / f"numba-cache-{r}-{name}"
                cache.mkdir()
                fastbp_warm = cache if name == "both" else fastbp_warm
            runs[library, kind, name].append(start_seconds(data_path, params, dtypes, cache))
    if why is not None:
        runs = {key: value for key, value in runs.items() if key[0] == "fastbp"}
    return runs, why


def _start_jax_arguments(X, y, params):
    """The JAX start-up's ``peers.jax_arguments``: the digits network fastbp's start-up
    fits, with the weights one fastbp fit in this process starts from."""
    from .. import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: not converged
        estimator = MLPClassifier(**{**params, "max_iter": 1}).fit(X, y)
    return peers.jax_arguments(estimator, X, y, params["batch_size"], 1)


def start_workload(settings, torch, peaks):
    """Import + first 1-epoch fit on digits in fresh processes, float64, float32 and both:
    with an empty NUMBA_CACHE_DIR (cold: compiles, <= 4 s for one dtype, <= 6 s for both)
    and with the cache a cold run left (warm: <= 1.5 s). Without ``settings.cold_start``
    only the warm ones run, on this tree's cache. Medians of ``settings.start_repeats``.

    With jax and optax installed, a new JAX user's first fit of the same network (import
    jax and optax, jit, compile and run one ``lax.scan`` epoch per dtype;
    ``peers.jax_start_seconds``) takes turns with each, without and with JAX's
    persistent compilation cache: the row's peer column. The issue's moonshot is a cold
    start no slower than JAX's (fastbp's time also imports scikit-learn, which JAX's
    does not).
    """
    X, y = digits()
    params = fit_params((64,), 32, 1)
    why_no_jax = peers.unavailable("jax")
    jax_arguments = None if why_no_jax else _start_jax_arguments(X, y, params)
    caches = {
        "cold": "empty NUMBA_CACHE_DIR",
        "warm": "the cold run's cache" if settings.cold_start else "this tree's cache",
    }
    with tempfile.TemporaryDirectory(prefix="fastbp-bench-") as tmp:
        data_path = Path(tmp) / "digits.npz"
        np.savez(data_path, X=X, y=y)
        runs, why_jax_failed = start_runs(settings, data_path, params, tmp, jax_arguments)
    why_no_jax = why_no_jax or why_jax_failed

    rows = []
    for (library, kind, name), kind_runs in runs.items():
        if library != "fastbp":
            continue
        times = {f"{kind} {key}": [run[key] for run in kind_runs] for key in kind_runs[0]}
        med = {key: statistics.median(t) for key, t in times.items()}
        first_fits = times[f"{kind} first_fit"]
        row = Row(
            "start",
            f"{kind} start {name}",
            "seconds",
            statistics.median(first_fits),
            START_TARGETS[kind][name],
            fmt_seconds(statistics.median(first_fits)),
            f"import {fmt_seconds(med[f'{kind} import'])}",
            times,
            "s",
            first_fits,
            note=f"import fastbp + first fit ({'+'.join(START_DTYPES[name])}) on digits in "
            f"a fresh process, {caches[kind]}; whole process {fmt_seconds(med[f'{kind} wall'])}",
            peer_setting="fresh process",
        )
        if why_no_jax:
            row.note += f"; jax peer not measured: {why_no_jax}"
        else:
            jax_runs = runs["jax", kind, name]
            jax_fits = [run["first_fit"] for run in jax_runs]
            set_fastest_peer(row, first_fits, {"jax": jax_fits}, JAX_START_TARGETS[kind])
            row.note += (
                f"; jax: import jax + jit + first epoch {fmt_seconds(statistics.median(jax_fits))}"
                f" (import {fmt_seconds(statistics.median(r['import'] for r in jax_runs))}), "
                f"{'no' if kind == 'cold' else 'its own'} persistent compilation cache"
            )
        rows.append(row)
    return rows


# A small grid search as a user starts it: a fresh interpreter, 9 settings x 2 folds on
# two loky workers, each of which imports the library and (fastbp) loads the kernels.
_GRID_SCRIPT = """
import sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
data = np.load(sys.argv[1])
start = time.perf_counter()
from sklearn.model_selection import GridSearchCV
if sys.argv[2] == "fastbp":
    from fastbp import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
grid = {"hidden_layer_sizes": [(16,), (32,), (64,)], "alpha": [1e-4, 1e-3, 1e-2]}
search = GridSearchCV(MLPClassifier(max_iter=int(sys.argv[3]), random_state=0), grid, cv=2,
                      n_jobs=2)
search.fit(data["X"], data["y"])
print(time.perf_counter() - start)
"""


def grid_seconds(data_path, library, max_iter):
    """Wall seconds of ``_GRID_SCRIPT`` for ``library`` ("fastbp" or "sklearn") in a
    fresh interpreter, imports included, fastbp with this tree's numba cache."""
    proc = subprocess.run(
        [sys.executable, "-c", _GRID_SCRIPT, str(data_path), library, str(max_iter)],
        env=_child_env(None), capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"grid-search subprocess failed:\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def grid_workload(settings, torch, peaks):
    """GridSearchCV(n_jobs=2) of 18 small fits on digits (3 hidden sizes x 3 alphas x 2
    folds) in a fresh process, fastbp against scikit-learn: >= 2x. The fixed cost of
    each worker (importing, loading the compiled kernels) weighs as much as the fits.
    An untimed first fastbp run fills this tree's numba cache."""
    X, y = digits()
    max_iter = 2 if settings.mode == "tiny" else 10
    with tempfile.TemporaryDirectory(prefix="fastbp-bench-") as tmp:
        data_path = Path(tmp) / "digits.npz"
        np.savez(data_path, X=X, y=y)
        configs = {lib: (lambda lib=lib: grid_seconds(data_path, lib, max_iter), None, None)
                   for lib in ("fastbp", "sklearn")}
        samples = interleave(configs, settings.start_repeats)
    fast, sk = (statistics.median(samples[lib]) for lib in ("fastbp", "sklearn"))
    return [Row(
        "grid",
        "grid search, fresh process",
        "speed-up",
        sk / fast,
        GRID_TARGET,
        fmt_seconds(fast),
        "sklearn " + fmt_seconds(sk),
        samples,
        "s",
        per_repeat(samples["sklearn"], samples["fastbp"]),
        note=f"GridSearchCV(n_jobs=2, cv=2) over 9 settings, max_iter={max_iter}, digits, "
        "wall time of a fresh interpreter including its imports and the workers' start",
    )]


_BURN = "import sys\nprint('ready', flush=True)\nwhile True:\n    pass\n"


@contextlib.contextmanager
def burner(core):
    """A subprocess spinning on ``core`` (where affinity can be set) during the block;
    it is killed on exit, also when the block raises."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _BURN], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {core})
        proc.stdout.readline()  # spinning from here on: the block runs on a busy core
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
