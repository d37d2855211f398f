"""A cold first fit compiles its C callbacks in a helper process (``fastbp._compile_ahead``):
the fit loads them from the cache the helper filled, trains to the same weights bit for
bit, says once that it compiles, and falls back to compiling them itself when the helper
fails; the helper runs only when it can gain.

The fits run in subprocesses with their own empty NUMBA_CACHE_DIR (a cold fit: about
5-8 s of CPU each).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numba.core.caching import NullCache

import fastbp
from fastbp import _compile_ahead
from fastbp._kernels import activations

ROOT = str(Path(fastbp.__file__).resolve().parents[1])
NOTICE = "fastbp is compiling"

# One small Adam fit on two threads (relu hidden layers, a softmax output, the log
# loss), float32; prints whether a helper compiled the callbacks, how many of the four
# this process loaded from the cache, the training kernel's compiles and cache misses
# in this process, and the weights.
FIT = """
    import warnings
    import numpy as np
    import fastbp
    from fastbp import _compile_ahead
    from fastbp._kernels import activations, losses, optimizers, train
    from sklearn.exceptions import ConvergenceWarning
    warnings.simplefilter("ignore", ConvergenceWarning)
    helped = []
    prepare = _compile_ahead.prepare
    _compile_ahead.prepare = lambda *a: helped.append(prepare(*a)) or helped[-1]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5)).astype(np.float32)
    y = np.arange(90) % 3
    model = fastbp.MLPClassifier((6,), max_iter=2, random_state=0, n_threads=2).fit(X, y)
    tables = (activations, activations, losses, optimizers)
    hits = [table._TABLE.compiled(code, np.float32).cache_hits
            for table, code in zip(tables, (activations.RELU, activations.SOFTMAX,
                                            losses.LOG_LOSS, optimizers.CODES["adam"]))]
    kernel = train.train_epoch
    print(int(any(helped)), sum(hits), len(kernel.overloads),
          sum(kernel.stats.cache_misses.values()))
    print(" ".join(repr(float(w)) for w in np.concatenate([c.ravel() for c in model.coefs_])))
"""


def _fit(cache_dir, helper="1", boot=None):
    """Runs FIT in a fresh interpreter on ``cache_dir``; returns (stderr, helped, loaded
    from the cache, kernel compiles, kernel cache misses, weights line)."""
    code = textwrap.dedent(FIT)
    if boot is not None:  # the helper's script, replaced
        code = code.replace("helped = []", f"helped = []\n_compile_ahead._BOOT = {boot!r}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT, NUMBA_NUM_THREADS="2",
               FASTBP_COMPILE_HELPER=helper)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    counts, weights = proc.stdout.splitlines()[-2:]
    return (proc.stderr, *map(int, counts.split()), weights)


@pytest.fixture(scope="module")
def without_helper(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("numba-cache"), helper="0")


def test_a_cold_fit_loads_the_callbacks_a_helper_compiled(tmp_path, without_helper):
    stderr, helped, loaded, compiles, misses, weights = _fit(tmp_path)
    assert helped == 1, stderr
    assert loaded == 4  # relu, softmax, the log loss and Adam's rule, from the cache
    assert (compiles, misses) == (1, 1)  # the kernel compiled once, here
    assert stderr.count(NOTICE) == 1, stderr
    assert weights == without_helper[-1]  # the same training, bit for bit
    # the premise of the comparison: without the helper the fit compiled them itself
    assert without_helper[1:5] == (0, 0, 1, 1)
    # a second process finds everything in the cache: no helper, nothing compiled
    stderr, helped, loaded, compiles, misses, weights = _fit(tmp_path)
    assert (helped, loaded, misses) == (0, 4, 0)
    assert NOTICE not in stderr and weights == without_helper[-1]


def test_a_failing_helper_leaves_the_fit_to_compile_them(tmp_path, without_helper):
    _, helped, loaded, compiles, misses, weights = _fit(
        tmp_path, boot="import sys\nsys.exit(3)\n")
    assert (helped, loaded, compiles, misses) == (0, 0, 1, 1)
    assert weights == without_helper[-1]


def test_the_helper_imports_the_kernels_without_scikit_learn(tmp_path):
    """The helper skips ``fastbp/__init__`` (scikit-learn's import is most of a fresh
    process's start) and writes its callback into the cache it was given."""
    jobs = json.dumps([["activations", activations.TANH, "float32"]])
    code = _compile_ahead._BOOT + "print([m for m in sys.modules if 'sklearn' in m])\n"
    proc = subprocess.run([sys.executable, "-c", code, ROOT, jobs], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == "[]"
    assert list(tmp_path.rglob("activations._tanh-*.nbi"))


class _Table:
    """A stand-in callback table: ``cached`` answers ``state``."""

    def __init__(self, name, state):
        self.__name__, self.state = f"fastbp._kernels.{name}", state

    def cached(self, code, dtype):
        return self.state


class _Kernel:
    """A stand-in dispatcher that compiles nothing and counts its compiles."""

    overloads = {}
    targetctx = None
    _cache = None  # in_cache cannot tell: treated as cached

    def __init__(self):
        self.compiled = []

    def typeof_pyval(self, value):
        return type(value)

    def compile(self, sig):
        self.compiled.append(sig)


@pytest.fixture
def started(monkeypatch):
    """The helpers ``prepare`` starts, recorded instead of run; kernels count as cold."""
    jobs = []

    def start(work):
        jobs.append(work)
        return SimpleNamespace(wait=lambda timeout: 0, kill=lambda: None)

    monkeypatch.setattr(_compile_ahead, "_start", start)
    monkeypatch.setattr(_compile_ahead, "in_cache", lambda cache, sig, ctx: False)
    monkeypatch.delenv("FASTBP_COMPILE_HELPER", raising=False)
    return jobs


def test_the_helper_runs_only_when_it_can_gain(started, monkeypatch):
    cold, warm = _Table("activations", False), _Table("losses", True)
    kernel = _Kernel()
    args = (np.zeros(3), 1)
    # cold callbacks and kernel, two threads: the cold callbacks go to the helper, once
    assert _compile_ahead.prepare(kernel, args, [(cold, 3), (cold, 3), (warm, 2)],
                                  np.float32, 2)
    assert started == [[("activations", 3, "float32")]]
    assert kernel.compiled == [(np.ndarray, int)]
    # one thread, every callback here or cached, the cache off: no helper
    for callbacks, threads in (([(cold, 3)], 1), ([(warm, 2)], 2),
                               ([(_Table("activations", None), 3)], 2)):
        assert not _compile_ahead.prepare(kernel, args, callbacks, np.float32, threads)
    monkeypatch.setenv("FASTBP_COMPILE_HELPER", "0")
    assert not _compile_ahead.prepare(kernel, args, [(cold, 3)], np.float32, 2)
    monkeypatch.delenv("FASTBP_COMPILE_HELPER")
    # the kernel already compiled (or in the cache: in_cache not False): no helper
    monkeypatch.setattr(_compile_ahead, "in_cache", lambda cache, sig, ctx: None)
    assert not _compile_ahead.prepare(kernel, args, [(cold, 3)], np.float32, 2)
    assert len(started) == 1 and len(kernel.compiled) == 1


def test_the_tables_tell_what_the_cache_holds():
    """``cached`` is True for a callback this process has (its fit compiled or loaded
    relu); the probe cannot tell, and says None, for a cache that is off."""
    fastbp.MLPClassifier((3,), max_iter=1).fit(np.eye(4), [0, 1, 0, 1])
    assert activations.cached(activations.RELU, np.float64) is True
    assert _compile_ahead.in_cache(NullCache(), (), None) is None
