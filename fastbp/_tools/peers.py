"""fastbp's speed peers: JAX/XLA for training, onnxruntime for inference, and the time
numpy's BLAS takes for the matrix products of one epoch of a given shape.

Each peer measures the same work as fastbp, from the same inputs:

* ``jax_epoch_seconds`` / ``JaxEpochs``: the same network (relu hidden layers; softmax +
  log-loss, logistic + binary log-loss, or identity + squared error), scikit-learn's L2
  term ``alpha / (2 n_batch) ||W||^2`` on the weights only, Adam with scikit-learn's
  hyperparameters and update form, from given initial weights over given row orders, the
  last partial batch included. One epoch is one jitted function (``lax.scan`` over the
  full batches, then one step for the remainder). JAX runs in a subprocess: at one thread
  it pins itself to one core before anything starts a thread (XLA's thread flags alone
  did not keep it on one core), so its numbers are comparable with fastbp's
  ``n_threads=1``. ``JaxEpochs.weights`` hands the trained weights back, which is how the
  tests prove the peer does the same arithmetic as fastbp.
* ``jax_start_seconds``: a new JAX user's first fit (import jax and optax, jit, compile
  and run one epoch per dtype) in a fresh interpreter, without or with JAX's persistent
  compilation cache: the peer of ``python -m fastbp bench``'s start-up rows.
* ``onnxruntime_predict_seconds``: fastbp's model exported through ``to_sklearn`` and
  skl2onnx, run by an onnxruntime session with a fixed thread count.
* ``gemm_seconds_per_epoch``: the forward, delta and weight-gradient products of one
  epoch, on preallocated arrays; over fastbp's epoch time it is the "own-shape GEMM
  fraction" of a workload.

Every peer is optional: a function returns None when its packages are missing, and
``unavailable(peer)`` says why. ``python -m fastbp._tools.peers --workload NAME`` prints
fastbp against the peers, measured in turns (medians of repeats) with the load average;
``python -m fastbp bench`` times them in its workloads' turns (``vs_peers.py``).
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PEERS = {"jax": ("jax", "optax"), "onnxruntime": ("onnxruntime", "skl2onnx")}
# scikit-learn's loss names and the output activation each implies (fastbp's too)
LOSSES = ("log_loss", "binary_log_loss", "squared_error")
# scikit-learn's Adam defaults (MLPClassifier / MLPRegressor)
ADAM = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
# XLA's own threading knobs, set as well as the pinning (alone they did not suffice)
ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def unavailable(peer):
    """Why ``peer`` ('jax' or 'onnxruntime') cannot be measured here, or None if it can."""
    if peer not in PEERS:
        raise ValueError(f"peer={peer!r} is not a peer; valid peers are {sorted(PEERS)}.")
    missing = [name for name in PEERS[peer] if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"the {peer} peer needs {' and '.join(missing)}: pip install {' '.join(missing)}"


def _check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} has no JAX peer; valid losses are {LOSSES}.")


def _check_positive(name, value):
    if not (isinstance(value, int | np.integer) and value >= 1):
        raise ValueError(f"{name}={value!r} must be an integer >= 1.")


# ------------------------------------------------------------------------------ JAX side
# Everything in this section runs in the child process, which imports this file by path
# (no fastbp, numba or sklearn import there), after pinning itself.
def _sklearn_adam(jax, optax, dtype):
    """Adam as scikit-learn (and fastbp) step it, as an optax transformation.

    ``optax.adam`` adds epsilon to the bias-corrected ``sqrt(v_hat)``; scikit-learn folds
    the bias correction into the step size, ``w -= lr sqrt(1-b2^t)/(1-b1^t) m/(sqrt(v)+eps)``,
    which is epsilon scaled by ``sqrt(1-b2^t)``: on the first steps the two differ by
    1e-4 relative, far more than the 1e-10 the weight check needs. Same work per step.
    """
    lr, b1, b2, eps = (ADAM[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
    jnp = jax.numpy

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return zeros, zeros, jnp.zeros((), dtype)  # t in the params' dtype: no promotion

    def update(grads, state, params=None):
        m, v, t = state
        t = t + 1
        step = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * (g * g), v, grads)
        updates = jax.tree.map(lambda m, v: -step * m / (jnp.sqrt(v) + eps), m, v)
        return updates, (m, v, t)

    return optax.GradientTransformation(init, update)


def _objective(jax, loss, alpha):
    """The minibatch objective whose gradient is scikit-learn's: mean data loss over the
    batch plus ``alpha / (2 n_batch) ||W||^2`` (weights only). Squared error is summed
    over outputs (scikit-learn also divides its reported value by the outputs, but
    backpropagates ``y_pred - y``, which this gradient equals)."""
    jnp = jax.numpy

    def objective(params, x, y):
        coefs, intercepts = params
        a = x
        for W, b in zip(coefs[:-1], intercepts[:-1], strict=True):
            a = jax.nn.relu(a @ W + b)
        z = a @ coefs[-1] + intercepts[-1]
        if loss == "log_loss":
            data = -jnp.sum(y * jax.nn.log_softmax(z, axis=1))
        elif loss == "binary_log_loss":
            data = -jnp.sum(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))
        else:
            data = 0.5 * jnp.sum((z - y) ** 2)
        penalty = 0.5 * alpha * sum(jnp.vdot(W, W) for W in coefs)
        return (data + penalty) / x.shape[0]

    return objective


def _jax_epoch(jax, optax, loss, alpha, batch_size, n_rows, dtype):
    """One jitted epoch ``(state, X, Y, order) -> state``; state is (params, opt_state)."""
    grad = jax.grad(_objective(jax, loss, alpha))
    adam = _sklearn_adam(jax, optax, dtype)
    n_full, tail = divmod(n_rows, batch_size)

    def step(state, batch):
        params, opt_state = state
        updates, opt_state = adam.update(grad(params, *batch), opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    def epoch(state, X, Y, order):
        # rows gathered in the epoch's order, as fastbp copies each batch's rows
        X, Y = X[order], Y[order]
        full = n_full * batch_size
        if n_full:
            batches = (
                X[:full].reshape(n_full, batch_size, X.shape[1]),
                Y[:full].reshape(n_full, batch_size, Y.shape[1]),
            )
            state, _ = jax.lax.scan(step, state, batches)
        if tail:
            state, _ = step(state, (X[full:], Y[full:]))
        return state

    return jax.jit(epoch), adam


def _prepared(jax, optax, config, data):
    """The jitted epoch of ``config`` and its inputs as device arrays: ``(epoch, state,
    X, Y, orders)``, state being (params, opt_state). Float64 turns on JAX's x64 mode
    first (before any array of it exists)."""
    if config["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)

    dtype = np.dtype(config["dtype"])
    n_layers = int(data["n_layers"])
    params = (
        [jax.numpy.asarray(data[f"coef_{i}"], dtype) for i in range(n_layers)],
        [jax.numpy.asarray(data[f"intercept_{i}"], dtype) for i in range(n_layers)],
    )
    X, Y = (jax.numpy.asarray(data[k], dtype) for k in ("X", "Y"))
    # one device array per epoch order, made before timing (int32 works in both modes)
    orders = [jax.numpy.asarray(o) for o in data["orders"].astype(np.int32)]
    epoch, adam = _jax_epoch(
        jax, optax, config["loss"], config["alpha"], config["batch_size"], X.shape[0], dtype
    )
    return epoch, (params, adam.init(params)), X, Y, orders


def _child_commands(config, data, out):
    """Serve the parent: compile, then answer ``epochs K`` / ``save PATH`` lines."""
    import jax
    import optax

    epoch, state, X, Y, orders = _prepared(jax, optax, config, data)
    start = time.perf_counter()
    compiled = epoch.lower(state, X, Y, orders[0]).compile()
    jax.block_until_ready(compiled(state, X, Y, orders[0]))  # untimed: first-call costs
    _reply(out, affinity=sorted(os.sched_getaffinity(0)), jax=jax.__version__,
           compile_seconds=time.perf_counter() - start, devices=str(jax.devices()))
    done = 0  # epochs trained so far: the next one uses orders[done % len(orders)]
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "epochs":
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(int(argument)):
                state = compiled(state, X, Y, orders[done % len(orders)])
                done += 1
            jax.block_until_ready(state)
            _reply(out, wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)
        elif command == "save":
            coefs, intercepts = state[0]
            np.savez(argument, **{f"coef_{i}": np.asarray(c) for i, c in enumerate(coefs)},
                     **{f"intercept_{i}": np.asarray(b) for i, b in enumerate(intercepts)})
            _reply(out, saved=argument)


def _reply(out, **fields):
    out.write(json.dumps(fields) + "\n")
    out.flush()


def _protocol_out():
    """The child's replies: the real stdout, kept for the protocol; JAX or XLA may print,
    so what the process writes to stdout from here on goes to stderr."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out


