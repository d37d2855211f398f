"""Training a :class:`~fastbp._network.Network`: kernel-ready data, the workspace, the
optimizer (state, step count, learning-rate schedule, dropout seed), and the calls into
the training kernels. This module is their only caller.

Objects here take a network and plain values; they never see an estimator. The estimator
builds a :class:`Hyperparameters` from its parameters once per fit.
"""

import functools
from contextlib import contextmanager, nullcontext

import numpy as np

from . import _compile_ahead, _schedules, _threads
from ._kernels import activations as _act
from ._kernels import losses as _loss
from ._kernels import optimizers as _opt
from ._kernels import parallel as _par
from ._kernels import penalties as _pen
from ._kernels import train as _train
from ._workspace import (
    Workspace,
    chunk_rows,
    kernel_rows,
    kernel_X,
    native,
    no_dropout,
    readonly,
)

STOCHASTIC_SOLVERS = tuple(_opt.CODES)
LEARNING_RATES = ("constant", "invscaling", "adaptive", *_schedules.EPOCH_SCHEDULES)
# 'adaptive' stops once the step size falls below this (scikit-learn's rule)
_SMALLEST_ADAPTIVE_RATE = 1e-6


def batch_rows(batch_size, n_samples):
    """The minibatch size of ``batch_size`` ('auto' or an int) on ``n_samples`` rows:
    scikit-learn's ``min(200, n)`` for 'auto', else clipped to ``[1, n]``."""
    if batch_size == "auto":
        return min(200, n_samples)
    return int(np.clip(batch_size, 1, n_samples))


class KernelData:
    """A data set as the kernels take it, made once per data set (training or
    validation): dense X or its CSR triple, 2-D targets, the sample weights (empty for
    unit weights) and the row indices, each in the network's dtype, read-only.

    ``rows`` (int64) picks the rows that make the data set (default: all of them, in
    order): the early-stopping split trains on its rows of X, not on a copy of them.
    """

    def __init__(self, X, Y, sample_weight, dtype, rows=None):
        self.X, self.Xsp = kernel_X(X, dtype)
        self.Y = readonly(native(Y, dtype))
        self.sw = readonly(
            np.empty(0, dtype=dtype) if sample_weight is None else native(sample_weight, dtype)
        )
        self.dense = self.Xsp is None
        if rows is None:
            self.n = int(X.shape[0])
            self.rows = kernel_rows(self.n)
        else:
            self.n = int(rows.shape[0])
            self.rows = readonly(native(rows, np.int64))
        self.chunk = chunk_rows(self.n)

    def arrays(self):
        """``(X, Xsp, Y, sw)``, the kernels' data arguments."""
        return self.X, self.Xsp, self.Y, self.sw


class Hyperparameters:
    """The settings of one fit as the kernels and the schedule need them.

    Parameters
    ----------
    params : dict
        The estimator's parameters named in ``PARAMETERS`` (``huber_delta`` may be
        missing: 1.0).
    loss : int
        The network's loss code.
    dtype : the network's dtype.
    """

    PARAMETERS = (
        "solver", "learning_rate", "learning_rate_init", "power_t", "lr_decay",
        "lr_period", "max_iter", "alpha", "l1", "huber_delta", "momentum", "beta_1",
        "beta_2", "epsilon", "max_grad_norm", "weight_decay", "rho", "nesterovs_momentum",
    )

    def __init__(self, params, loss, dtype):
        self.solver = params["solver"]
        self.schedule = params["learning_rate"]
        self.learning_rate_init = float(params["learning_rate_init"])
        self.power_t = float(params["power_t"])
        self.lr_decay = float(params["lr_decay"])
        self.period = _schedules.period(self.schedule, params["lr_period"], params["max_iter"])
        self.alpha, self.l1 = float(params["alpha"]), float(params["l1"])
        self.loss = int(loss)
        self.clip_eps = float(np.finfo(dtype).eps)
        self.huber_delta = float(params.get("huber_delta", 1.0))
        self.hp = hp = np.zeros(_train.N_HP)
        hp[_train.HP_MOMENTUM] = params["momentum"]
        hp[_train.HP_BETA_1] = params["beta_1"]
        hp[_train.HP_BETA_2] = params["beta_2"]
        hp[_train.HP_EPSILON] = params["epsilon"]
        hp[_train.HP_ALPHA] = self.alpha
        hp[_train.HP_CLIP_EPS] = self.clip_eps
        hp[_train.HP_L1] = self.l1
        hp[_train.HP_MAX_GRAD_NORM] = params["max_grad_norm"] or 0.0
        hp[_train.HP_WEIGHT_DECAY] = params["weight_decay"]
        hp[_train.HP_RHO] = params["rho"]
        hp[_train.HP_HUBER_DELTA] = self.huber_delta
        self.ihp = ihp = np.zeros(_train.N_IHP, dtype=np.int64)
        if self.solver in _opt.CODES:
            ihp[_train.IHP_SOLVER] = _opt.CODES[self.solver]
        ihp[_train.IHP_NESTEROV] = int(params["nesterovs_momentum"])

    def loss_address(self, dtype):
        """The address of the loss's C callback for ``dtype`` networks (this process)."""
        return _loss.address(self.loss, dtype)


