"""A cold first fit compiles on two cores: a helper process compiles the C callbacks
(the activations, the loss, the optimizer's rule and the gradient's finishing pass of
``_kernels.activations``, ``losses``, ``optimizers`` and ``penalties``) into numba's
on-disk cache while this process compiles the training kernel (the epoch's, or
L-BFGS's objective), and then loads them from the cache (``Trainer._bind``; a first
predict in a fresh process does not use it).

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

The two processes compile disjoint functions, so that neither does the other's work
(but for the calls a fit compiles ahead, below, which share callees with the epoch's):
the callbacks and their callees live in ``activations``, ``losses``, ``optimizers``,
``penalties`` and ``vmath``, which the kernels' modules reach only by address
(``tests/test_compile_ahead.py`` checks both sides). Saving into the cache at once is
safe either way where ``_cache_lock`` locks (POSIX).

The very first fit on a machine starts earlier: ``import fastbp``, finding no training
kernel at all in the cache (and the cache on, two usable cores, a thread budget of two),
starts a helper (``start_early``) that compiles the kernel of a float64 epoch on dense
input (one signature for every network, activation, loss and optimizer) while this
process imports scikit-learn (also for a fit asked to use one thread: the helper is
gone before the fit runs). When the first fit is such an epoch, ``prepare`` says the
compile notice, compiles the callbacks here and then waits for that helper; while it
still runs, the fit compiles the kernel calls that follow its first epoch (the
validation pass, when the fit has a validation set: early stopping's or a given one),
which it would otherwise compile after that epoch with the other core idle. Any other
first training kernel call (another epoch, L-BFGS's objective) stops the helper and
goes on as above. A first predict or validation loss leaves it running: the saves of
two processes into one cache are kept apart by ``_cache_lock``, which is why it needs
``fcntl``. It is stopped at exit too.
"""

import atexit
import glob
import importlib
import json
import multiprocessing.spawn
import os
import subprocess
import sys
import threading
import time
import types

import numpy as np
from numba.core import config as numba_config

from . import _cache_lock, _compile_notice, _threads
from ._config import JIT_OPTIONS, kernels_cache_folder
from ._kernels.callbacks import in_cache
from ._threads import usable_cores

# the modules of the callback tables a helper may be asked for (imported where used:
# ``start_early`` runs before the kernels' modules are imported)
_TABLES = ("activations", "losses", "optimizers", "penalties")
HELPER_GRACE = 10.0
EARLY_LIMIT = 120.0  # the longest a fit waits for the early helper
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# the child: this process's sys.path (set before any import), the package fastbp from
# its files without running its __init__, then its jobs
_BOOT = (
    "import sys\n"
    "sys.path[:] = sys.argv[2].split('\\n')\n"
    "import importlib.util, os\n"
    "spec = importlib.util.spec_from_file_location(\n"
    "    'fastbp', os.path.join(sys.argv[1], '__init__.py'),\n"
    "    submodule_search_locations=[sys.argv[1]])\n"
    "sys.modules['fastbp'] = importlib.util.module_from_spec(spec)\n"
    "from fastbp._compile_ahead import run_jobs\n"
    "run_jobs(sys.argv[3])\n"
    "os._exit(0)\n"  # the cache is written: skip the interpreter's teardown (0.5 s)
)
_lock = threading.Lock()  # one helper at a time in a process
_early = None  # the helper ``start_early`` started, until a first fit or the exit stops it
_early_began = 0.0  # when (time.perf_counter())
if hasattr(os, "register_at_fork"):  # a fork while another thread holds the lock; the
    # early helper is its parent's to wait for or stop
    os.register_at_fork(
        after_in_child=lambda: globals().update(_lock=threading.Lock(), _early=None))


def enabled():
    """Whether ``FASTBP_COMPILE_HELPER`` allows the helper (anything but ``0``)."""
    return os.environ.get("FASTBP_COMPILE_HELPER", "1").strip() != "0"


def prepare(kernel, args, callbacks, dtype, threads, ahead=()):
    """Before ``kernel(*args)``: compile ``kernel`` for ``args`` here while a helper
    process compiles the callbacks ``callbacks`` (``(module, code)`` pairs of the
    tables above) for ``dtype`` arrays, when that gains (module docstring); otherwise
    do nothing and leave both to their first use. While the early helper runs, use it
    instead if it compiles this kernel call's signature (and meanwhile compile the
    kernel calls ``ahead`` makes: zero-argument callables, each returning a ``(kernel,
    arguments)`` pair the process calls soon after this one), else stop it first.
    Returns whether a helper ran and exited cleanly."""
    dtype = np.dtype(dtype)
    if _early is not None:
        helped = _after_early(kernel, args, callbacks, dtype, ahead)
        if helped is not None:
            return helped
    if threads < 2 or all(module.cached(code, dtype) for module, code in callbacks):
        return False  # every call but a configuration's first in a process ends here
    if not _can_start():
        return False
    with _lock:
        cold = [(module, code) for module, code in dict.fromkeys(callbacks)
                if module.cached(code, dtype) is False]
        if not cold:
            return False
        sig = _signature(kernel, args)
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
            _stop(helper)


def _signature(kernel, args):
    """The argument types ``kernel`` compiles ``kernel(*args)`` for."""
    return tuple(kernel.typeof_pyval(a) for a in args)


def _stop(helper):
    """Stop ``helper`` if it still runs (never left running)."""
    if helper is not None and helper.poll() is None:
        helper.kill()
        helper.wait()