def _child_main(npz_path, config_json):
    """Entry point of the JAX subprocess (after ``_BOOT`` pinned it)."""
    out = _protocol_out()
    with np.load(npz_path) as data:
        _child_commands(json.loads(config_json), dict(data), out)


# The children's start: ``_BOOT CORES FILE ENTRY ARGS...`` pins the process to CORES
# (comma-separated; empty: not pinned) before numpy (OpenBLAS starts its threads at
# import) or jax is imported (sched_setaffinity(0) binds the calling thread, and threads
# inherit it), then runs ENTRY of this file, imported by path, on ARGS.
_BOOT = """
import os, sys
if sys.argv[1]:
    os.sched_setaffinity(0, {int(core) for core in sys.argv[1].split(",")})
import importlib.util
spec = importlib.util.spec_from_file_location("fastbp_peers_child", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
getattr(module, sys.argv[3])(*sys.argv[4:])
"""


def _start_main(npz_path, configs_json, cache_dir=None):
    """Entry point of a JAX start-up child (``jax_start_seconds``): from before
    ``import jax`` to the end of one first epoch per config, as a new JAX user's first
    fit. ``cache_dir`` is JAX's persistent compilation cache, every program written to
    and read from it (none given: no persistent cache, JAX's default)."""
    out = _protocol_out()
    with np.load(npz_path) as data:
        data = dict(data)
    start = time.perf_counter()
    import jax
    import optax

    imported = time.perf_counter()
    if cache_dir is not None:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    trained = []  # per config: the first layer's weights after the epoch
    for config in json.loads(configs_json):
        epoch, state, X, Y, orders = _prepared(jax, optax, config, data)
        trained.append(jax.block_until_ready(epoch(state, X, Y, orders[0]))[0][0][0])
    done = time.perf_counter()
    trained = [{"dtype": str(w.dtype), "sum": float(np.sum(w, dtype=np.float64))}
               for w in trained]
    _reply(out, **{"import": imported - start, "first_fit": done - start, "trained": trained})



