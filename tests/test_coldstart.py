"""A first fit in a fresh environment: the notice that fastbp compiles, and the warm-up.

The notice tests run in subprocesses with their own NUMBA_CACHE_DIR: one that compiles
(about 12 s of CPU) and one that loads the cache it left behind.
"""

import ast
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from numba import types
from numba.core.event import Event, EventStatus

import fastbp
from fastbp import _compile_notice
from fastbp._kernels import train
from fastbp._kernels.activations import LOGISTIC, RELU
from fastbp._kernels.losses import BINARY_LOG_LOSS
from fastbp._kernels.penalties import FINISH, IN_STEP

ROOT = str(Path(fastbp.__file__).resolve().parents[1])
NOTICE = "fastbp is compiling"

# A stochastic fit (compiles the training kernels), an L-BFGS fit (compiles one more
# entry kernel, in the same dtype) and a second stochastic fit, with early stopping
# (compiles the validation loss, in the same dtype), which then predicts. Prints the
# entry kernels compiled, then the kernels of paths those fits never take (sparse X,
# dropout, the other optimizers) that were compiled or loaded anyway, whether Adam's
# rule was (the premise that the listing can see a compiled rule), the activations and
# losses loaded, the finishing passes loaded after the first fit (with the signatures of
# the gradient's finishing loop by then) and after all, and the fastbp functions
# compiled for a literal argument (a constant numba typed as ``Literal[int](0)``, ...)
# and how many compiles numba reported at all (the premise that the listener saw them).
# Between those, how often the fits had numba refresh its target context, which a
# compile does and a load from the cache need not; and after the unused paths,
# predict's helpers that compiled on their own instead of inlined.
THREE_FITS = """
    import gc
    import warnings
    import numpy as np
    from numba import njit, types
    from numba.core import event
    import fastbp
    from sklearn.exceptions import ConvergenceWarning
    from fastbp._kernels import (activations, backward, dropout, forward, losses, optimizers,
                                 penalties, train)
    warnings.simplefilter("ignore", ConvergenceWarning)
    compiles, literal, frozen, builtin = [], set(), {}, set()

    class Literals(event.Listener):
        def on_start(self, ev):
            fn = ev.data["dispatcher"].py_func
            compiles.append(fn)
            # the heap frozen while fastbp compiles (fastbp._gc_pause), not for others
            who = "fastbp" if fn.__module__.startswith("fastbp") else fn.__module__
            frozen.setdefault(who, set()).add(gc.get_freeze_count() > 0)
            if (fn.__module__.startswith("fastbp")
                    and any(isinstance(a, types.Literal) for a in ev.data["args"])):
                literal.add(fn.__qualname__)
            if fn.__qualname__ in BUILTIN:
                builtin.add(fn.__qualname__)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Literals())
    from numba.core import cpu
    refreshes = []  # numba's refreshes of its target context (compiles; loads skip it)
    refresh = cpu.CPUContext.refresh
    cpu.CPUContext.refresh = lambda self: refreshes.append(1) or refresh(self)
    # numba's own min and max: each signature a compile of its own
    BUILTIN = {"ol_min.<locals>.impl", "ol_max.<locals>.impl"}
    held, depth = set(), [0, False]

    class Holds(event.Listener):  # the compiler lock, taken by compiles and cache loads
        def on_start(self, ev):
            depth[0] += 1
            if depth[0] == 1:
                depth[1] = True
            elif depth[1]:  # once per hold (the count walks the frozen objects)
                depth[1] = False  # nested: fastbp._gc_pause froze by now
                held.add(gc.get_freeze_count() > 0)

        def on_end(self, ev):
            depth[0] -= 1

    holds = Holds()
    event.register("numba:compiler_lock", holds)
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = np.arange(60) % 2
    fastbp.MLPClassifier((5,), max_iter=1).fit(X, y)
    # the finishing passes the first fit compiled (the other waits for L-BFGS, below)
    finishing = penalties.loaded(), len(penalties.finalize_gradient.signatures)
    fastbp.MLPClassifier((5,), solver="lbfgs", max_iter=2).fit(X, y)
    fastbp.MLPClassifier((5,), max_iter=1, early_stopping=True).fit(X, y).predict(X)
    print(sum(sum(d.stats.cache_misses.values())
              for k in ("train_epoch", "full_loss_grad") for d in train.dispatchers(k)))
    unused = [forward.csr_rows_dot, backward.csr_rows_tdot, dropout.apply,
              optimizers.sgd_step, optimizers.rmsprop_step, optimizers.adagrad_step]
    print(" ".join(k.__name__ for k in unused if k.signatures) or "-")
    # predict's small helpers, inlined where they are called
    inlined = {"all_finite_rows", "is_range"}
    print(" ".join(sorted({f.__name__ for f in compiles if f.__module__ == train.__name__}
                          & inlined)) or "-")
    print(len(optimizers.adam_step.signatures))
    print(" ".join(f"{code}:{dtype}" for code, dtype in activations.loaded()))
    print(" ".join(f"{code}:{dtype}" for code, dtype in losses.loaded()))
    print(" ".join(f"{code}:{dtype}" for code, dtype in finishing[0]), finishing[1],
          " ".join(f"{code}:{dtype}" for code, dtype in penalties.loaded()))
    event.unregister("numba:compiler_lock", holds)
    print(len(refreshes))
    assert njit(lambda x: np.sum(x * 2))(np.ones(3)) == 6  # the user's own compile
    print(" ".join(sorted(builtin)) or "-")
    print(frozen.get("fastbp", "-"), sorted(held), frozen["__main__"], gc.get_freeze_count())
    print(" ".join(sorted(literal)) or "-", len(compiles))
"""