def _take_early():
    """The early helper, now this caller's to wait for or stop (None: no other's)."""
    global _early
    with _lock:
        helper, _early = _early, None
    return helper


def _can_start():
    return (enabled() and usable_cores() >= 2 and not getattr(sys, "frozen", False)
            and bool(sys.executable))


def start_early():
    """At import: when numba's cache holds no training kernel at all (a first run), the
    cache is on and its saves are locked (``_cache_lock.works``), and the process may use
    two cores, start the helper that compiles the float64 epoch kernel (module
    docstring)."""
    global _early, _early_began
    if (_early is not None or not JIT_OPTIONS.get("cache")
            or numba_config.CACHE_LOCATOR_CLASSES  # numba's locators, not the kernels'
            or not _can_start() or not _first_run()
            or not _cache_lock.works(kernels_cache_folder())
            or _threads.budget(None) < 2):  # a joblib or Dask worker's share, or a limit
        return  # set in the environment
    _early_began = time.perf_counter()
    _early = _start([["epoch", 0, "float64"]])
    if _early is not None:
        atexit.register(_stop_early)


def _first_run():
    """Whether numba's cache holds no training kernel at all, of any signature: the
    kernels' cache folder has no index file of ``train_epoch`` (read without importing
    the kernels, which takes this process a third of a second)."""
    folder = kernels_cache_folder()
    index = "train.train_epoch-*.py{}{}{}.nbi".format(*sys.version_info[:2],
                                                      getattr(sys, "abiflags", ""))
    return folder is not None and not glob.glob(os.path.join(glob.escape(folder), index))


def _stop_early():
    _stop(_take_early())


def first_epoch(dtype):
    """``(kernel, arguments)`` of an epoch of a small network on dense ``dtype`` data
    without dropout: the serial training kernel's one signature for that dtype."""
    from ._kernels import losses, train
    from ._layout import Layout
    from ._network import Network
    from ._training import KernelData, Optimizer, Trainer
    from ._workspace import kernel_rows, no_dropout

    dtype = np.dtype(dtype)
    units = (2, 2, 2)
    n_params = Layout(units).n_params
    network = Network(units, losses.LOG_LOSS, np.zeros(n_params, dtype=dtype))
    data = KernelData(np.zeros((2, 2), dtype), np.zeros((2, 2), dtype), None, dtype)
    trainer = Trainer()
    trainer.optimizer = Optimizer("adam", n_params, dtype, 1e-3)
    hyper = types.SimpleNamespace(hp=np.zeros(train.N_HP),
                                  ihp=np.zeros(train.N_IHP, dtype=np.int64))
    engine, _, kernel, args = trainer.epoch_call(
        network, data, kernel_rows(2), 2, hyper, network.act_codes(["relu"]), no_dropout())
    assert engine == "serial", engine
    return kernel, args


def _after_early(kernel, args, callbacks, dtype, ahead=()):
    """``prepare`` while the early helper runs. When ``kernel(*args)`` is the epoch it
    compiles: compile the callbacks here, then ``ahead``'s calls while it still runs
    (``_meanwhile``), wait for it, and return whether it finished cleanly. Otherwise
    stop it and return None."""
    from ._kernels import train

    helper = _take_early()
    if helper is None:  # another thread's fit took it
        return None
    try:
        if dtype != np.float64 or kernel is not train.train_epoch:
            return None
        if _signature(kernel, args) != _signature(kernel, first_epoch(dtype)[1]):
            return None
        _compile_notice.announce(kernel, dtype.name)  # compiled for this fit, if elsewhere
        for module, code in dict.fromkeys(callbacks):
            module.address(code, dtype)
        _meanwhile(helper, ahead)
        # as long again as it has run, on a machine slower than the grace assumes (not
        # for ever: one started long before the fit and still running is stuck)
        grace = min(max(HELPER_GRACE, time.perf_counter() - _early_began), EARLY_LIMIT)
        return helper.wait(timeout=grace) == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        _stop(helper)


def _meanwhile(helper, ahead):
    """Compile here, in order, the kernel calls ``ahead`` makes (``prepare``), each one
    only if ``helper`` still runs: this process would otherwise wait for it idle, then
    compile them right after the fit's first epoch (the validation pass). A call that
    fails to compile here is left to compile, and report, where it runs."""
    for make in ahead:
        if helper.poll() is not None:
            return
        try:
            kernel, args = make()
            if getattr(kernel, "targetoptions", {}).get("parallel"):
                _threads.layer()  # fastbp's threading layer, not numba's default
            kernel.compile(_signature(kernel, args))  # or loads it from the cache
        except Exception:  # noqa: BLE001 - the call itself compiles again, and raises
            continue


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


def run_jobs(jobs):
    """The helper's work: compile (or load) into numba's cache each job of ``jobs``, a
    JSON list of ``[module name, code, dtype name]`` for a callback, or ``["epoch", 0,
    dtype name]`` for the epoch kernel of ``first_epoch``."""
    import warnings

    warnings.simplefilter("ignore")
    for name, code, dtype in json.loads(jobs):
        if name == "epoch":
            kernel, args = first_epoch(dtype)
            kernel.compile(_signature(kernel, args))
        elif name in _TABLES:
            importlib.import_module(f"{__package__}._kernels.{name}").address(
                int(code), np.dtype(dtype))
        else:
            raise ValueError(f"no compile job {name!r}")