# ---------------------------------------------------------------------------- parent side
def _child_inputs(coefs, intercepts, X, Y, batch_size, *, orders=None, loss="log_loss",
                  alpha=1e-4, dtype="float64"):
    """What a JAX child is given, checked: ``(config, arrays)``, the arrays as the npz
    file ``_prepared`` reads (see ``JaxEpochs`` for the arguments)."""
    _check_loss(loss)
    _check_positive("batch_size", batch_size)
    if str(dtype) not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r} must be 'float32' or 'float64'.")
    n_rows = X.shape[0]
    orders = np.arange(n_rows) if orders is None else np.asarray(orders)
    orders = np.atleast_2d(orders).astype(np.int64)
    if orders.shape[1] != n_rows:
        raise ValueError(
            f"orders has {orders.shape[1]} entries per epoch; it needs one per row of "
            f"X ({n_rows})."
        )
    config = dict(loss=loss, alpha=float(alpha), dtype=str(dtype),
                  batch_size=int(min(batch_size, n_rows)))
    arrays = dict(X=X, Y=np.asarray(Y).reshape(n_rows, -1), orders=orders, n_layers=len(coefs))
    arrays.update({f"coef_{i}": c for i, c in enumerate(coefs)})
    arrays.update({f"intercept_{i}": b for i, b in enumerate(intercepts)})
    return config, arrays


