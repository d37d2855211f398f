"""A cold first fit compiles its C callbacks in a helper process (``fastbp._compile_ahead``):
the fit loads them from the cache the helper filled, trains to the same weights bit for
bit as when the helper fails and the fit compiles them itself, and says once that it
compiles; the helper runs only when it can gain. On a first run, ``import fastbp`` starts a
helper for the float64 epoch kernel, which a float64 first fit loads and any other stops.

The fits run in subprocesses with their own empty NUMBA_CACHE_DIR (a cold fit: about
5-8 s of CPU each).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import _compile_ahead
from fastbp._kernels import activations, losses, optimizers, penalties

ROOT = str(Path(fastbp.__file__).resolve().parents[1])
NOTICE = "fastbp is compiling"



# One small fit on two threads (relu hidden layers, a softmax output, the log loss),
# of DTYPE data, with SOLVER; prints whether a helper compiled the kernel or the
# callbacks, how many of those the fit uses (four, and a stochastic solver's rule) this
# process loaded from the cache, its entry kernel's compiles and cache misses in this
# process, whether relu's callback was cached before the fit, whether an early helper
# started at import, the modules of the functions it compiled, and the weights.
FIT = """
    import warnings
    import numpy as np
    import fastbp
    from fastbp import _compile_ahead
    from fastbp._kernels import activations, losses, optimizers, penalties, train
    from sklearn.exceptions import ConvergenceWarning
    warnings.simplefilter("ignore", ConvergenceWarning)
    from numba.core import event
    modules = set()  # of the fastbp functions this process compiles

    class Compiles(event.Listener):
        def on_start(self, ev):
            modules.add(ev.data["dispatcher"].py_func.__module__.rpartition(".")[2])

        def on_end(self, ev):
            pass

    event.register("numba:compile", Compiles())
    helped = []
    prepare = _compile_ahead.prepare
    _compile_ahead.prepare = lambda *a: helped.append(prepare(*a)) or helped[-1]
    before = activations.cached(activations.RELU, DTYPE)  # from the cache's index
    early = _compile_ahead._early is not None  # started at import
    rng = np.random.default_rng(0)  # as test_a_first_float64_fit_... below, in its own process
    X, y = rng.normal(size=(90, 5)).astype(DTYPE), np.arange(90) % 3
    model = fastbp.MLPClassifier((6,), max_iter=2, random_state=0, n_threads=2,
                                 solver=SOLVER).fit(X, y)
    used = [(activations, activations.RELU), (activations, activations.SOFTMAX),
            (losses, losses.LOG_LOSS), (penalties, penalties.FINISH)]
    kernel = train.full_loss_grad
    if SOLVER != "lbfgs":
        used[-1] = (penalties, penalties.IN_STEP)
        used.append((optimizers, optimizers.CODES[SOLVER]))
        kernel = train.train_epoch
    hits = [table._TABLE.compiled(code, DTYPE).cache_hits for table, code in used]
    print(int(any(helped)), sum(hits), len(kernel.overloads),
          sum(kernel.stats.cache_misses.values()), int(before), int(early))
    print(" ".join(sorted(modules)) or "-")
    print(" ".join(repr(float(w)) for w in np.concatenate([c.ravel() for c in model.coefs_])))
