"""Calls to compiled passes that do not copy them into the caller
(``fastbp._kernels.unlinked``): the same results and errors as a linked call, no copy
of the callee in the caller's code, and a caller that loads from numba's cache in a
later process, including one that compiled the callee again."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp._kernels import train, unlinked

ROOT = str(Path(fastbp.__file__).resolve().parents[1])

# A callee that writes into its argument, returns a tuple and can raise, called from a
# caller with a CPython entry point (cache=True, as every kernel)
CALLEE = """
from numba import njit

from fastbp._config import HELPER_JIT_OPTIONS
from fastbp._kernels.unlinked import unlinked


@unlinked
@njit(**HELPER_JIT_OPTIONS)
def shift(a, k):
    if k < 0:
        raise ValueError("a negative shift")
    s = 0.0
    for i in range(a.shape[0]):
        a[i] += k
        s += a[i]
    return s, a
"""

MODULE = """
from numba import njit

from fastbp._config import JIT_OPTIONS
from unlinked_callee import shift


@njit(**JIT_OPTIONS)
def caller(a, k):
    s, b = shift(a, k)
    return s + b[0]
"""


def _write(folder, callee=CALLEE):
    (folder / "unlinked_callee.py").write_text(callee)
    (folder / "unlinked_case.py").write_text(MODULE)


# Calls the caller; with "renumber", first compiles other functions, so that numba
# numbers the callee differently from the process that cached the caller
RUN = """
import sys
import numpy as np
from numba import njit
if "renumber" in sys.argv:
    for i in range(3):
        njit(lambda x, i=i: x + i)(1.0)
import unlinked_case as m
a = np.arange(4.0)
print(m.caller(a, 1.0), a.tolist())
print(sum(m.caller.stats.cache_hits.values()), sum(m.caller.stats.cache_misses.values()))
"""


def _run(tmp_path, *args, ok=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(RUN), *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    if not ok:
        assert proc.returncode != 0
        return proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    value, hits = proc.stdout.splitlines()[-2:]
    return value, tuple(int(h) for h in hits.split())


@pytest.fixture
def case(tmp_path, monkeypatch):
    _write(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("unlinked_case", "unlinked_callee"):
        sys.modules.pop(name, None)
    import unlinked_case

    yield tmp_path, unlinked_case
    for name in ("unlinked_case", "unlinked_callee"):
        sys.modules.pop(name, None)


def test_the_call_returns_writes_and_raises_like_a_linked_one(case):
    _, m = case
    for dtype in (np.float64, np.float32):
        a = np.arange(4, dtype=dtype)
        assert m.caller(a, 1.0) == 10.0 + 1.0
        assert a.tolist() == [1.0, 2.0, 3.0, 4.0]  # the callee wrote the caller's array
    with pytest.raises(ValueError, match="a negative shift"):
        m.caller(np.zeros(2), -1.0)


def test_the_caller_declares_the_callee_and_does_not_define_it(case):
    _, m = case
    m.caller(np.zeros(3), 1.0)
    (callee,) = sys.modules["unlinked_callee"].shift.__wrapped__.overloads.values()
    (compiled,) = m.caller.overloads.values()
    code = compiled.library.get_llvm_str()
    assert callee.fndesc.mangled_name not in code  # no copy, no reference by numba's name
    assert any(line.startswith("declare") and "fastbp.unlinked.unlinked_callee.shift." in line
               for line in code.splitlines())
    # the loader numba runs before loading the caller from its cache
    assert any(isinstance(f, unlinked._Callee) for f in compiled.reload_init)


@pytest.mark.parametrize("renumber", [False, True], ids=["callee-cached", "callee-compiled"])
def test_a_later_process_loads_the_caller_from_the_cache(tmp_path, renumber):
    """The second process loads the caller from the cache; its callee from the cache too,
    or (its cache deleted, other functions compiled first) compiled again under another
    of numba's numbers: the call still finds it."""
    _write(tmp_path)
    first = _run(tmp_path)
    assert first == ("11.0 [1.0, 2.0, 3.0, 4.0]", (0, 1))
    if renumber:
        removed = [p for p in (tmp_path / "cache").rglob("*shift*") if p.is_file()]
        assert removed  # the premise: the callee had a cache of its own
        for p in removed:
            p.unlink()
    second = _run(tmp_path, *(["renumber"] if renumber else []))
    assert second == ("11.0 [1.0, 2.0, 3.0, 4.0]", (1, 0))


def test_a_caller_cached_before_its_callee_changed_its_result_is_refused(tmp_path):
    """numba's cache checks a caller's own source file only: a caller cached against a
    callee that now returns another type fails with a clear error, not a misread result."""
    _write(tmp_path)
    _run(tmp_path)
    _write(tmp_path, CALLEE.replace("return s, a", "return s"))
    stderr = _run(tmp_path, ok=False)
    assert "RuntimeError" in stderr and "numba's cache is stale" in stderr, stderr[-2000:]


def test_the_kernels_call_the_passes_unlinked():
    """The entry kernels reach the forward pass and the minibatch's loss and gradient
    without a copy of their own: the cold-start saving cannot silently go away."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    fastbp.MLPClassifier((4,), max_iter=1).fit(X, y).predict(X)
    fastbp.MLPClassifier((4,), solver="lbfgs", max_iter=1).fit(X, y)

    def callees(dispatcher):
        return {f.key[1] for c in dispatcher.overloads.values() for f in c.reload_init
                if isinstance(f, unlinked._Callee)}

    assert {"batch_loss_grad", "step_form"} <= callees(train.train_epoch)
    assert "predict_chunk" in callees(train.predict_rows)
    assert {"batch_loss_grad", "objective"} <= callees(train.full_loss_grad)