class JaxEpochs:
    """A JAX training peer in a subprocess, compiled and ready to time epochs.

    Parameters
    ----------
    coefs, intercepts : lists of ndarray
        Initial weights, as fastbp's ``coefs_`` (fan_in x fan_out) and ``intercepts_``.
    X : ndarray of shape (n_rows, n_features)
    Y : ndarray of shape (n_rows, n_outputs)
        The targets as fastbp's kernels see them: one-hot classes for 'log_loss', a 0/1
        column for 'binary_log_loss', the values for 'squared_error'.
    batch_size : int
    orders : ndarray of shape (n_rows,) or (n_epochs, n_rows), default=None
        Row order of each epoch (epoch ``k`` uses ``orders[k % n_epochs]``); None keeps
        the rows in place, as fastbp's ``shuffle=False``.
    loss : {'log_loss', 'binary_log_loss', 'squared_error'}
    alpha : float
    dtype : {'float32', 'float64'}
    threads : int
        1 pins the child to one core (``core``, default the last one this process may
        use) and XLA to one thread; more pin it to the first ``threads`` cores this
        process may use, where XLA starts a thread per core.

    Use as a context manager; ``info`` holds the child's affinity, JAX version and
    compile time.
    """

    def __init__(self, coefs, intercepts, X, Y, batch_size, *, orders=None,
                 loss="log_loss", alpha=1e-4, dtype="float64", threads=1, core=None):
        _check_positive("threads", threads)
        self.config, self._arrays = _child_inputs(
            coefs, intercepts, X, Y, batch_size, orders=orders, loss=loss, alpha=alpha,
            dtype=dtype,
        )
        self.threads = threads
        self.core = max(os.sched_getaffinity(0)) if core is None else int(core)
        self.info = None

    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="fastbp-peers-")
        npz = Path(self._dir.name) / "data.npz"
        np.savez(npz, **self._arrays)
        env = dict(os.environ)
        if self.threads == 1:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {ONE_THREAD_XLA_FLAGS}".strip()
        self._stderr = open(Path(self._dir.name) / "stderr", "w+")  # noqa: SIM115
        cores = [self.core] if self.threads == 1 else sorted(os.sched_getaffinity(0))[
            : self.threads]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, ",".join(map(str, cores)), __file__, "_child_main",
             str(npz), json.dumps(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, env=env,
        )
        try:
            self.info = self._read()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()
        self._dir.cleanup()

    def _read(self):
        line = self._proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:]
            raise RuntimeError(f"the JAX peer process ended early; its stderr:\n{tail}")
        return json.loads(line)

    def _ask(self, command):
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._read()

    def sample(self, epochs=1):
        """``{'wall', 'cpu'}`` seconds per epoch over the next ``epochs`` epochs."""
        _check_positive("epochs", epochs)
        reply = self._ask(f"epochs {epochs}")
        return {key: reply[key] / epochs for key in ("wall", "cpu")}

    def weights(self):
        """The child's current ``(coefs, intercepts)`` as lists of ndarray."""
        path = Path(self._dir.name) / "weights.npz"
        self._ask(f"save {path}")
        with np.load(path) as saved:
            n = int(self._arrays["n_layers"])
            return ([saved[f"coef_{i}"] for i in range(n)],
                    [saved[f"intercept_{i}"] for i in range(n)])


def jax_epoch_seconds(coefs, intercepts, X, Y, batch_size, *, repeats=5, epochs=1, **kw):
    """Median seconds per epoch of the JAX peer (see ``JaxEpochs`` for the arguments).

    After the compile and one untimed epoch, ``repeats`` samples of ``epochs`` epochs
    each. Returns None if jax or optax is missing (``unavailable('jax')`` says why), else
    a dict: ``wall`` and ``cpu`` (medians), ``samples`` and the child's ``info``.
    """
    if unavailable("jax"):
        return None
    _check_positive("repeats", repeats)
    with JaxEpochs(coefs, intercepts, X, Y, batch_size, **kw) as peer:
        samples = [peer.sample(epochs) for _ in range(repeats)]
        info = peer.info
    return {
        "wall": statistics.median(s["wall"] for s in samples),
        "cpu": statistics.median(s["cpu"] for s in samples),
        "samples": samples,
        "info": info,
    }


