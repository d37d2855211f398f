"""A cold first fit compiles on two cores: a helper process compiles the C callbacks
(the activations, the loss and the optimizer's rule of ``_kernels.activations``,
``losses`` and ``optimizers``) into numba's on-disk cache while this process compiles the
training kernel (the epoch's, or L-BFGS's objective), and then loads them from the
cache (``Trainer._bind``; a first predict in a fresh process does not use it).

The callbacks are called by address, so the kernel compiles without them, and they are
about two fifths of a first fit's compile (a digits fit: 3.1 s of CPU of 7.7 on the
Intel development machine; the training kernel 4.6 s). numba holds one compiler lock
per process, so a second thread would wait; a second process does not.

The helper runs only when it can gain: the fit has two threads or more
(``_threads.budget``: joblib's workers hold one) on two usable cores or more, numba's
cache is on, a callback the fit needs is neither in this process nor in the cache, and
neither is the kernel for the fit's arguments. It imports the kernels without
``fastbp/__init__`` (numba, numpy and scipy's BLAS, not scikit-learn), on this
process's ``sys.path``. If it fails, cannot start, or has not finished ``HELPER_GRACE``
seconds (or as long as the kernel's compile took, if longer) after this process's
compile, this process compiles what is missing itself, as it would without a helper.
``FASTBP_COMPILE_HELPER=0`` turns it off (and is set for the helper itself).

The two processes compile disjoint functions, so that neither does the other's work:
the callbacks and their callees live in ``activations``, ``losses``, ``optimizers`` and
``vmath``, which the kernels' modules reach only by address (``tests/test_compile_ahead.py``
checks both sides). Saving into the cache at once is safe either way (``_cache_lock``).
"""

import json
import multiprocessing.spawn
import os
import subprocess
import sys
import threading
import time

import numpy as np
from numba.core import config as numba_config

from ._kernels import activations, losses, optimizers
from ._kernels.callbacks import in_cache
from ._threads import usable_cores

# the tables a helper may be asked for, by module name
_TABLES = {module.__name__.rpartition(".")[2]: module
           for module in (activations, losses, optimizers)}
HELPER_GRACE = 10.0
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# the child: this process's sys.path (set before any import), the package fastbp from
# its files without running its __init__, then the callbacks
_BOOT = (
    "import sys\n"
    "sys.path[:] = sys.argv[2].split('\\n')\n"
    "import importlib.util, os\n"
    "spec = importlib.util.spec_from_file_location(\n"
    "    'fastbp', os.path.join(sys.argv[1], '__init__.py'),\n"
    "    submodule_search_locations=[sys.argv[1]])\n"
    "sys.modules['fastbp'] = importlib.util.module_from_spec(spec)\n"
    "from fastbp._compile_ahead import compile_callbacks\n"
    "compile_callbacks(sys.argv[3])\n"
)
_lock = threading.Lock()  # one helper at a time in a process
if hasattr(os, "register_at_fork"):  # a fork while another thread holds it
    os.register_at_fork(after_in_child=lambda: globals().update(_lock=threading.Lock()))


def enabled():
    """Whether ``FASTBP_COMPILE_HELPER`` allows the helper (anything but ``0``)."""
    return os.environ.get("FASTBP_COMPILE_HELPER", "1").strip() != "0"


def prepare(kernel, args, callbacks, dtype, threads):
    """Before ``kernel(*args)``: compile ``kernel`` for ``args`` here while a helper
    process compiles the callbacks ``callbacks`` (``(module, code)`` pairs of the
    tables above) for ``dtype`` arrays, when that gains (module docstring); otherwise
    do nothing and leave both to their first use. Returns whether a helper ran and
    exited cleanly."""
    dtype = np.dtype(dtype)
    if threads < 2 or all(module.cached(code, dtype) for module, code in callbacks):
        return False  # every call but a configuration's first in a process ends here
    if (not enabled() or usable_cores() < 2 or getattr(sys, "frozen", False)
            or not sys.executable):
        return False
    with _lock:
        cold = [(module, code) for module, code in dict.fromkeys(callbacks)
                if module.cached(code, dtype) is False]
        if not cold:
            return False
        sig = tuple(kernel.typeof_pyval(a) for a in args)
        if sig in kernel.overloads or in_cache(kernel._cache, sig, kernel.targetctx) is not False:
            return False
        helper = _start([(module.__name__.rpartition(".")[2], code, dtype.name)
                         for module, code in cold])
        if helper is None:
            return False
        try:
            began = time.perf_counter()
            kernel.compile(sig)
            grace = max(HELPER_GRACE, time.perf_counter() - began)
            return helper.wait(timeout=grace) == 0
        except subprocess.TimeoutExpired:
            return False
        finally:
            if helper.poll() is None:  # stopped, not left running
                helper.kill()
                helper.wait()


def _start(jobs):
    """The helper process for ``jobs`` (``[module name, code, dtype name]`` lists), or
    None if it cannot start."""
    env = dict(os.environ, FASTBP_COMPILE_HELPER="0")  # no helper of its own
    if numba_config.CACHE_DIR:  # as this process has it, set in code or by the environment
        env["NUMBA_CACHE_DIR"] = str(numba_config.CACHE_DIR)
    try:
        flags = subprocess._args_from_interpreter_flags()  # -E, -s, -I, -W as this one's
        command = [multiprocessing.spawn.get_executable(), *flags, "-c", _BOOT, _PACKAGE,
                   "\n".join(sys.path), json.dumps(jobs)]
        return subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except Exception:  # noqa: BLE001 - no helper: the fit compiles them itself
        return None


def compile_callbacks(jobs):
    """The helper's work: compile (or load) each callback of ``jobs``, a JSON list of
    ``[module name, code, dtype name]``, into numba's cache."""
    import warnings

    warnings.simplefilter("ignore")
    for name, code, dtype in json.loads(jobs):
        _TABLES[name].address(int(code), np.dtype(dtype))
