"""Calls between compiled functions that do not copy the callee into the caller.

numba compiles a function called from another one into a library of its own, then links
a copy of that library into the caller's LLVM module, where LLVM optimises it once more
and emits its machine code once more. The forward pass was so optimised and emitted in
its own library, in the epoch, in prediction, in the validation loss and in L-BFGS's
loss, and again in each of their parallel twins: every kernel that reached it paid for it.

``unlinked(dispatcher)`` gives a function that compiled code calls like the dispatcher
(same arguments, result and exceptions) but that only declares the callee: the call goes
to the callee's compiled code, already in the process. LLVM can no longer inline it, so
it is for whole passes (called once per layer or per minibatch), never for helpers
inside a loop.

The declared name is a stable one (``_Callee.symbol``: the callee and its signature),
not numba's own, which numbers each function in the order a process compiles them: a
caller compiled in one process and loaded from numba's cache in another would name a
callee that the other process numbered differently. The name is bound to the callee's
address in this process (``llvmlite.binding.add_symbol``) before any caller's machine
code is finalised: while compiling, by the call's code generation; when a caller comes
from the cache, by its ``reload_init``, which numba runs before it loads the caller's
machine code.

A cached caller whose callee cannot be bound as it was compiled (the callee gone, no
longer unlinked, or returning another type) is a cache miss: numba compiles the caller
again (``_rebound``). The kernels' cache stamp covers all their files and the flags'
module (``fastbp._config.kernels_stamp``), so a cached kernel never pairs an old copy of
a linked helper with a new pass.

Positional arguments only. A ``numba.cfunc`` must not call an unlinked pass: numba does
not keep a cfunc's ``reload_init`` in its cache (``callbacks.CallbackTable`` refuses).

Measured (two trees' cold processes together on one core, CPU, empty caches): a first
digits fit 0.83-0.89 of the compile before, then predict 0.61-0.69, early stopping
0.46-0.59, L-BFGS 0.28-0.35; the epochs as fast (CONTRIBUTING, "Rules we keep").
"""

import hashlib
import importlib
import threading

import llvmlite.binding as llvm
from numba import types
from numba.core import cgutils, imputils
from numba.core import config as numba_config
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic

# (module, qualified name) -> the dispatcher behind an ``unlinked`` function
_DISPATCHERS = {}
_BOUND = {}  # symbol bound in this process -> its (module, qualified name)
_LOCK = threading.Lock()
_PREFIX = "fastbp.unlinked."


class StaleCallee(OSError):
    """A cached caller's callee cannot be bound as it was compiled. An OSError: numba
    takes it, raised while it reads a cache entry, for a cache miss."""


class _Callee:
    """The callee ``key`` compiled for ``signature``, returning ``restype``: ``bind()``
    compiles it (or loads it from the cache) and binds ``symbol`` to its machine code.
    Picklable, and run by numba before it loads a caller from the cache
    (``reload_init``)."""

    def __init__(self, key, signature, restype):
        self.key, self.signature, self.restype = key, signature, restype
        digest = hashlib.sha256(repr((key, signature, restype)).encode()).hexdigest()[:24]
        self.symbol = f"{_PREFIX}{key[0]}.{key[1]}.{digest}"

    def bind(self, dispatcher=None):
        """Bind ``symbol`` to the callee's machine code (``dispatcher``'s, else the one
        registered under ``key``); a no-op when bound already."""
        if self.symbol in _BOUND:
            return
        if dispatcher is None:
            importlib.import_module(self.key[0])  # registers the callee's dispatcher
            dispatcher = _DISPATCHERS[self.key]
        dispatcher.compile(self.signature)
        compiled = dispatcher.overloads[self.signature]
        if compiled.signature.return_type != self.restype:
            raise StaleCallee(f"{self.key[1]} returns {compiled.signature.return_type}, "
                              f"not {self.restype}")
        address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
        if not address:
            raise RuntimeError(f"no machine code for {self.key[1]}{self.signature}")
        with _LOCK:
            llvm.add_symbol(self.symbol, address)
            _BOUND[self.symbol] = self.key

    __call__ = bind

    def __eq__(self, other):
        return isinstance(other, _Callee) and self.symbol == other.symbol

    def __hash__(self):
        return hash(self.symbol)

    def __reduce__(self):
        return _rebound, (self.key, self.signature, self.restype)