def jax_start_seconds(arguments, dtypes, cache_dir=None):
    """A new JAX user's first fit, timed in a fresh interpreter: import jax and optax,
    then jit, compile and run one epoch per dtype in ``dtypes`` (all in one process, as
    fastbp's start-up runs), with JAX's persistent compilation cache in ``cache_dir``
    (None: none, JAX's default). The child is handed its starting weights, one-hot
    targets and row order ready made (fastbp's timed fit also draws its weights, checks
    and binarizes the labels and shuffles: a little less work on JAX's side).

    ``arguments`` are ``jax_arguments``' (its ``dtype`` and ``threads`` are not used: the
    child runs each of ``dtypes`` and is not pinned, as fastbp's start-up children).
    Returns None if jax or optax is missing (``unavailable('jax')`` says why), else
    ``{"first_fit": s, "import": s, "wall": s}`` like ``processes.start_seconds``, and
    ``"trained"``: per dtype, the dtype and the sum of the first layer's weights after
    the epoch (what the child computed, whether compiled or loaded from the cache). A
    child that fails raises RuntimeError with its stderr.
    """
    if unavailable("jax"):
        return None
    arguments = {k: v for k, v in arguments.items() if k not in ("dtype", "threads")}
    inputs = [_child_inputs(**arguments, dtype=dtype) for dtype in dtypes]
    with tempfile.TemporaryDirectory(prefix="fastbp-peers-") as tmp:
        npz = Path(tmp) / "data.npz"
        np.savez(npz, **inputs[0][1])
        command = [sys.executable, "-c", _BOOT, "", __file__, "_start_main", str(npz),
                   json.dumps([config for config, _ in inputs])]
        command += [] if cache_dir is None else [str(cache_dir)]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the JAX start-up process failed; its stderr:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "wall": wall}


# --------------------------------------------------------------------------- onnxruntime
def onnxruntime_peer(estimator, threads=1):
    """A function ``X -> outputs`` running fastbp's fitted ``estimator`` in onnxruntime.

    The network goes through ``to_sklearn`` and skl2onnx as a float32 graph; the outputs
    are the class probabilities of a classifier (no zipmap), the predictions of a
    regressor, as float32. The session runs ``threads`` intra-op threads, one inter-op
    thread, sequentially. Returns None if onnxruntime or skl2onnx is missing.
    """
    if unavailable("onnxruntime"):
        return None
    _check_positive("threads", threads)
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.base import is_classifier

    with warnings.catch_warnings():
        # it lists fastbp-only settings (n_threads, ...) that change no prediction
        warnings.simplefilter("ignore", UserWarning)
        model = estimator.to_sklearn()
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    example = np.zeros((1, estimator.n_features_in_), dtype=np.float32)
    graph = to_onnx(model, example, options=options)
    settings = onnxruntime.SessionOptions()
    settings.intra_op_num_threads = threads
    settings.inter_op_num_threads = 1
    settings.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), settings, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    # a classifier's graph gives (label, probabilities): the last output is the one wanted
    output = session.get_outputs()[-1].name

    def run(X):
        return session.run([output], {name: np.ascontiguousarray(X, dtype=np.float32)})[0]

    return run


def onnxruntime_predict_seconds(estimator, X, threads=1, repeats=7, calls=1000):
    """onnxruntime's time to run fastbp's ``estimator`` on ``X`` and on one row.

    Returns None if onnxruntime or skl2onnx is missing, else a dict: ``rows``, the median
    of ``repeats`` runs on all of X, and ``one_row``, the median of ``calls`` runs on its
    first row (after one untimed run of each).
    """
    run = onnxruntime_peer(estimator, threads)
    if run is None:
        return None
    _check_positive("repeats", repeats)
    _check_positive("calls", calls)
    from .common import median_call_seconds  # parent side only: common imports fastbp

    X = np.ascontiguousarray(X, dtype=np.float32)
    row = X[:1]
    run(X), run(row)
    return {
        "rows": median_call_seconds(run, X, repeats),
        "one_row": median_call_seconds(run, row, calls),
    }