"""
# the modules of the callbacks and their callees, and only those: what a helper compiles
HELPER_MODULES = {"activations", "losses", "optimizers", "penalties", "vmath"}
USED = {"adam": 5, "lbfgs": 4}  # the callbacks each fit uses


def _fit(cache_dir, solver="adam", boot=None, dtype="float32"):
    """Runs FIT in a fresh interpreter on ``cache_dir``; returns (stderr, helped, loaded
    from the cache, kernel compiles, kernel cache misses, relu cached before the fit,
    early helper, the modules of the functions it compiled, weights line)."""
    code = textwrap.dedent(FIT).replace("SOLVER", repr(solver)).replace("DTYPE", f"np.{dtype}")
    if boot is not None:  # the helper's script, replaced
        code = code.replace("helped = []", f"helped = []\n_compile_ahead._BOOT = {boot!r}")
    # the fit's two threads: no BLAS limit from the environment (the helpers' premise)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"
           and k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT, NUMBA_NUM_THREADS="2",
               FASTBP_COMPILE_HELPER="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    counts, modules, weights = proc.stdout.splitlines()[-3:]
    return (proc.stderr, *map(int, counts.split()), set(modules.split()), weights)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_cold_fit_loads_the_callbacks_a_helper_compiled(tmp_path_factory, solver):
    # the reference: a helper that fails (exits 3) leaves the fit to compile them itself
    reference = _fit(tmp_path_factory.mktemp("numba-cache"), solver,
                     boot="import sys\nsys.exit(3)\n")
    assert reference[1:6] == (0, 0, 1, 1, 0), reference[0]
    cache = tmp_path_factory.mktemp("numba-cache")
    stderr, helped, loaded, compiles, misses, before, early, modules, weights = _fit(
        cache, solver)
    # a first run: the early helper started at import, and this float32 fit stopped it
    assert early == 1 and helped == 1, stderr
    # the helper and the fit never compile one function (neither does the other's work)
    assert not modules & HELPER_MODULES and reference[-2] & HELPER_MODULES
    # relu, softmax, the log loss, the finishing pass (and the rule), cached
    assert loaded == USED[solver]
    assert (compiles, misses, before) == (1, 1, 0)  # the kernel compiled once, here
    assert stderr.count(NOTICE) == 1, stderr
    assert weights == reference[-1]  # the same training, bit for bit
    if solver == "lbfgs":
        return
    # a second process finds everything in the cache: no helper, nothing compiled
    stderr, helped, loaded, compiles, misses, before, early, _, weights = _fit(cache)
    assert (helped, loaded, misses, before, early) == (0, USED[solver], 0, 1, 0)
    assert NOTICE not in stderr and weights == reference[-1]
    # the kernel cached but two activations not: they compile here, without a helper
    gone = [f for f in cache.rglob("activations._*") if "_relu" in f.name
            or "_softmax" in f.name]
    assert gone  # the premise: the helper wrote them there
    for f in gone:
        f.unlink()
    _, helped, loaded, compiles, misses, before, early, _, weights = _fit(cache)
    assert (helped, loaded, misses, before, early) == (0, USED[solver] - 2, 0, 0, 0)
    assert weights == reference[-1]


@pytest.mark.usefixtures("quiet_convergence")
def test_a_first_float64_fit_loads_the_kernel_the_early_helper_compiled(tmp_path):
    """On a first run, ``import fastbp`` starts the early helper; a float64 fit compiles
    only its callbacks, loads the epoch kernel the helper compiled meanwhile, and trains
    as this process does."""
    stderr, helped, loaded, compiles, misses, before, early, modules, weights = _fit(
        tmp_path, dtype="float64")
    assert (early, helped) == (1, 1), stderr
    assert (loaded, compiles, misses, before) == (0, 1, 0, 0)  # callbacks here, kernel loaded
    kernels = {p.stem for p in Path(_compile_ahead.__file__).parent.glob("_kernels/*.py")}
    assert modules & kernels <= HELPER_MODULES, modules  # no kernel function compiled here
    assert stderr.count(NOTICE) == 1, stderr
    rng = np.random.default_rng(0)  # FIT's data
    X, y = rng.normal(size=(90, 5)), np.arange(90) % 3
    model = fastbp.MLPClassifier((6,), max_iter=2, random_state=0, n_threads=2).fit(X, y)
    assert weights == " ".join(repr(float(w)) for c in model.coefs_ for w in c.ravel())


def test_the_helper_imports_the_kernels_without_scikit_learn(tmp_path):
    """The helper skips ``fastbp/__init__`` (scikit-learn's import is most of a fresh
    process's start), writes its callbacks into the cache it was given, and compiles
    functions of the callbacks' modules only: the fit compiles the others at the same
    time, and neither should do the other's work."""
    jobs = json.dumps([["activations", activations.TANH, "float32"],
                       ["activations", activations.SOFTMAX, "float32"],
                       ["losses", losses.LOG_LOSS, "float32"],
                       ["optimizers", optimizers.CODES["adam"], "float32"],
                       ["penalties", penalties.FINISH, "float32"]])
    listen = textwrap.dedent("""
        from numba.core import event
        modules = set()

        class Compiles(event.Listener):
            def on_start(self, ev):
                modules.add(ev.data["dispatcher"].py_func.__module__)

            def on_end(self, ev):
                pass

        event.register("numba:compile", Compiles())
    """)
    report = ("print([m for m in sys.modules if 'sklearn' in m])\n"
              "print(' '.join(sorted(modules)), flush=True)\n")
    assert _compile_ahead._BOOT.endswith("os._exit(0)\n")  # its last line: no teardown
    code = listen + _compile_ahead._BOOT.replace("os._exit(0)\n", report + "os._exit(0)\n")
    argv = [_compile_ahead._PACKAGE, "\n".join(sys.path), jobs]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    imported, compiled = proc.stdout.splitlines()[-2:]
    assert imported == "[]"
    ours = {m.rpartition(".")[2] for m in compiled.split() if m.startswith("fastbp.")}
    assert ours and ours <= HELPER_MODULES, compiled
    assert list(tmp_path.rglob("activations._tanh-*.nbi"))


class _Table:
    """A stand-in callback table: ``cached`` answers ``state``."""

    def __init__(self, name, state):
        self.__name__, self.state = f"fastbp._kernels.{name}", state

    def cached(self, code, dtype):
        return self.state


class _Kernel:
    """A stand-in dispatcher that compiles nothing and logs its compiles in ``log``."""

    targetctx = None
    _cache = None

    def __init__(self, log):
        self.overloads, self.log = {}, log

    def typeof_pyval(self, value):
        return type(value)

    def compile(self, sig):
        self.log.append(("compile", sig))


class _Helper:
    """A stand-in helper process: exits with ``code``, or never (``code`` None)."""

    def __init__(self, log, code):
        self.log, self.code, self.returncode = log, code, None

    def wait(self, timeout=None):
        if self.code is None and self.returncode is None:
            raise subprocess.TimeoutExpired("helper", timeout)
        self.returncode = self.code if self.returncode is None else self.returncode
        return self.returncode

    def poll(self):
        return self.returncode

    def kill(self):
        self.log.append(("kill",))
        self.returncode = -9


class _Log(list):
    code = 0  # the exit code of the helpers started


@pytest.fixture
def log(monkeypatch):
    """What ``prepare`` did, in order: helpers started (their jobs), kernel compiles,
    helpers killed; kernels count as cold, helpers exit with ``log.code``."""
    log = _Log()

    def start(jobs):
        log.append(("start", jobs))
        return _Helper(log, log.code)

    monkeypatch.setattr(_compile_ahead, "_start", start)
    monkeypatch.setattr(_compile_ahead, "in_cache", lambda cache, sig, ctx: False)
    monkeypatch.setattr(_compile_ahead, "usable_cores", lambda: 2)
    monkeypatch.setattr(_compile_ahead, "_early", None)  # this process's, if any, kept
    monkeypatch.setattr(_compile_ahead, "_first_run", lambda: True)
    monkeypatch.setattr(_compile_ahead._threads, "budget", lambda n_threads: 2)
    monkeypatch.setattr(_compile_ahead.atexit, "register", lambda f: log.append(("atexit",)))
    monkeypatch.setattr(_compile_ahead._compile_notice, "announce",
                        lambda kernel, dtype: log.append(("notice", dtype)))
    monkeypatch.delenv("FASTBP_COMPILE_HELPER", raising=False)
    return log


def test_the_helper_runs_only_when_it_can_gain(log, monkeypatch):
    cold, warm = _Table("activations", False), _Table("losses", True)
    kernel = _Kernel(log)
    args = (np.zeros(3), 1)
    # cold callbacks and kernel, two threads: the helper starts first, with the cold
    # callbacks once each, then the kernel compiles here
    assert _compile_ahead.prepare(kernel, args, [(cold, 3), (cold, 3), (warm, 2)],
                                  np.float32, 2)
    assert log == [("start", [("activations", 3, "float32")]),
                   ("compile", (np.ndarray, int))]
    log.clear()
    # one thread, one usable core, every callback here or cached, the cache off, the
    # helper turned off, the kernel compiled here or cached: no helper
    off = [([(cold, 3)], 1), ([(warm, 2)], 2), ([(_Table("activations", None), 3)], 2)]
    for callbacks, threads in off:
        assert not _compile_ahead.prepare(kernel, args, callbacks, np.float32, threads)
    with monkeypatch.context() as m:
        m.setattr(_compile_ahead, "usable_cores", lambda: 1)
        assert not _compile_ahead.prepare(kernel, args, [(cold, 3)], np.float32, 2)
    with monkeypatch.context() as m:
        m.setenv("FASTBP_COMPILE_HELPER", "0")
        assert not _compile_ahead.prepare(kernel, args, [(cold, 3)], np.float32, 2)
    with monkeypatch.context() as m:
        m.setattr(_compile_ahead, "in_cache", lambda cache, sig, ctx: None)
        assert not _compile_ahead.prepare(kernel, args, [(cold, 3)], np.float32, 2)
    kernel.overloads[(np.ndarray, int)] = "compiled"
    assert not _compile_ahead.prepare(kernel, args, [(cold, 3)], np.float32, 2)
    assert log == []


@pytest.mark.parametrize("code", [3, None])
def test_a_failed_or_late_helper_is_stopped_and_reported(log, monkeypatch, code):
    """A helper that exits with an error reads as failed; one that has not finished
    within the grace after the kernel's compile is killed (the fit then compiles the
    callbacks itself)."""
    monkeypatch.setattr(_compile_ahead, "HELPER_GRACE", 0.01)
    log.code = code
    assert not _compile_ahead.prepare(_Kernel(log), (1,), [(_Table("losses", False), 2)],
                                      np.float64, 2)
    assert [entry[0] for entry in log] == ["start", "compile"] + ["kill"] * (code is None)


class _Callbacks:
    """A stand-in callback table that logs the callbacks compiled here."""

    __name__ = "fastbp._kernels.losses"

    def __init__(self, log):
        self.log = log

    def cached(self, code, dtype):
        return False

    def address(self, code, dtype):
        self.log.append(("here", code, np.dtype(dtype).name))


def test_the_early_helper_starts_only_on_a_first_run_with_two_cores(log, monkeypatch):
    _compile_ahead.start_early()
    assert log == [("start", [["epoch", 0, "float64"]]), ("atexit",)]
    _compile_ahead.start_early()  # one per process
    assert len(log) == 2
    cases = [("_first_run", lambda: False), ("usable_cores", lambda: 1)]
    for name, value in cases:
        with monkeypatch.context() as m:
            m.setattr(_compile_ahead, "_early", None)
            m.setattr(_compile_ahead, name, value)
            _compile_ahead.start_early()
    with monkeypatch.context() as m:  # a joblib or Dask worker's share of the cores
        m.setattr(_compile_ahead, "_early", None)
        m.setattr(_compile_ahead._threads, "budget", lambda n_threads: 1)
        _compile_ahead.start_early()
    with monkeypatch.context() as m:
        m.setattr(_compile_ahead, "_early", None)
        m.setenv("FASTBP_COMPILE_HELPER", "0")
        _compile_ahead.start_early()
    with monkeypatch.context() as m:
        m.setattr(_compile_ahead, "_early", None)
        m.setitem(_compile_ahead.JIT_OPTIONS, "cache", False)
        _compile_ahead.start_early()
    with monkeypatch.context() as m:  # saves unlocked (Windows): the two could mix them
        m.setattr(_compile_ahead, "_early", None)
        m.setattr(_compile_ahead._cache_lock, "fcntl", None)
        _compile_ahead.start_early()
    with monkeypatch.context() as m:  # numba's locators, not the kernels' (no lock)
        m.setattr(_compile_ahead, "_early", None)
        m.setattr(_compile_ahead.numba_config, "CACHE_LOCATOR_CLASSES", "x.Locator")
        _compile_ahead.start_early()
    assert len(log) == 2


@pytest.mark.usefixtures("quiet_convergence")
def test_the_early_epoch_is_the_epoch_of_every_first_fit(monkeypatch):
    """``first_epoch``'s signature is the one a real fit's first epoch compiles (one per
    dtype for every network, activation, loss and solver; dense, no dropout)."""
    from fastbp._kernels import train

    seen = []
    monkeypatch.setattr(_compile_ahead, "prepare", lambda kernel, args, *rest: seen.append(
        (kernel, [kernel.typeof_pyval(a) for a in args])) or False)
    for dtype in (np.float64, np.float32):
        X, y = np.random.default_rng(0).normal(size=(40, 3)).astype(dtype), np.arange(40) % 2
        fastbp.MLPClassifier((4, 3), max_iter=1, activation="tanh", solver="sgd").fit(X, y)
        fastbp.MLPRegressor(hidden_layer_sizes=(5,), max_iter=1, loss="huber").fit(X, X[:, 0])
        kernel, args = _compile_ahead.first_epoch(dtype)
        assert kernel is train.train_epoch
        assert seen[-2:] == [(kernel, [kernel.typeof_pyval(a) for a in args])] * 2


def test_a_fit_of_the_early_epoch_compiles_its_callbacks_here_and_waits(log):
    from fastbp._kernels import train

    kernel, args = _compile_ahead.first_epoch(np.float64)
    callbacks = _Callbacks(log)
    for code, expected in ((0, True), (3, False)):  # the early helper's exit code
        _compile_ahead._early = _Helper(log, code)
        assert _compile_ahead.prepare(kernel, args, [(callbacks, 1), (callbacks, 2)],
                                      np.float64, 2) is expected
        # the notice (the kernel compiles for this fit), no helper of its own, nothing
        # compiled here but the callbacks
        assert log == [("notice", "float64"), ("here", 1, "float64"), ("here", 2, "float64")]
        assert _compile_ahead._early is None
        log.clear()
    assert kernel is train.train_epoch


def test_a_fit_waiting_for_the_early_helper_compiles_the_calls_that_follow(log):
    """While the early helper still runs, a fit that has compiled its callbacks compiles
    the kernel calls it makes next (``ahead``) in order, instead of waiting idle; once
    the helper has finished, none; a call that fails to compile is left to its use."""
    kernel, args = _compile_ahead.first_epoch(np.float64)
    callbacks = [(_Callbacks(log), 1)]

    def failing():
        raise ValueError("no such call")

    ahead = (lambda: (_Kernel(log), (1,)), failing, lambda: (_Kernel(log), (2.0,)))
    _compile_ahead._early = _Helper(log, 0)  # runs until waited for
    assert _compile_ahead.prepare(kernel, args, callbacks, np.float64, 2, ahead)
    assert log == [("notice", "float64"), ("here", 1, "float64"),
                   ("compile", (int,)), ("compile", (float,))]
    log.clear()
    helper = _compile_ahead._early = _Helper(log, 0)
    helper.wait()  # finished before the callbacks were
    assert _compile_ahead.prepare(kernel, args, callbacks, np.float64, 2, ahead)
    assert log == [("notice", "float64"), ("here", 1, "float64")]


@pytest.mark.usefixtures("quiet_convergence")
@pytest.mark.parametrize("setting", ["serial", "scoring", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("Estimator", [fastbp.MLPClassifier, fastbp.MLPRegressor])
def test_the_calls_compiled_ahead_are_the_validation_pass_the_fit_runs(
        monkeypatch, Estimator, dtype, setting):
    """A fit with a validation set hands ``prepare`` its validation pass: made where
    ``prepare`` makes it (the fit's threads set), it is the kernel the fit then runs,
    with the same argument types, serial or parallel, with the default score or another
    one; a fit without a validation set hands nothing."""
    from fastbp import _threads
    from fastbp._kernels import parallel, train
    from fastbp._training import Validation

    passes, aheads = [], []
    call = Validation._call

    def logged(self, *a, **k):
        result = call(self, *a, **k)
        passes.append((result[1], [result[1].typeof_pyval(x) for x in result[2]]))
        return result

    def prepare(*a):  # what _meanwhile would compile, made there
        aheads.append([(k, [k.typeof_pyval(x) for x in args]) for k, args in
                       (make() for make in a[5])])
        return False

    monkeypatch.setattr(Validation, "_call", logged)
    monkeypatch.setattr(_compile_ahead, "prepare", prepare)
    expected = train.mean_loss
    if setting == "parallel":
        if _threads.budget(2) < 2:
            pytest.skip("the parallel pass needs two threads")
        monkeypatch.setattr(_threads, "PARALLEL_PASS", 1)
        expected = parallel.mean_loss_parallel
    X = np.random.default_rng(0).normal(size=(3000, 3)).astype(dtype)
    y = np.arange(3000) % 2 if Estimator is fastbp.MLPClassifier else X[:, 0]
    scoring = "loss" if setting == "scoring" else None
    Estimator(hidden_layer_sizes=(4,), max_iter=2, early_stopping=True, n_iter_no_change=5,
              scoring=scoring, n_threads=2).fit(X, y)
    ahead, ran = aheads[0], passes[-1]  # logged: the ahead call, then the fit's passes
    assert len(aheads) == 1 and ahead == [ran] and ran[0] is expected
    aheads.clear()
    Estimator(hidden_layer_sizes=(4,), max_iter=2).fit(X, y)
    assert aheads == [[]]


def test_any_other_first_kernel_call_stops_the_early_helper(log):
    """A float32 epoch, or another kernel: the early helper is stopped, and the helper
    of the callbacks runs as it would without it."""
    from fastbp._kernels import train

    _compile_ahead._early = _Helper(log, None)  # would never finish
    args = _compile_ahead.first_epoch(np.float32)[1]
    ahead = (lambda: log.append(("ahead",)),)  # not made: the kernel is not the helper's
    assert _compile_ahead._after_early(train.train_epoch, args, [], np.dtype(np.float32),
                                       ahead) is None
    assert log == [("kill",)] and _compile_ahead._early is None
    log.clear()
    _compile_ahead._early = _Helper(log, None)
    args = _compile_ahead.first_epoch(np.float64)[1]
    assert _compile_ahead.prepare(_Kernel(log), args, [(_Table("losses", False), 2)],
                                  np.float64, 2)
    assert [entry[0] for entry in log] == ["kill", "start", "compile"]
    assert _compile_ahead._early is None


def test_a_first_run_is_a_cache_without_an_index_of_the_epoch_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(_compile_ahead, "kernels_cache_folder", lambda: str(tmp_path))
    tag = "py{}{}{}".format(*sys.version_info[:2], getattr(sys, "abiflags", ""))
    (tmp_path / "train.train_epoch-9.py27.nbi").touch()  # another Python's
    (tmp_path / f"train.predict_rows-9.{tag}.nbi").touch()  # another kernel's
    assert _compile_ahead._first_run()
    (tmp_path / f"train.train_epoch-9.{tag}.nbi").touch()
    assert not _compile_ahead._first_run()
    monkeypatch.setattr(_compile_ahead, "kernels_cache_folder", lambda: None)  # no cache
    assert not _compile_ahead._first_run()
