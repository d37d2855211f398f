"""A cold first fit compiles on two cores: a helper process compiles the C callbacks
(the activations, the loss and the optimizer's rule of ``_kernels.activations``,
``losses`` and ``optimizers``) into numba's on-disk cache while this process compiles the
training kernel, and then loads them from the cache.

The callbacks are called by address, so the kernel compiles without them, and they are
about two fifths of a first fit's compile (a digits fit: 3.1 s of CPU of 7.7 on the
Intel development machine; the training kernel 4.6 s). numba holds one compiler lock
per process, so a second thread would wait; a second process does not.

The helper runs only when it can gain: the fit has two threads or more
(``_threads.budget``: joblib's and Dask's workers hold one), numba's cache is on, a
callback the fit needs is neither in this process nor in the cache, and neither is the
kernel for the fit's arguments. It imports the kernels without ``fastbp/__init__``
(numba and numpy, not scikit-learn). If it fails or does not finish within
``HELPER_TIMEOUT`` seconds, this process compiles what is missing itself, as it would
without a helper. ``FASTBP_COMPILE_HELPER=0`` turns it off.
"""

import importlib
import json
import os
import subprocess
import sys
import threading

import numpy as np
from numba.core import config as numba_config

from ._kernels import activations, losses, optimizers
from ._kernels.callbacks import in_cache

# the tables a helper may be asked for, by module name
_TABLES = {module.__name__.rpartition(".")[2]: module
           for module in (activations, losses, optimizers)}
HELPER_TIMEOUT = 120.0
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the child: the package fastbp without running its __init__, then the callbacks
_BOOT = (
    "import importlib.util, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "spec = importlib.util.find_spec('fastbp')\n"
    "sys.modules['fastbp'] = importlib.util.module_from_spec(spec)\n"
    "from fastbp._compile_ahead import compile_callbacks\n"
    "compile_callbacks(sys.argv[2])\n"
)
_lock = threading.Lock()  # one helper at a time in a process


def enabled():
    """Whether ``FASTBP_COMPILE_HELPER`` allows the helper (anything but ``0``)."""
    return os.environ.get("FASTBP_COMPILE_HELPER", "1").strip() != "0"


def prepare(kernel, args, callbacks, dtype, threads):
    """Before ``kernel(*args)``: compile ``kernel`` for ``args`` here while a helper
    process compiles the callbacks ``callbacks`` (``(module, code)`` pairs of the
    tables above) for ``dtype`` arrays, when that gains (module docstring); otherwise
    do nothing and leave both to their first use. Returns whether a helper ran and
    succeeded."""
    dtype = np.dtype(dtype)
    if threads < 2 or all(module.cached(code, dtype) for module, code in callbacks):
        return False  # every call but a configuration's first in a process ends here
    if not enabled() or getattr(sys, "frozen", False) or not sys.executable:
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
            kernel.compile(sig)
        except BaseException:
            _stop(helper)
            raise
        try:
            return helper.wait(timeout=HELPER_TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            _stop(helper)
            return False
        except BaseException:
            _stop(helper)
            raise


def _start(jobs):
    """The helper process for ``jobs`` (``[module name, code, dtype name]`` lists), or
    None if it cannot start."""
    env = dict(os.environ)
    if numba_config.CACHE_DIR:  # as this process has it, set in code or by the environment
        env["NUMBA_CACHE_DIR"] = str(numba_config.CACHE_DIR)
    try:
        flags = subprocess._args_from_interpreter_flags()  # -E, -s, -I, -W as this one's
    except Exception:  # noqa: BLE001 - another Python: the defaults
        flags = []
    try:
        return subprocess.Popen(
            [sys.executable, *flags, "-c", _BOOT, _ROOT, json.dumps(jobs)], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _stop(helper):
    helper.kill()
    helper.wait()


def compile_callbacks(jobs):
    """The helper's work: compile (or load) each callback of ``jobs``, a JSON list of
    ``[module name, code, dtype name]``, into numba's cache."""
    import warnings

    warnings.simplefilter("ignore")
    for name, code, dtype in json.loads(jobs):
        module = importlib.import_module(_TABLES[name].__name__)
        module.address(int(code), np.dtype(dtype))