# ------------------------------------------------------------------------ own-shape GEMM
class GemmEpoch:
    """The matrix products of one fastbp training epoch, on preallocated arrays.

    Per batch and per layer ``i`` (``fan_in x fan_out`` weights): the forward product
    ``(batch x fan_in) @ (fan_in x fan_out)``; the delta handed back, ``(batch x fan_out)
    @ (fan_out x fan_in)``, for every layer but the first (no delta goes to the input);
    the weight gradient ``(fan_in x batch) @ (batch x fan_out)``. The last partial batch
    has arrays of its own size. Calling the object runs the epoch's products once.
    """

    def __init__(self, layer_units, n_rows, batch_size, dtype=np.float32):
        _check_positive("n_rows", n_rows)
        _check_positive("batch_size", batch_size)
        if len(layer_units) < 2 or min(layer_units) < 1:
            raise ValueError(
                f"layer_units={list(layer_units)!r} needs at least two sizes, all >= 1."
            )
        batch_size = min(batch_size, n_rows)
        self.n_full, tail = divmod(n_rows, batch_size)
        rng = np.random.default_rng(0)
        self._full = self._operands(layer_units, batch_size, np.dtype(dtype), rng)
        self._tail = self._operands(layer_units, tail, np.dtype(dtype), rng) if tail else None

    @staticmethod
    def _operands(units, rows, dtype, rng):
        """Per layer: (A, W, Z, D, back, G) as named in the class docstring's products."""
        layers = []
        for fan_in, fan_out in zip(units[:-1], units[1:], strict=False):
            A = rng.random((rows, fan_in), dtype=dtype)
            W = rng.random((fan_in, fan_out), dtype=dtype)
            D = rng.random((rows, fan_out), dtype=dtype)
            outs = (np.empty((rows, fan_out), dtype), np.empty((rows, fan_in), dtype),
                    np.empty((fan_in, fan_out), dtype))
            layers.append((A, W, outs[0], D, outs[1], outs[2]))
        return layers

    @staticmethod
    def _batch(layers):
        for i, (A, W, Z, D, back, G) in enumerate(layers):
            np.dot(A, W, out=Z)
            if i:
                np.dot(D, W.T, out=back)
            np.dot(A.T, D, out=G)

    def __call__(self):
        for _ in range(self.n_full):
            self._batch(self._full)
        if self._tail is not None:
            self._batch(self._tail)


def gemm_seconds_per_epoch(layer_units, n_rows, batch_size, dtype=np.float32, threads=1,
                           repeats=5, clock=time.perf_counter):
    """Median seconds numpy's BLAS takes for the matrix products of one fastbp epoch.

    See ``GemmEpoch`` for the products. BLAS runs ``threads`` threads (threadpoolctl;
    the previous setting comes back on exit, also on error); one untimed epoch first,
    then the median of ``repeats``. ``clock`` may be ``time.process_time`` to count CPU
    time on a busy machine. Over fastbp's epoch time this is the workload's own-shape
    GEMM fraction.
    """
    from threadpoolctl import threadpool_limits

    _check_positive("threads", threads)
    _check_positive("repeats", repeats)
    epoch = GemmEpoch(layer_units, n_rows, batch_size, dtype)
    with threadpool_limits(limits=threads, user_api="blas"):
        epoch()
        times = []
        for _ in range(repeats):
            start = clock()
            epoch()
            times.append(clock() - start)
    return statistics.median(times)


# -------------------------------------------------------------------------- command line
@dataclasses.dataclass(frozen=True)
class Workload:
    """One training workload of the comparison (the bench's shapes)."""

    data: str  # 'digits' (1797 x 64, scaled to [0, 1]) or 'synthetic' (make_classification)
    rows: int
    features: int
    hidden: tuple
    batch_size: int
    dtype: str
    epochs: int  # per timed sample: fit(max_iter=epochs) / epochs, JAX alike


WORKLOADS = {
    "digits64": Workload("digits", 1797, 64, (64,), 32, "float64", 10),
    "digits32": Workload("digits", 1797, 64, (64,), 32, "float32", 10),
    "mc-b32": Workload("synthetic", 50_000, 100, (256, 128), 32, "float32", 1),
    "mc-b200": Workload("synthetic", 50_000, 100, (256, 128), 200, "float32", 1),
    "wide": Workload("synthetic", 50_000, 256, (1024, 1024), 512, "float32", 1),
}
PREDICT_ROWS = 10_000


def _dataset(workload, rows):
    if workload.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X, y = X[:rows] / 16.0, y[:rows]
    else:
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=rows, n_features=workload.features,
                                   n_informative=20, n_classes=10, random_state=0)
    return np.ascontiguousarray(X, dtype=workload.dtype), y


def _interleave(samplers, repeats):
    """``{name: {'wall', 'cpu'}}``: the medians of the samplers (each returning
    ``{'wall', 'cpu'}``, already warmed up) called in turns, ``repeats`` rounds, so that a
    busy neighbour slows them alike (``common.interleave``)."""
    from .common import interleave

    warmed = {name: (sampler, _warmed_up, None) for name, sampler in samplers.items()}
    samples = interleave(warmed, repeats)
    return {name: {key: statistics.median(s[key] for s in runs) for key in ("wall", "cpu")}
            for name, runs in samples.items()}


