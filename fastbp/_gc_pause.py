"""Python's cyclic garbage collector kept off the existing heap while numba compiles or
loads fastbp's kernels.

numba's typing, lowering and cache loading allocate hundreds of thousands of objects, so
CPython runs full (oldest-generation) collections during them, and each one walks the
whole heap: numba's own registries, scikit-learn, scipy, the user's data. Measured on a
cold first digits fit (fresh process, empty cache, one core): 0.6-0.7 s of its 5.7 s of
CPU in the collector; on a warm first fit (machine code loaded from the cache) 0.1 s of
0.25 s.

While the first fastbp frame in this thread holds numba's compiler lock (which numba
takes for every compile and every cache load, and announces as the
``"numba:compiler_lock"`` event), the objects that existed before are frozen
(``gc.freeze``): collections then walk only what the compile itself allocates. They are
unfrozen (``gc.unfreeze``) when the lock is released; nothing is collected differently
afterwards. Compiles started by other code than fastbp's, a disabled collector, and a
process that froze objects itself (a pre-fork server, say) are left alone.
"""

import gc
import sys
import threading

from numba.core import event

from ._compile_notice import installer

_PACKAGE = __name__.rsplit(".", 1)[0] + "."


def _called_from_fastbp():
    """Whether a fastbp frame (the kernels' callers) is on this thread's stack."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_PACKAGE):
            return True
        frame = frame.f_back
    return False


class _Listener(event.Listener):
    """Freezes the heap for the outermost compiler-lock hold of a fastbp call, per
    thread (the lock is reentrant; another thread's hold starts only once this one
    ends)."""

    def __init__(self):
        self._local = threading.local()

    def on_start(self, ev):
        local = self._local
        depth = getattr(local, "depth", 0)
        local.depth = depth + 1
        if depth == 0:
            local.froze = (gc.isenabled() and gc.get_freeze_count() == 0
                           and _called_from_fastbp())
            if local.froze:
                gc.freeze()

    def on_end(self, ev):
        local = self._local
        local.depth -= 1
        if local.depth == 0 and local.froze:
            local.froze = False
            gc.unfreeze()


install = installer("numba:compiler_lock", _Listener)
