"""Calls to compiled passes that do not copy them into the caller
(``fastbp._kernels.unlinked``): the same results and errors as a linked call, no copy
of the callee in the caller's code, and a caller that loads from numba's cache in a
later process, including one that compiled the callee again."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import _config
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
    r = shift(a, k)
    return r[0] + r[1][0]
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


def _python(tmp_path, code, *args):
    """``code`` in a fresh interpreter importing from ``tmp_path``, with its numba cache
    in ``tmp_path / "cache"``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]),
               FASTBP_COMPILE_HELPER="0")  # no first-run helper beside it
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path))


def _run(tmp_path, *args, ok=True):
    proc = _python(tmp_path, textwrap.dedent(RUN), *args)
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


@pytest.mark.parametrize("change", ["result-type", "linked"])
def test_a_caller_cached_before_its_callee_changed_compiles_again(tmp_path, change):
    """numba's cache checks a caller's own source file only. A caller cached against a
    callee that now returns another type, or is no longer unlinked, is a cache miss:
    compiled again, it gives the new code's result (never a misread one, or a crash)."""
    _write(tmp_path)
    assert _run(tmp_path)[1] == (0, 1)
    if change == "result-type":
        callee = CALLEE.replace("return s, a", "return s, a, 1.0")
    else:
        callee = CALLEE.replace("@unlinked\n", "")
    _write(tmp_path, callee)
    assert _run(tmp_path) == ("11.0 [1.0, 2.0, 3.0, 4.0]", (0, 1))
    assert _run(tmp_path)[1] == (1, 0)  # and cached again


def test_a_module_imported_again_binds_its_own_callee(case):
    """A fresh copy of a callee's module (importlib.reload, a test's re-import): callers
    compiled from then on call the new copy, not the code bound for the old one."""
    tmp_path, m = case
    assert m.caller(np.zeros(2), 1.0) == 3.0
    (tmp_path / "unlinked_callee.py").write_text(CALLEE.replace("a[i] += k", "a[i] += 2 * k"))
    (tmp_path / "unlinked_case.py").write_text(MODULE.replace("def caller", "def caller2"))
    for name in ("unlinked_case", "unlinked_callee"):
        sys.modules.pop(name, None)
    import unlinked_case

    assert unlinked_case.caller2(np.zeros(2), 1.0) == 6.0


CALLBACK = """
import sys
import numpy as np
from numba import carray, cfunc, types
from fastbp._kernels.callbacks import CallbackTable
from fastbp._kernels.unlinked import calls_unlinked
from unlinked_callee import shift


def body(p, n):
    shift(carray(p, n), 1.0)


table = CallbackTable({0: body}, lambda t: types.void(types.CPointer(t), types.intp))
try:
    table.address(0, np.float64)
except TypeError as error:
    print("refused:", error)
else:
    print("made")


def body2(p, n):
    shift(carray(p, n), 1.0)


# made directly (no table): cached by the first process, loaded by the second
direct = cfunc(types.void(types.CPointer(types.float64), types.intp), cache=True)(body2)
print("seen:", calls_unlinked(direct._library), direct.cache_hits)
"""


def test_a_c_callback_may_not_call_an_unlinked_pass(tmp_path):
    """numba caches no ``reload_init`` for a cfunc: loaded in another process, its call
    would find no callee (a crash). The callback table refuses to make one, and the
    check sees the call in a callback compiled or loaded from the cache."""
    _write(tmp_path)
    (tmp_path / "unlinked_callback.py").write_text(CALLBACK)
    for hits in (0, 1):
        proc = _python(tmp_path, "import unlinked_callback")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "refused:" in proc.stdout and "calls an unlinked pass" in proc.stdout
        # seen in the machine code too when the callback comes from the cache
        assert f"seen: True {hits}" in proc.stdout, proc.stdout


def test_every_kernel_file_stamps_every_cached_kernel(tmp_path):
    """The kernels' cache stamp covers all their files and the compile flags' module: a
    kernel cached before any of them changed is stale (it may hold copies of helpers
    from the others, compiled with other flags)."""
    for name in ("a.py", "b.py", "flags.py"):
        (tmp_path / name).write_text(f"# {name}\n")
    (tmp_path / "notes.txt").write_text("not a source")

    def stamp():
        return _config.kernels_stamp(str(tmp_path), extra=(str(tmp_path / "flags.py"),))

    first = stamp()
    (tmp_path / "notes.txt").write_text("still not a source")
    assert stamp() == first
    (tmp_path / "b.py").write_text("# b.py, edited\n")
    second = stamp()
    assert second != first
    (tmp_path / "flags.py").write_text("# flags.py, edited\n")
    assert stamp() != second
    if not _config.JIT_OPTIONS["cache"]:
        pytest.skip("numba's cache is off (read-only install)")
    # the kernels' caches use it, as this process first saw the files
    stamped = train.train_epoch._cache._cache_file._source_stamp
    assert stamped[0] == _config._first_kernels_stamp()


UNLINKED = {"forward": ["forward_batch", "forward_layers"],
            "backward": ["column_sums", "multiply"],
            "train": ["batch_loss_grad", "step_form", "objective", "chunk_loss",
                      "predict_chunk"],
            "blas": ["product"]}


def test_the_kernels_call_the_passes_unlinked():
    """The passes are unlinked, and the entry kernels reach them without a copy of their
    own: the cold-start saving cannot silently go away."""
    for module, names in UNLINKED.items():
        mod = importlib.import_module(f"fastbp._kernels.{module}")
        for name in names:
            wrapped = getattr(getattr(mod, name), "__wrapped__", None)
            assert unlinked._DISPATCHERS.get((mod.__name__, name)) is wrapped, name
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    fastbp.MLPClassifier((4,), max_iter=1).fit(X, y).predict(X)
    fastbp.MLPClassifier((4,), solver="lbfgs", max_iter=1).fit(X, y)

    def callees(dispatcher):
        return {f.key[1] for c in dispatcher.overloads.values() for f in c.reload_init
                if isinstance(f, unlinked._Callee)}

    assert {"batch_loss_grad", "step_form", "forward_batch"} <= callees(train.train_epoch)
    assert "predict_chunk" in callees(train.predict_rows)
    assert {"batch_loss_grad", "objective"} <= callees(train.full_loss_grad)