def _warmed_up():
    """The warm-up of a sampler whose first, untimed call was made already."""


def _fastbp_fit(workload, X, y, epochs, threads):
    """fastbp's classifier for ``workload`` and a function fitting it for ``epochs``."""
    from fastbp import MLPClassifier

    est = MLPClassifier(
        workload.hidden, solver="adam", alpha=1e-4, batch_size=workload.batch_size,
        random_state=0, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
        n_threads=threads,
    )

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fixed epoch count is the point
            est.fit(X, y)

    return est, fit


def jax_arguments(estimator, X, y, batch_size, epochs, threads=1):
    """``JaxEpochs``' keyword arguments: ``estimator``'s network from its current weights,
    trained on (X, y) in ``X``'s dtype, one seeded row order per epoch (shuffled, as
    fastbp's default), the targets binarized as scikit-learn's classifier does."""
    from sklearn.preprocessing import LabelBinarizer

    Y = LabelBinarizer().fit_transform(y)
    rng = np.random.RandomState(0)
    return dict(
        coefs=[np.array(c) for c in estimator.coefs_],
        intercepts=[np.array(b) for b in estimator.intercepts_],
        X=X, Y=Y.astype(X.dtype), batch_size=batch_size,
        orders=[rng.permutation(X.shape[0]) for _ in range(epochs)],
        loss="log_loss" if Y.shape[1] > 1 else "binary_log_loss",
        dtype=str(X.dtype), threads=threads,
    )


def _fit_peers(workload, X, y, epochs, threads):
    """fastbp's fit sampler (compiled and warm) and JaxEpochs' arguments, same network."""
    from .common import timed

    est, fit = _fastbp_fit(workload, X, y, epochs, threads)
    fit()  # compiles (or loads) the kernels; its weights start the JAX peer
    jax_args = jax_arguments(est, X, y, workload.batch_size, epochs, threads)

    def fastbp_sample():
        return {key: seconds / epochs for key, seconds in timed(fit).items()}

    units = [est.coefs_[0].shape[0]] + [c.shape[1] for c in est.coefs_]
    return fastbp_sample, jax_args, units


def run_fit(name, rows=None, epochs=None, repeats=5, threads=1):
    """fastbp, JAX and the own-shape GEMM on workload ``name``, timed in turns.

    A fastbp sample is ``fit(max_iter=epochs)`` over ``epochs``, so fit's fixed costs
    (validation, set-up) are in it, as in the bench; a JAX sample is ``epochs`` calls of
    the compiled epoch; a GEMM sample is one epoch's products. Medians of ``repeats``.
    """
    from threadpoolctl import threadpool_limits

    from .common import timed

    workload = WORKLOADS[name]

    rows = rows or workload.rows
    if workload.data == "digits":
        rows = min(rows, workload.rows)  # the data set has no more
    epochs = epochs or workload.epochs

    X, y = _dataset(workload, rows)
    fastbp_sample, jax_args, units = _fit_peers(workload, X, y, epochs, threads)
    gemm = GemmEpoch(units, X.shape[0], workload.batch_size, X.dtype)

    def gemm_sample():
        with threadpool_limits(limits=threads, user_api="blas"):
            return timed(gemm)

    samplers = {"fastbp": fastbp_sample, "gemm": gemm_sample}
    gemm_sample()  # untimed first call
    result = {"workload": name, "rows": X.shape[0], "epochs": epochs, "threads": threads,
              "load_start": os.getloadavg(), "jax": unavailable("jax")}
    with contextlib.ExitStack() as stack:
        if result["jax"] is None:
            peer = stack.enter_context(JaxEpochs(**jax_args))
            samplers["jax"] = lambda: peer.sample(epochs)
            result["jax"] = peer.info
        result["medians"] = _interleave(samplers, repeats)
    result["load_end"] = os.getloadavg()
    return result