def _three_fits(cache_dir):
    """Runs THREE_FITS in a fresh interpreter; returns (stderr, kernels compiled,
    unused paths' kernels compiled, inlined helpers compiled on their own, signatures
    of Adam's rule, activations loaded, losses loaded, the finishing-pass line, numba's
    refreshes of its target context, numba's reshape/min/max functions compiled, the
    heap-frozen line, the literal line)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    # every compile in this process, none in a helper (fastbp._compile_ahead)
    env.update(NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT, FASTBP_COMPILE_HELPER="0")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(THREE_FITS)], env=env,
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    (compiled, unused, alone, adam, acts, losses, finishing, refreshed, builtin, frozen,
     literal) = proc.stdout.splitlines()[-11:]
    return (proc.stderr, int(compiled), unused, alone, int(adam), acts, losses, finishing,
            int(refreshed), builtin, frozen, literal)


@pytest.fixture(scope="module")
def cold_cache(tmp_path_factory):
    """An empty numba cache filled by THREE_FITS; the stderr and compile count of that run."""
    cache = tmp_path_factory.mktemp("numba-cache")
    return cache, *_three_fits(cache)


def test_a_process_that_compiles_says_so_once(cold_cache):
    cache, stderr, compiled, *_ = cold_cache
    assert compiled == 2  # the premise: both entry kernels compiled in that process
    assert stderr.count(NOTICE) == 1, stderr
    notice = next(line for line in stderr.splitlines() if NOTICE in line)
    assert "CompileWarning" in notice and "training kernels for float64" in notice
    assert str(cache) in notice and "python -m fastbp warmup" in notice
    # it points at the caller's line, not at numba's compiler
    first_fit = textwrap.dedent(THREE_FITS).splitlines().index(
        "fastbp.MLPClassifier((5,), max_iter=1).fit(X, y)") + 1
    assert notice.startswith(f"<string>:{first_fit}:"), notice


def test_a_dense_fit_compiles_only_the_paths_it_takes(cold_cache):
    """Sparse products, dropout masks and the other optimizers' rules are typed apart
    (None), and each activation, loss and optimizer rule is a C callback of its own:
    a dense Adam fit compiles none of them, only the two activations and the loss it
    uses. Its gradient needs no finishing pass of its own (no clipping, no L1): it
    compiles only the weights' norm (``penalties.IN_STEP``), not the pass that L-BFGS,
    clipping and L1 use."""
    _, _, _, unused, _, adam, acts, used_losses, finishing, *_ = cold_cache
    assert adam >= 1  # the premise: a rule the fit uses shows as compiled
    assert unused == "-", f"compiled for a dense Adam fit without dropout: {unused}"
    # relu hidden layers and the logistic output of a binary classifier
    assert acts == f"{LOGISTIC}:float64 {RELU}:float64", acts
    assert used_losses == f"{BINARY_LOG_LOSS}:float64", used_losses
    # after the Adam fit; then, after L-BFGS's, the pass that finishes the gradient
    assert finishing == f"{IN_STEP}:float64 0 {IN_STEP}:float64 {FINISH}:float64", finishing


def test_predicts_small_helpers_compile_inlined_only(cold_cache):
    """Predict's finiteness check and row test are inlined where they are called:
    compiled on their own, a cold first predict took 4-6% longer (CONTRIBUTING, "Rules
    we keep")."""
    *_, compiles = cold_cache[-1].split()
    assert int(compiles) > 20  # the premise: the listener saw the fits compile
    assert cold_cache[4] == "-", f"compiled on their own: {cold_cache[4]}"


def test_no_function_compiles_again_for_a_constant_argument(cold_cache):
    """A constant argument between compiled functions goes through
    ``literals.runtime``: numba would otherwise compile the callee once more for the
    literal (``block_view(act, net, 1, n)`` beside ``block_view(act, net, layer, n)``)."""
    *literal, compiles = cold_cache[-1].split()
    assert int(compiles) > 20  # the premise: the listener saw the fits compile
    assert literal == ["-"], f"compiled again for a literal argument: {literal}"


def test_the_fits_compile_no_min_or_max_of_numbas(cold_cache):
    """The kernels take the min and max of two numbers through ``literals.smaller`` and
    ``larger``, LLVM code in their callers: numba's min and max are functions compiled
    once per signature (three of a cold first fit's ~30 compiles before)."""
    *_, compiles = cold_cache[-1].split()
    assert int(compiles) > 20  # the premise: the listener saw the fits compile
    assert cold_cache[-3] == "-", f"compiled numba's own: {cold_cache[-3]}"


# Python-level functions of the kernels' modules, which may use min, max and reshape
PYTHON_LEVEL = {("vmath.py", "_tanh_pade"), ("vmath.py", "add"),  # coefficients, at import
                ("vmath.py", "_map")}  # the NumPy-facing wrapper


def test_no_kernel_calls_min_max_or_reshape():
    """Every path, not only those the fits above take: the compiled code of
    ``fastbp/_kernels`` calls no builtin min or max and no ``.reshape`` (the views are
    ``forward.flat_view``, ``raveled`` and the layer views). numba lowers a reshape
    inline at each site with its helper linked in; the view helpers that used it cost a
    cold first fit about 10% of its CPU (CONTRIBUTING, "Rules we keep")."""
    found = []
    for path in sorted((Path(ROOT) / "fastbp" / "_kernels").glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef) or (path.name, fn.name) in PYTHON_LEVEL:
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                if ((isinstance(f, ast.Name) and f.id in ("min", "max"))
                        or (isinstance(f, ast.Attribute) and f.attr == "reshape")):
                    found.append(f"{path.name}:{node.lineno} in {fn.name}")
    assert not found, found


def test_the_heap_is_frozen_while_fastbp_compiles_and_only_then(cold_cache):
    """fastbp._gc_pause: every fastbp compile of the three fits ran with the heap frozen
    (the collector then skips the objects that existed before), the user's own numba
    compile did not, and nothing stays frozen afterwards."""
    assert cold_cache[-2] == "{True} [True] {False} 0", cold_cache[-2]


def test_a_process_that_loads_the_cache_says_nothing(cold_cache):
    cache = cold_cache[0]
    stderr, compiled, *_, refreshed, _, frozen, _ = _three_fits(cache)
    assert compiled == 0  # the premise: everything came from the cache
    assert NOTICE not in stderr, stderr
    # the loads left numba's compiler as it was (fastbp._cache_lock): the process that
    # compiled refreshed it, and the user's compile after the fits still works
    assert cold_cache[-4] > 0 and refreshed == 0, (cold_cache[-4], refreshed)
    # the cache loads hold numba's compiler lock too: the heap frozen while they run
    assert frozen == "- [True] {False} 0", frozen


def _compile_event(dtype, dispatcher=train.train_epoch):
    args = (types.Array(dtype, 1, "C"), types.int64)
    return Event("numba:compile", EventStatus.START,
                 data={"dispatcher": dispatcher, "args": args, "return_type": None})


def test_notice_once_per_dtype_for_fastbp_kernels_only():
    from numba import njit

    listener = _compile_notice._Listener()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listener.on_start(_compile_event(types.float32, njit(lambda a, n: n)))  # not ours
        for dtype in (types.float32, types.float32, types.float64):
            listener.on_start(_compile_event(dtype, train.predict_rows))
    assert [w.category for w in caught] == [fastbp.CompileWarning] * 2
    first, second = (str(w.message) for w in caught)
    assert "prediction kernels for float32" in first
    assert "for float64" in second


def test_notice_can_be_silenced_and_never_raises():
    for action in ("ignore", "error"):
        listener = _compile_notice._Listener()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter(action, fastbp.CompileWarning)
            listener.on_start(_compile_event(types.float64))  # "error": no exception
        assert caught == []
        assert listener.told == {"float64"}


def test_notice_without_a_cache_says_every_process_compiles():
    text = _compile_notice.message("mean_loss", "float32", None)
    assert "validation-loss kernels for float32" in text
    assert "every new process compiles" in text and "NUMBA_CACHE_DIR" in text


def test_warm_up_reports_each_kernel_group_and_the_total(capsys):
    seconds = fastbp.warm_up()
    lines = capsys.readouterr().err.strip().splitlines()
    groups = [group for group, _ in _compile_notice.GROUPS.values()]
    outcome = r"(compiled|loaded from the cache|already in memory) in \d+\.\d\d s"
    expected = [
        line
        for dtype in ("float64", "float32")
        for line in [rf"fastbp warm-up: {dtype} {what}\.\.\. {outcome}"
                     for what in ("activations", "losses")]
        + [rf"fastbp warm-up: {dtype} {group} kernels \(\w+\)\.\.\. {outcome}"
           for group in groups]
    ]
    assert len(lines) == len(expected) + 1, lines
    for pattern, line in zip(expected, lines[:-1], strict=True):
        assert re.fullmatch(pattern, line), line
    assert re.fullmatch(rf"fastbp warm-up: {seconds:.1f} s in all; numba's cache: .+",
                        lines[-1]), lines[-1]
    fastbp.warm_up(verbose=False)
    assert capsys.readouterr().err == ""
