"""The network: layer sizes, loss, the parameters in one flat vector, their
initialisation, and prediction through a cached plan.

A :class:`Network` is what the estimators fit and what every other object works on: the
trainer (``fastbp._training``) updates its ``params`` in place, ``coefs``/``intercepts``
are views into them, and ``predict`` runs the compiled forward pass.
"""

from contextlib import nullcontext

import numpy as np

from . import _threads
from ._kernels import activations as _act
from ._kernels import losses as _loss
from ._kernels import parallel as _par
from ._kernels.parallel import predict_rows_parallel
from ._kernels.train import predict_rows
from ._layout import Layout
from ._workspace import chunk_rows, kernel_rows, kernel_X, no_dropout, no_sparse, readonly

# The names of the hidden activations, in the kernels' table.
HIDDEN_ACTIVATIONS = tuple(_act.HIDDEN_CODES)
INITS = ("sklearn", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")

_NO_DROP = no_dropout()  # None: inference never drops (see _workspace.no_dropout)
_UNCHANGED = nullcontext()  # reusable: it holds no state
_CODE_OF_LOSS = {name: code for code, name in _loss.NAMES.items()}


def loss_code(loss, binary):
    """The kernels' code of the estimator's ``loss`` name; ``binary`` selects the
    one-output-per-label form of the classification losses (two classes, multilabel)."""
    if binary and "binary_" + loss in _CODE_OF_LOSS:
        loss = "binary_" + loss
    return _CODE_OF_LOSS[loss]


def output_activation(code):
    """The name of the output activation that goes with loss ``code``."""
    return _act.OUTPUT_NAMES[_loss.OUTPUT_ACTIVATION[code]]


def per_hidden_layer(name, value, n_hidden, sizes):
    """``value`` as a list with one entry per hidden layer (a scalar is repeated)."""
    if not isinstance(value, list | tuple):
        return [value] * n_hidden
    if len(value) != n_hidden:
        raise ValueError(
            f"{name} has {len(value)} entries but the network has {n_hidden} hidden "
            f"layer(s) (hidden_layer_sizes={sizes!r}); give one value per hidden layer, "
            f"or a single value for all."
        )
    return list(value)


def hidden_activations(activation, n_hidden, sizes):
    """The activation name of each hidden layer, validated."""
    names = per_hidden_layer("activation", activation, n_hidden, sizes)
    for name in names:
        if not isinstance(name, str) or name not in _act.HIDDEN_CODES:
            raise ValueError(
                f"activation {name!r} is not supported; the allowed values are "
                f"{sorted(_act.HIDDEN_CODES)}."
            )
    return names


def _hashable(value):
    """``value`` as a cache key: lists become tuples; a value that cannot be one becomes
    a new object, equal to no other key (never a cache hit)."""
    if type(value) is str:
        return value
    if isinstance(value, list | tuple):
        value = tuple(value)
    try:
        hash(value)
    except TypeError:
        return object()
    return value


class Network:
    """A dense network whose weights and biases live in one flat vector.

    Parameters
    ----------
    units : sequence of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``.
    loss : int
        The kernels' loss code (``loss_code``); it fixes the output activation.
    params : ndarray of shape (n_params,), float32 or float64
        The flat parameter vector (scikit-learn's ``_pack`` order), owned from now on.
    """

    def __init__(self, units, loss, params):
        self.layout = Layout(units)
        self.loss = int(loss)
        if params.shape != (self.layout.n_params,):
            raise ValueError(
                f"a network of layer sizes {list(units)} has {self.layout.n_params} "
                f"parameters, got a vector of shape {params.shape}."
            )
        self.params = params
        self.coefs, self.intercepts = self.layout.views(params)

    # ---------------------------------------------------------------- construction
    @classmethod
    def initialized(cls, units, loss, hidden, init, random_state, dtype, activation):
        """A new network with initial weights drawn from ``random_state``.

        ``init="sklearn"`` is scikit-learn's scheme and draw order (same weights for the
        same seed); the others are the usual fan-based ones with zero biases. ``hidden``
        names the hidden activations (``activation``, the estimator's parameter, stands
        in for them in a network without hidden layers).
        """
        net = cls(units, loss, np.empty(Layout(units).n_params, dtype=dtype))
        for i, (coef, icpt) in enumerate(zip(net.coefs, net.intercepts, strict=True)):
            fan_in, fan_out = coef.shape
            if init == "sklearn":
                # scikit-learn's Glorot variant; its gain for logistic units is smaller.
                # A layer's weights follow the layer they feed (the output layer: the
                # last hidden one).
                feeds = hidden[min(i, len(hidden) - 1)] if hidden else activation
                bound = np.sqrt((2.0 if feeds == "logistic" else 6.0) / (fan_in + fan_out))
                coef[...] = random_state.uniform(-bound, bound, coef.shape)
                icpt[...] = random_state.uniform(-bound, bound, fan_out)
                continue
            coef[...] = _fan_draw(init, random_state, fan_in, fan_out)
            icpt[...] = 0.0
        return net

    @classmethod
    def from_arrays(cls, coefs, intercepts, loss):
        """A network holding copies of the weight matrices ``coefs`` and bias vectors
        ``intercepts`` (their dtype kept if float32 or float64, else float64)."""
        dtype = np.asarray(coefs[0]).dtype
        dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
        units = [np.shape(coefs[0])[0]] + [np.shape(c)[1] for c in coefs]
        layout = Layout(units)
        return cls(units, loss, layout.pack(coefs, intercepts, dtype))

    def with_params(self, params):
        """A network of the same shape and loss over ``params`` (a flat vector)."""
        return Network(self.layout.units, self.loss, params)

    def owns(self, coefs, intercepts):
        """Whether ``coefs`` and ``intercepts`` are still this network's views (not
        reassigned by the user). A plain loop: it runs on every predict."""
        params = self.params
        for v in (*coefs, *intercepts):
            if type(v) is not np.ndarray or v.base is not params:
                return False
        return True

    # ------------------------------------------------------------------- properties
    @property
    def units(self):
        return self.layout.units

    @property
    def dtype(self):
        return self.params.dtype

    @property
    def n_layers(self):
        return self.layout.n_layers

    @property
    def output_activation(self):
        return output_activation(self.loss)

    def act_codes(self, hidden, raw=False):
        """The kernels' activation code of each layer (entry 0, the input, unused), for
        the hidden activation names ``hidden``; ``raw``: the output layer's identity
        (its pre-activation values, the scores of ``decision_function``)."""
        codes = [_act.HIDDEN_CODES[a] for a in hidden]
        out = _act.IDENTITY if raw else _loss.OUTPUT_ACTIVATION[self.loss]
        return np.array([0, *codes, out], dtype=np.int64)

    def all_finite(self):
        return bool(np.isfinite(self.params).all())

    # -------------------------------------------------------------------- prediction
    def predict(self, X, activation, n_threads, raw=False):
        """Output-layer activations for validated X, shape (n_samples, n_outputs), or
        with ``raw`` the output layer's values before its activation.

        ``activation`` and ``n_threads`` are the estimator's parameters now (they may
        change after fit). Returns ``(out, finite)``: ``finite`` is False if dense X has
        a non-finite value (``out`` is then garbage; the caller names the problem).
        """
        dtype = self.params.dtype
        n, width = X.shape
        chunk = chunk_rows(n)
        # Buffers of its own per call (threads sharing a fitted model must not write
        # into the same memory); the plan (offsets; read only) is cached, since
        # one-row latency is mostly overheads.
        net, size, tiny, n_inputs, n_outputs = self.layout.cached(
            ("predict", chunk, _hashable(activation), raw, dtype),  # dtype: act_fns
            lambda: self._inference_plan(chunk, activation, raw),
        )
        if width != n_inputs:  # kernels do not check bounds
            raise ValueError(f"X has {width} features, but the network takes {n_inputs}.")
        if type(X) is np.ndarray and X.dtype == dtype and X.flags.c_contiguous:
            Xd, Xsp = readonly(X), no_sparse()  # kernel_X's common case, inlined
        else:
            Xd, Xsp = kernel_X(X, dtype)
        out = np.empty((n, n_outputs), dtype=dtype)
        if not n:
            return out, True
        if n > chunk:  # several chunks: perhaps in parallel (the same result either way)
            threads = _threads.budget(n_threads)
            if _threads.whole_data(n, chunk, self.layout.n_params, threads):
                act = np.empty((_par.SLOTS, size), dtype=dtype)
                xbuf = np.empty((_par.SLOTS, chunk * n_inputs if Xd.size else 0), dtype=dtype)
                with _threads.one_blas_thread(), _threads.numba_threads(threads):
                    return out, predict_rows_parallel(self.params, net, Xd, Xsp, kernel_rows(n),
                                                      chunk, act, xbuf, _NO_DROP, out,
                                                      np.empty(_par.SLOTS, dtype=np.bool_))
        act = np.empty(size, dtype=dtype)
        xbuf = np.empty(chunk * n_inputs if Xd.size else 0, dtype=dtype)
        with _UNCHANGED if tiny else _threads.one_blas_thread():
            return out, predict_rows(self.params, net, Xd, Xsp, kernel_rows(n), chunk, act,
                                     xbuf, _NO_DROP, out)

    def _inference_plan(self, chunk, activation, raw):
        """``(net, activation buffer size, tiny, input width, output width)`` of
        predicting ``chunk`` rows at a time; ``tiny``: products so small that BLAS does
        not split them (no thread bookkeeping for them)."""
        units = self.layout.units
        hidden = hidden_activations(
            activation, self.n_layers - 2, tuple(int(u) for u in units[1:-1])
        )
        largest = chunk * int(units.max()) ** 2
        # tiny products are all far below BLAS's small-matrix limit: no cut to look up
        net, size = self.layout.net(chunk, self.act_codes(hidden, raw), self.dtype,
                                    small=0 if largest < _threads.TINY_PRODUCT else None)
        return net, size, _threads.unsplit(largest), int(units[0]), int(units[-1])

    # ---------------------------------------------------------------------- pickling
    def __getstate__(self):
        return {"units": self.layout.units.tolist(), "loss": self.loss, "params": self.params}

    def __setstate__(self, state):
        params = state["params"]
        # Arrays the kernels write into must be writable (joblib.load(mmap_mode="r")
        # hands back read-only memmaps) and C-contiguous; the offsets are made afresh
        # (memmapped ones would type the kernels' tuple differently: a second compile).
        if not (params.flags.writeable and params.flags.c_contiguous):
            params = np.array(params)
        self.__init__(state["units"], state["loss"], params)


def _fan_draw(init, random_state, fan_in, fan_out):
    """Initial weights of Glorot's (``fan_in + fan_out``) or He's (``fan_in``) uniform or
    normal scheme."""
    shape = (fan_in, fan_out)
    if init == "glorot_uniform":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return random_state.uniform(-bound, bound, shape)
    if init == "glorot_normal":
        return random_state.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)
    if init == "he_uniform":
        bound = np.sqrt(6.0 / fan_in)
        return random_state.uniform(-bound, bound, shape)
    return random_state.normal(0.0, np.sqrt(2.0 / fan_in), shape)  # he_normal
