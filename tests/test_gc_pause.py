"""fastbp._gc_pause: the heap frozen while a fastbp call holds numba's compiler lock,
and everything as it was afterwards (the end-to-end check, during a real cold fit, is
in test_coldstart)."""

import gc
import os
import subprocess
import sys

import pytest
from numba.core import event
from numba.core.compiler_lock import global_compiler_lock

from fastbp import _gc_pause

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller(module):
    """A function ``f(listener, body)`` whose frames belong to ``module``: it takes
    numba's compiler lock around ``body()`` as numba does (the start event, the acquire,
    the body, the release, the end event)."""
    source = ("def f(listener, body):\n    listener.on_start(None)\n"
              "    lock.acquire()\n    try:\n        return body()\n    finally:\n"
              "        lock.release()\n        listener.on_end(None)\n")
    namespace = {"__name__": module, "lock": global_compiler_lock._lock}
    exec(compile(source, f"<{module}>", "exec"), namespace)
    return namespace["f"]


FASTBP = _caller("fastbp._kernels.fake")
OTHER = _caller("user_code")


def _hold(caller, listener, body):
    """``body()`` inside a hold nested in another, as every compile and load runs."""
    return caller(listener, lambda: caller(listener, body))


@pytest.fixture(autouse=True)
def _unfrozen():
    assert gc.get_freeze_count() == 0  # the premise of every test here
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_a_fastbp_hold_freezes_the_heap_and_unfreezes_it():
    listener = _gc_pause._Listener()
    kept = [object() for _ in range(3)]  # the heap has objects to freeze
    seen = []

    def outer():  # the outermost hold: numba announced it before acquiring the lock
        seen.append(gc.get_freeze_count())
        return FASTBP(listener, inner)

    def inner():  # the first nested hold: frozen from here
        seen.append(gc.get_freeze_count())
        return FASTBP(listener, lambda: seen.append(gc.get_freeze_count()))

    FASTBP(listener, outer)
    assert seen[0] == 0 and seen[1] > 0 and seen[2] == seen[1]  # frozen once
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
    del kept


def test_other_code_and_a_disabled_collector_are_left_alone():
    listener = _gc_pause._Listener()
    seen = []
    _hold(OTHER, listener, lambda: seen.append(gc.get_freeze_count()))
    gc.disable()
    _hold(FASTBP, listener, lambda: seen.append(gc.get_freeze_count()))
    assert seen == [0, 0]
    assert not gc.isenabled()


def test_a_process_that_froze_objects_itself_keeps_them_frozen():
    listener = _gc_pause._Listener()
    gc.freeze()
    frozen = gc.get_freeze_count()
    seen = []
    _hold(FASTBP, listener, lambda: seen.append(gc.get_freeze_count()))
    assert seen == [frozen]
    assert gc.get_freeze_count() == frozen  # not unfrozen by fastbp


def test_an_error_in_the_hold_still_unfreezes():
    listener = _gc_pause._Listener()

    def fails():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("compile failed")

    with pytest.raises(RuntimeError, match="compile failed"):
        _hold(FASTBP, listener, fails)
    assert gc.get_freeze_count() == 0
    seen = []
    _hold(FASTBP, listener, lambda: seen.append(gc.get_freeze_count()))
    assert seen[0] > 0 and gc.get_freeze_count() == 0  # the depth was back to 0


def test_an_acquire_that_never_completed_is_forgotten():
    """numba announces a hold before acquiring the lock: an acquire interrupted while
    waiting leaves a start without an end. Nothing is frozen for it, and the thread's
    next hold still freezes and unfreezes."""
    listener = _gc_pause._Listener()
    listener.on_start(None)  # ... and no acquire, no end
    assert gc.get_freeze_count() == 0  # not frozen while (possibly) waiting
    seen = []
    _hold(FASTBP, listener, lambda: seen.append(gc.get_freeze_count()))
    assert seen[0] > 0 and gc.get_freeze_count() == 0


def test_a_hold_whose_end_was_lost_is_unfrozen_by_the_next_one():
    """An interrupt between numba's release and its end event, or another listener
    raising there, loses the end: the next hold's start unfreezes."""
    listener = _gc_pause._Listener()
    lock = global_compiler_lock._lock

    def lost_end():  # the hold of a fastbp call whose events stop at the release
        listener.on_start(None)
        lock.acquire()
        listener.on_start(None)  # nested: freezes
        lock.acquire()
        lock.release()
        lock.release()

    namespace = {"__name__": "fastbp._kernels.fake", "lost_end": lost_end}
    exec("def call():\n    lost_end()\n", namespace)
    namespace["call"]()
    assert gc.get_freeze_count() > 0  # the premise: left frozen by the lost end
    OTHER(listener, lambda: None)  # any next hold of this thread, fastbp's or not
    assert gc.get_freeze_count() == 0


def test_the_listener_is_installed_once_on_the_compiler_lock():
    listener = _gc_pause.install()  # importing fastbp installed it
    assert _gc_pause.install() is listener
    assert listener in event._registered["numba:compiler_lock"]


IMPORT = """
import gc, sys
collections = []
gc.callbacks.append(lambda phase, info: collections.append(phase) if phase == "start" else None)
{before}
try:
    import fastbp
except ImportError as error:
    print("failed:", error)
young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
print(gc.isenabled(), len(collections), young)
"""
# makes one of fastbp's modules fail to import
_BROKEN = """
class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "fastbp.preprocessing":
            raise ImportError("broken on purpose")
sys.meta_path.insert(0, Broken())
"""


@pytest.mark.parametrize("before, enabled", [
    ("", "True"),  # the collector back on after the import
    ("gc.disable()", "False"),  # left off when it was off
    (_BROKEN, "True"),  # back on when an import fails
])
def test_import_runs_without_the_collector_and_restores_it(before, enabled):
    code = IMPORT.format(before=before)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    state, collections, young = lines[-1].split()
    assert state == enabled, proc.stdout
    # with the collector on, the import ran about 430 collections; now at most the one
    # or two the interpreter's own allocations trigger around fastbp's __init__
    assert int(collections) <= 2, proc.stdout
    if enabled == "True" and before != _BROKEN:
        # the import's ~170,000 objects went to the oldest generation at once, not left
        # in the young ones (0 and 1) for their collections to walk
        assert int(young) < 10_000, proc.stdout
    assert ("failed: broken on purpose" in lines) == (before == _BROKEN), proc.stdout


def test_the_freeze_count_is_read_once_per_hold(monkeypatch):
    """``gc.get_freeze_count`` walks the frozen objects (21 ms on a first fit's heap):
    a cache load takes the lock hundreds of times inside one hold (numba's registry
    refreshes), and reading it at each of them made a warm first fit take 5 s."""
    listener = _gc_pause._Listener()
    reads = []  # (the process's own freeze: read every hold, after the stack check)
    real = gc.get_freeze_count
    monkeypatch.setattr(gc, "get_freeze_count", lambda: reads.append(1) or real())

    def many():
        for _ in range(50):
            FASTBP(listener, lambda: None)

    FASTBP(listener, many)
    assert len(reads) == 1
    assert real() == 0
