"""Kernels compiled as C callbacks on first use and called by address: one per (code,
dtype), so that a fit compiles only the variants it runs (``activations``, ``losses``,
the optimizer rules in ``optimizers``, the finishing passes in ``penalties``). numba
compiles a ``cfunc`` when it is made; a table makes it the first time its address is
asked for, or loads it from numba's cache.
"""

import threading

import numpy as np
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.core.ccallback import CFunc
from numba.core.sigutils import normalize_signature

from .._config import JIT_OPTIONS
from .unlinked import calls_unlinked

# cfunc takes numba's compile options but not nogil (a C callback holds no GIL), and it
# makes the C wrapper that the other kernels go without
CFUNC_OPTIONS = {k: v for k, v in JIT_OPTIONS.items() if k not in ("nogil", "no_cfunc_wrapper")}


class CallbackTable:
    """The C callbacks of ``functions`` (code -> Python function of the C signature
    ``signature(numba float type)``) for float64 and float32 arrays, compiled or loaded
    from the cache on first use in this process; safe to ask from several threads."""

    def __init__(self, functions, signature):
        self.functions = functions
        self.signatures = {np.dtype(np.float64): signature(types.float64),
                           np.dtype(np.float32): signature(types.float32)}
        self._compiled = {}
        self._lock = threading.Lock()

    def compiled(self, code, dtype):
        """The callback of ``code`` for ``dtype`` arrays."""
        key = (code, np.dtype(dtype))
        fn = self._compiled.get(key)
        if fn is None:
            with self._lock:
                fn = self._compiled.get(key)
                if fn is None:
                    fn = cfunc(self.signatures[key[1]], **CFUNC_OPTIONS)(self.functions[code])
                    if calls_unlinked(fn._library):
                        # numba caches no reload_init for a cfunc: loaded in another
                        # process, its call would find no callee (a crash)
                        fn._cache.flush()
                        raise TypeError(f"the C callback {fn.__name__} calls an unlinked "
                                        "pass (_kernels.unlinked): callbacks must link it")
                    self._compiled[key] = fn
        return fn

    def cached(self, code, dtype):
        """Whether the callback of ``code`` for ``dtype`` arrays is in this process or
        in numba's on-disk cache (so that ``compiled`` loads it instead of compiling):
        True, False, or None when the cache is off or cannot be read."""
        key = (code, np.dtype(dtype))
        if key in self._compiled:
            return True
        if not CFUNC_OPTIONS.get("cache"):
            return None
        options = {k: v for k, v in CFUNC_OPTIONS.items() if k != "cache"}
        try:  # what cfunc(cache=True) makes, before it compiles or loads
            fn = CFunc(self.functions[code], normalize_signature(self.signatures[key[1]]),
                       {}, options)
            fn.enable_caching()
            return in_cache(fn._cache, fn._sig, fn._targetdescr.target_context)
        except Exception:  # noqa: BLE001 - another numba: cannot tell
            return None

    def address(self, code, dtype):
        """The address the kernels call ``code`` at, for ``dtype`` arrays."""
        return self.compiled(code, dtype).address

    def loaded(self):
        """``(code, dtype name)`` of every callback compiled or loaded in this process."""
        return sorted((code, dtype.name) for code, dtype in list(self._compiled))

    def warm(self, dtype):
        """Compile (or load) every callback for ``dtype``: ``(compiled, loaded)``, how
        many of those not yet in this process were compiled and loaded from the cache."""
        dtype = np.dtype(dtype)
        fresh = [code for code in self.functions if (code, dtype) not in self._compiled]
        hits = sum(self.compiled(code, dtype).cache_hits for code in fresh)
        return len(fresh) - hits, hits


def in_cache(cache, sig, context):
    """Whether numba's on-disk ``cache`` (a dispatcher's or a cfunc's ``_cache``) holds
    machine code for ``sig`` made with ``context``'s code generator, read from its index
    without loading the code; None when it cannot tell (caching off, another numba)."""
    try:
        index = cache._cache_file._load_index()
        return cache._index_key(sig, context.codegen()) in index
    except Exception:  # noqa: BLE001 - a probe: any failure means "cannot tell"
        return None


def call_at(context, builder, c_signature, address, values, value_types):
    """Lower a call of the C callback of numba signature ``c_signature`` (``void(...)``,
    the one the table compiled it with) at ``address``: ``values``, of numba types
    ``value_types``, are cast to its argument types (pointers pass as they are)."""
    args = [context.cast(builder, value, ty, c_ty)
            for value, ty, c_ty in zip(values, value_types, c_signature.args, strict=True)]
    fnty = ir.FunctionType(ir.VoidType(), [context.get_value_type(a) for a in c_signature.args])
    builder.call(builder.inttoptr(address, fnty.as_pointer()), args)


def call_for_results(context, builder, c_signature, address, values, value_types, n):
    """``call_at`` of a callback whose last argument points to ``n`` float64 results,
    written by it (``values`` and ``value_types`` are the others): a buffer for them on
    the caller's stack, and their values after the call."""
    f8 = types.float64
    out = cgutils.alloca_once(builder, context.get_value_type(f8), size=n)
    call_at(context, builder, c_signature, address, [*values, out],
            [*value_types, c_signature.args[-1]])
    return [builder.load(builder.gep(out, [context.get_constant(types.intp, i)]))
            for i in range(n)]