def _rebound(key, signature, restype):
    """A ``_Callee`` read from numba's cache, bound at once: any failure to bind it as the
    caller was compiled (the callee's module, name or result type changed) is a
    ``StaleCallee``, which numba's cache reader takes for a miss."""
    callee = _Callee(key, signature, restype)
    try:
        callee.bind()
    except Exception as error:
        raise StaleCallee(f"a cached caller of {key[1]}: {error!r}") from error
    return callee


def calls_unlinked(library):
    """Whether the numba code library ``library`` calls an unlinked pass: a function its
    LLVM module declares (the module compiled, or the one numba's cache keeps for
    linking; a cfunc's cache keeps no ``reload_init`` to read instead)."""
    for name in ("_final_module", "_shared_module"):
        module = getattr(library, name, None)
        if module is not None and any(f.name.startswith(_PREFIX) for f in module.functions):
            return True
    return False


def unlinked(dispatcher):
    """A function for compiled code that calls ``dispatcher``'s compiled code without
    linking it into the caller (see the module docstring), with positional arguments;
    literal arguments are passed as plain values, as ``literals.runtime`` would.
    ``dispatcher`` itself when numba does not compile (``NUMBA_DISABLE_JIT``)."""
    if numba_config.DISABLE_JIT:
        return dispatcher
    if not isinstance(dispatcher, Dispatcher):
        raise TypeError(f"unlinked takes a numba dispatcher (@unlinked above @njit), "
                        f"not {dispatcher!r}")
    key = (dispatcher.py_func.__module__, dispatcher.py_func.__qualname__)
    if "<locals>" in key[1]:
        raise ValueError(f"unlinked needs a module-level function, not {key[1]}: the "
                         "symbol names it across processes")
    with _LOCK:
        if _DISPATCHERS.get(key, dispatcher) is not dispatcher:
            # the module imported again (importlib.reload, a test's fresh copy): its
            # callers compiled from now on call the new dispatcher
            for symbol in [s for s, k in _BOUND.items() if k == key]:
                del _BOUND[symbol]
        _DISPATCHERS[key] = dispatcher

    @intrinsic
    def call(typingctx, *args):
        signature = tuple(types.unliteral(a) for a in args)
        dispatcher.compile(signature)
        compiled = dispatcher.overloads[signature]
        fndesc, restype = compiled.fndesc, compiled.signature.return_type
        callee = _Callee(key, signature, restype)

        def codegen(context, builder, sig, packed):
            callee.bind(dispatcher)
            context.active_code_library._reload_init.add(callee)
            values = [context.cast(builder, v, a, b) for v, a, b in zip(
                cgutils.unpack_tuple(builder, packed[0], len(args)), args, signature,
                strict=True)]
            fnty = context.call_conv.get_function_type(fndesc.restype, fndesc.argtypes)
            fn = cgutils.get_or_insert_function(builder.module, fnty, callee.symbol)
            context.call_conv.decorate_function(fn, fndesc.args, fndesc.argtypes,
                                                noalias=fndesc.noalias)
            status, result = context.call_conv.call_function(
                builder, fn, fndesc.restype, fndesc.argtypes, values)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            result = imputils.fix_returning_optional(context, builder, sig, status, result)
            return imputils.impl_ret_new_ref(context, builder, fndesc.restype, result)

        return restype(types.StarArgTuple.from_types(args)), codegen

    call.__doc__ = dispatcher.py_func.__doc__
    call.__wrapped__ = dispatcher
    return call