class Optimizer:
    """The state of a stochastic optimizer over one network: its two state vectors in
    the parameter layout (momentum/first moment, second moment), the number of steps
    and epochs taken, and the step size of scikit-learn's own schedules."""

    def __init__(self, solver, n_params, dtype, learning_rate):
        self.solver = solver
        self.state = np.zeros((2, n_params), dtype=dtype)
        self.t = 0  # steps taken (Adam's bias correction, the dropout masks)
        self.epoch = 0  # epochs completed (the epoch schedules)
        self.learning_rate = float(learning_rate)  # constant/invscaling/adaptive

    def fits(self, solver, n_params):
        return self.solver == solver and self.state.shape[1] == n_params

    def rate(self, hyper):
        """The step size of the coming epoch."""
        if hyper.schedule in _schedules.EPOCH_SCHEDULES:
            return _schedules.epoch_rate(
                hyper.schedule, hyper.learning_rate_init, self.epoch, hyper.lr_decay,
                hyper.period,
            )
        return self.learning_rate

    def after_epoch(self, hyper, samples_seen):
        """Advance the schedule past an epoch (``samples_seen``: scikit-learn's t_)."""
        self.epoch += 1
        if hyper.schedule == "invscaling":
            self.learning_rate = hyper.learning_rate_init / (samples_seen + 1) ** hyper.power_t

    def reduce_rate(self):
        """'adaptive': divide the step size by 5, unless it is already too small to go
        on (then return False: training stops)."""
        if self.learning_rate <= _SMALLEST_ADAPTIVE_RATE:
            return False
        self.learning_rate /= 5.0
        return True

    def __setstate__(self, state):
        self.__dict__.update(state)
        if not (self.state.flags.writeable and self.state.flags.c_contiguous):
            self.state = np.array(self.state)  # memmapped by joblib.load(mmap_mode="r")


