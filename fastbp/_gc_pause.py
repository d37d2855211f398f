"""Python's cyclic garbage collector kept off the existing heap while numba compiles or
loads fastbp's kernels.

numba's typing, lowering and cache loading allocate hundreds of thousands of objects, so
CPython runs full (oldest-generation) collections during them, and each one walks the
whole heap: numba's own registries, scikit-learn, scipy, the user's data. Measured on a
cold first digits fit (fresh process, empty cache, one core): 0.6-0.7 s of its 5.7 s of
CPU in the collector; on a warm first fit (machine code loaded from the cache) 0.1 s of
0.25 s.

While a fastbp call holds numba's compiler lock (which numba takes for every compile
and every cache load, and announces as the ``"numba:compiler_lock"`` event), the objects
that existed before are frozen (``gc.freeze``): collections then walk only what the
compile itself allocates. The freeze starts at the first event nested in the hold (numba
announces the outermost one before acquiring the lock, while the thread may still wait
for another thread's compile; a compile or a load always takes it again inside) and ends
(``gc.unfreeze``) when the outermost hold is released. Objects young at the freeze are in
the oldest generation afterwards: collected at the next full collection. Compiles started
by other code than fastbp's, a disabled collector and a process that froze objects
itself are left alone (a freeze made by another thread during the hold is undone with
ours).
"""

import gc
import threading

from numba.core import event
from numba.core.compiler_lock import global_compiler_lock

from . import _caller
from ._compile_notice import installer


class _Listener(event.Listener):
    """Freezes at the first nested event of a hold started from a fastbp call and
    unfreezes when the hold ends. Whether an event is nested is whether this thread
    holds the lock already (numba's start comes before the acquire and its end after
    the release), not a count: a start or an end lost to an interrupt or to another
    listener's exception cannot leave the heap frozen past the next hold."""

    def __init__(self):
        self._local = threading.local()

    def on_start(self, ev):
        local = self._local
        if not global_compiler_lock.is_locked():  # outermost: about to acquire
            if getattr(local, "froze", False):  # the last hold's end never came
                local.froze = False
                gc.unfreeze()
            local.first = True
        elif getattr(local, "first", False):  # the first nested event: held now
            local.first = False  # once per hold: get_freeze_count walks a list
            if _caller.within_fastbp() and gc.isenabled() and gc.get_freeze_count() == 0:
                gc.freeze()
                local.froze = True

    def on_end(self, ev):
        local = self._local
        if getattr(local, "froze", False) and not global_compiler_lock.is_locked():
            local.froze = False  # the outermost hold is released
            gc.unfreeze()


install = installer("numba:compiler_lock", _Listener)