def run_predict(repeats=5, calls=1000, threads=1):
    """fastbp's ``predict_proba`` against onnxruntime's on the digits32 model: 10,000
    rows (digits repeated) and one row (median of ``calls`` calls per sample)."""
    from .common import call_seconds, timed

    workload = WORKLOADS["digits32"]
    X, y = _dataset(workload, workload.rows)
    est, fit = _fastbp_fit(workload, X, y, workload.epochs, threads)
    fit()
    rows = np.resize(X, (PREDICT_ROWS, X.shape[1]))
    result = {"workload": "predict", "rows": PREDICT_ROWS, "calls": calls, "threads": threads,
              "load_start": os.getloadavg(), "onnxruntime": unavailable("onnxruntime")}
    candidates = {"fastbp": est.predict_proba}
    if result["onnxruntime"] is None:
        candidates["onnxruntime"] = onnxruntime_peer(est, threads)
    samplers = {}
    for name, predict in candidates.items():
        predict(rows), predict(rows[:1])  # untimed first calls
        samplers[f"{name} {PREDICT_ROWS} rows"] = lambda p=predict: timed(lambda: p(rows))
        samplers[f"{name} 1 row"] = lambda p=predict: call_seconds(lambda: p(rows[:1]), calls)
    result["medians"] = _interleave(samplers, repeats)
    result["load_end"] = os.getloadavg()
    return result


def _fmt(seconds):
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    return f"{seconds * 1e3:.4g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.4g} us"


def report(result):
    """The text of one workload's result (``run_fit`` / ``run_predict``)."""
    lines = [
        f"{result['workload']}: {result['rows']} rows, {result['threads']} thread(s); load "
        f"average {result['load_start'][0]:.2f} at start, {result['load_end'][0]:.2f} at end",
    ]
    medians = result["medians"]
    per = "per epoch" if "epochs" in result else "per call"
    for name, m in medians.items():
        lines.append(f"  {name:<24} wall {_fmt(m['wall']):>10}  cpu {_fmt(m['cpu']):>10}  {per}")
    for peer in ("jax", "onnxruntime"):
        info = result.get(peer, "")
        if isinstance(info, str) and peer in result:
            lines.append(f"  {peer}: not measured ({info})")
        elif isinstance(info, dict):
            lines.append(f"  jax {info['jax']} on cores {info['affinity']}, compiled in "
                         f"{info['compile_seconds']:.2f} s")
    if "jax" in medians:
        fb, jx = medians["fastbp"], medians["jax"]
        lines.append(f"  jax time / fastbp time: wall {jx['wall'] / fb['wall']:.2f}, "
                     f"cpu {jx['cpu'] / fb['cpu']:.2f} (above 1: fastbp faster)")
    if "gemm" in medians:
        gm, fb = medians["gemm"], medians["fastbp"]
        lines.append(f"  own-shape GEMM fraction (gemm / fastbp): wall "
                     f"{gm['wall'] / fb['wall']:.2f}, cpu {gm['cpu'] / fb['cpu']:.2f}")
    for size in (f"{PREDICT_ROWS} rows", "1 row"):
        if f"onnxruntime {size}" in medians:
            ort, fb = medians[f"onnxruntime {size}"], medians[f"fastbp {size}"]
            lines.append(f"  onnxruntime time / fastbp time, {size}: wall "
                         f"{ort['wall'] / fb['wall']:.2f}, cpu {ort['cpu'] / fb['cpu']:.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fastbp._tools.peers",
        description="fastbp against its speed peers (JAX/XLA training, onnxruntime "
        "inference, the epoch's own matrix products), timed in turns, medians.",
    )
    parser.add_argument("--workload", action="append", choices=[*WORKLOADS, "predict"],
                        help="repeat for several; default: digits32")
    parser.add_argument("--rows", type=int, help="rows of the training data (shrinks the "
                        "50k-row workloads; digits has at most 1797)")
    parser.add_argument("--epochs", type=int, help="epochs per timed sample")
    parser.add_argument("--repeats", type=int, default=5, help="timed samples per peer")
    parser.add_argument("--calls", type=int, default=1000, help="one-row calls per sample")
    parser.add_argument("--threads", type=int, default=1,
                        help="fastbp n_threads, BLAS, onnxruntime; 1 pins JAX to one core")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    for name, value in (("--rows", args.rows), ("--epochs", args.epochs),
                        ("--repeats", args.repeats), ("--calls", args.calls),
                        ("--threads", args.threads)):
        if value is not None and value < 1:
            parser.error(f"{name}={value} must be >= 1")
    results = []
    for name in args.workload or ["digits32"]:
        if name == "predict":
            result = run_predict(args.repeats, args.calls, args.threads)
        else:
            result = run_fit(name, args.rows, args.epochs, args.repeats, args.threads)
        print(report(result), flush=True)
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