def block_rows(batch_size):
    """Rows of the largest block of any minibatch of up to ``batch_size`` rows, cut
    as ``_kernels.parallel.n_blocks`` cuts them."""
    return max(-(-rows // _par.n_blocks(rows)) for rows in _block_row_candidates(batch_size))


def _block_row_candidates(batch_size):
    """The batch sizes at which the largest block can peak: just below each doubling
    of the block count, and the batch size itself."""
    edges = [2 * _par.MIN_BLOCK_ROWS - 1]
    blocks = 2
    while blocks < _par.MAX_BLOCKS:
        edges.append(2 * blocks * _par.BLOCK_ROWS - 1)
        blocks *= 2
    return [min(e, batch_size) for e in edges] + [batch_size]


class Trainer:
    """Fits one network: the optimizer, the dropout seed, the workspace, the threads,
    and every call into the training kernels (epoch, L-BFGS objective, validation
    loss)."""

    threads = 1  # of the fit under way (``running``); a class default for old pickles

    def __init__(self):
        self.optimizer = None
        # drawn once per network, at its first fit with dropout (runs without dropout
        # keep scikit-learn's draws)
        self.dropout_seed = None
        # whether the outputs of the last minibatch of the last epoch were finite (they
        # overflow when the weights grow too large, finite as the weights may be)
        self.outputs_finite = True
        self._workspace = None
        self._grads = None

    def start(self, network, hyper, keep_optimizer):
        """Prepare a stochastic fit: a fresh optimizer unless ``keep_optimizer`` and the
        existing one fits this network and solver (partial_fit continues it)."""
        self.outputs_finite = True
        opt = self.optimizer
        if not (keep_optimizer and opt is not None
                and opt.fits(hyper.solver, network.layout.n_params)):
            self.optimizer = Optimizer(
                hyper.solver, network.layout.n_params, network.dtype, hyper.learning_rate_init
            )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_workspace"] = state["_grads"] = None  # scratch memory
        state.pop("_partial_grads", None)
        return state

    def draw_dropout_seed(self, random_state):
        if self.dropout_seed is None:
            self.dropout_seed = int(random_state.randint(1, 2**62, dtype=np.int64))

    @contextmanager
    def running(self, n_threads):
        """The block fits on ``_threads.budget(n_threads)`` threads, BLAS on one."""
        threads = _threads.budget(n_threads)  # before BLAS's own limit lowers it
        with _threads.one_blas_thread():
            self.threads = threads
            try:
                yield
            finally:
                self.threads = 1

    def workspace(self, network, rows, dense, act_codes, slots=None, cols=None, bind=True):
        """Buffers for batches of up to ``rows`` rows (``slots`` of them, products in
        ``cols`` column chunks: see ``Workspace``), kept between calls while they fit,
        with the activations' addresses written into their ``net`` (``bind``; else the
        caller binds them before its kernel runs)."""
        ws = self._workspace
        if ws is None or not ws.fits(network.layout, rows, network.dtype, dense, act_codes,
                                     slots, cols):
            ws = Workspace(network.layout, act_codes, rows, network.dtype, dense,
                           slots=slots, cols=cols, bind=False)
            self._workspace = ws
        if bind:
            ws.bind()
        return ws

    def _partials(self, params):
        """The blocked epoch's gradient partials and per-block loss sums, kept between
        epochs (a fit allocates them once)."""
        kept = getattr(self, "_partial_grads", None)  # absent from older pickles
        if kept is None or kept[0].shape[1:] != params.shape or kept[0].dtype != params.dtype:
            kept = self._partial_grads = (
                np.empty((_par.MAX_BLOCKS - 1, *params.shape), dtype=params.dtype),
                np.empty((_par.MAX_BLOCKS, 2)),
            )
        return kept

    def _gradient_buffer(self, params):
        """The epoch's gradient buffer, kept between epochs (a fit allocates it once)."""
        grads = getattr(self, "_grads", None)  # absent from a Trainer pickled before it
        if grads is None or grads.shape != params.shape or grads.dtype != params.dtype:
            grads = self._grads = np.empty_like(params)
        return grads

    def epoch(self, network, data, order, batch_size, hyper, act_codes, drop, ahead=()):
        """One pass over ``data``'s rows in ``order`` (int64), one optimizer step per
        minibatch of ``batch_size`` rows; ``drop`` the dropout rate of each layer;
        ``ahead``: the kernel calls that follow (``_compile_ahead.prepare``).

        Returns scikit-learn's accumulated loss over the epoch divided by the number of
        rows; ``outputs_finite`` tells whether the outputs of the last minibatch after
        the last step are finite.
        """
        opt = self.optimizer
        dtype = network.dtype
        if not drop.any():
            drop = no_dropout()
        hyper.hp[_train.HP_LR] = opt.rate(hyper)
        hyper.ihp[_train.IHP_T] = opt.t
        hyper.ihp[_train.IHP_SEED] = self.dropout_seed or 0
        engine, ws, kernel, args = self.epoch_call(network, data, order, batch_size, hyper,
                                                   act_codes, drop)
        # the C callbacks the epoch calls, by the slot of ``ihp`` that holds the address
        callbacks = {_train.IHP_LOSS: (_loss, hyper.loss),
                     _train.IHP_RULE: (_opt, int(hyper.ihp[_train.IHP_SOLVER])),
                     _train.IHP_FINISH: (_pen, _train.finish_code(hyper.hp))}
        self._bind(ws, kernel, args, act_codes, list(callbacks.values()), ahead)
        for slot, (table, code) in callbacks.items():
            hyper.ihp[slot] = table.address(code, dtype)
        with nullcontext() if engine == "serial" else _threads.numba_threads(self.threads):
            accumulated = kernel(*args)
        opt.t = int(hyper.ihp[_train.IHP_T])
        self.outputs_finite = bool(hyper.ihp[_train.IHP_FINITE])
        return accumulated / data.n

    def epoch_call(self, network, data, order, batch_size, hyper, act_codes, drop):
        """``(engine, workspace, kernel, arguments)`` of an epoch (``epoch``'s arguments,
        ``drop`` as the kernels take it; of ``hyper`` only its ``hp`` and ``ihp``), with
        the workspace's activations not yet bound. Nothing runs."""
        opt = self.optimizer
        params = network.params
        grads = self._gradient_buffer(params)
        data_args = (*data.arrays(), readonly(order), batch_size)
        engine = _threads.engine(batch_size, network.layout.units, params.shape[0],
                                 _par.MIN_BLOCK_ROWS, _par.COLUMNS, data.dense)
        # the workspaces' activations are bound by the caller, after the kernel's compile
        if engine == "columns":
            ws = self.workspace(network, batch_size, data.dense, act_codes,
                                cols=_par.COLUMNS, bind=False)
            kernel, args = _par.train_epoch_columns, (
                params, grads, opt.state, hyper.hp, hyper.ihp, ws.net, *data_args,
                ws.act, ws.delta, ws.xbuf, ws.dact, drop)
        elif engine == "blocked":
            ws = self.workspace(network, block_rows(batch_size), data.dense, act_codes,
                                slots=_par.MAX_BLOCKS, bind=False)
            partials, sums = self._partials(params)
            kernel, args = _par.train_epoch_blocked, (
                params, grads, partials, opt.state, hyper.hp, hyper.ihp, ws.net,
                *data_args, ws.act, ws.delta, ws.xbuf, ws.dact, drop, sums)
        else:
            ws = self.workspace(network, batch_size, data.dense, act_codes, bind=False)
            kernel, args = _train.train_epoch, (
                params, grads, opt.state, hyper.hp, hyper.ihp, ws.net, *data_args, ws.act,
                ws.delta, ws.xbuf, ws.dact, drop)
        return engine, ws, kernel, args

    def _bind(self, ws, kernel, args, act_codes, callbacks, ahead=()):
        """Bind a new workspace's activations before ``kernel(*args)`` runs on it; first,
        on a cold cache, compile ``kernel`` while a helper process compiles the
        activations and ``callbacks`` (``_compile_ahead``; ``ahead`` as there). The
        callbacks' addresses in ``args`` need not be set yet: the caller writes them
        after this call."""
        if not ws.bound:  # a new workspace: maybe a cold fit's first kernel call
            callbacks = [*((_act, int(code)) for code in act_codes[1:]), *callbacks]
            _compile_ahead.prepare(kernel, args, callbacks, ws.dtype, self.threads, ahead)
            ws.bind()

    def objective(self, network, data, hyper, act_codes):
        """``f(x) -> (loss, gradient as float64)``: the full training objective (mean
        loss plus penalties, no dropout) at ``x``, which ``f`` writes into the network's
        parameters (L-BFGS, the gradient check). Parallel on the threads of the fit
        under way when the pass is large enough: the same values either way."""
        params = network.params
        grads = np.empty_like(params)
        scratch = {}  # per-chunk gradient sums: one vector, or one per slot
        settings = (hyper.clip_eps, hyper.huber_delta, hyper.alpha, hyper.l1)
        sums = np.empty((_par.SLOTS, 2))

        def f(x):
            params[...] = x
            threads = self.threads
            parallel = _threads.whole_data(data.n, data.chunk, params.shape[0], threads,
                                           gradient=True)
            slots = _par.SLOTS if parallel else None
            ws = self.workspace(network, data.chunk, data.dense, act_codes, slots=slots,
                                bind=False)
            if slots not in scratch:
                scratch[slots] = np.empty((*((slots,) if parallel else ()), *params.shape),
                                          dtype=params.dtype)
            kernel = _par.full_loss_grad_parallel if parallel else _train.full_loss_grad

            def args(loss_address, finish_address):
                return (params, grads, scratch[slots], ws.net, *data.arrays(), data.rows,
                        data.chunk, loss_address, finish_address, *settings, ws.act,
                        ws.delta, ws.xbuf, ws.dact, no_dropout(),
                        *((sums,) if parallel else ()))

            self._bind(ws, kernel, args(0, 0), act_codes,
                       [(_loss, hyper.loss), (_pen, _pen.FINISH)])
            with _threads.numba_threads(threads) if parallel else nullcontext():
                loss = kernel(*args(hyper.loss_address(params.dtype),
                                    _pen.address(_pen.FINISH, params.dtype)))
            return loss, grads.astype(np.float64)

        return f


class Validation:
    """A validation set: its kernel-ready data, the targets as scorers take them, and
    inference workspaces of its own (one, or ``SLOTS`` for the parallel pass)."""

    def __init__(self, network, X, Y, sample_weight, targets, act_codes):
        self.X, self.y, self.sample_weight = X, targets, sample_weight
        self.data = KernelData(X, Y, sample_weight, network.dtype)
        self._workspace = functools.partial(
            Workspace, network.layout, act_codes, self.data.chunk, network.dtype,
            self.data.dense, train=False,
        )
        self.workspaces = {}
        n_outputs = int(network.units[-1])
        self._outputs = np.empty((self.data.n, n_outputs), dtype=network.dtype)
        self._no_outputs = self._outputs[:0]
        self._sums = np.empty((-(-self.data.n // self.data.chunk), 2))

    def loss(self, network, hyper, threads=1):
        """Mean loss on the validation set (no penalty, no dropout), on ``threads``
        threads when the pass is large enough (the same value either way)."""
        return self._pass(network, hyper, threads, self._no_outputs)

    def loss_and_outputs(self, network, hyper, threads=1):
        """``(loss, outputs)`` of one forward pass: the value ``loss`` returns and the
        output activations of every row, (n, n_outputs), those ``Network.predict``
        returns. ``outputs`` is a buffer of this object: the next call overwrites it."""
        return self._pass(network, hyper, threads, self._outputs), self._outputs

    def call(self, network, hyper, threads):
        """``(kernel, arguments)`` of the pass ``loss`` and ``loss_and_outputs`` run on
        ``threads`` (its workspace made if need be; the pass itself not run): what a
        cold fit compiles ahead (``_compile_ahead.prepare``). The outputs' buffer, with
        or without rows, is of one type: both calls are one signature."""
        return self._call(network, hyper, threads, self._outputs)[1:]

    def _call(self, network, hyper, threads, out):
        """``(parallel, kernel, arguments)`` of a pass writing its outputs into ``out``
        (none if it has no rows); the parallel kernel when the pass is large enough."""
        data = self.data
        parallel = _threads.whole_data(data.n, data.chunk, network.params.shape[0], threads)
        slots = _par.SLOTS if parallel else None
        ws = self.workspaces.get(slots)
        if ws is None:
            ws = self.workspaces[slots] = self._workspace(slots=slots)
        args = (network.params, ws.net, *data.arrays(), data.rows, data.chunk,
                hyper.loss_address(network.dtype), hyper.clip_eps, hyper.huber_delta,
                ws.act, ws.delta, ws.xbuf, no_dropout())
        if not parallel:
            return False, _train.mean_loss, (*args, out)
        return True, _par.mean_loss_parallel, (*args, self._sums, out)

    def _pass(self, network, hyper, threads, out):
        parallel, kernel, args = self._call(network, hyper, threads, out)
        with _threads.numba_threads(threads) if parallel else nullcontext():
            return float(kernel(*args))
