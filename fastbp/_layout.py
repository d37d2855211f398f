"""Layer sizes -> offsets into the one flat parameter vector, and the workspace buffers.

The flat vector holds every weight matrix (row-major, fan_in x fan_out) followed by every
bias vector: the order of scikit-learn's ``_pack``, so an L-BFGS run sees the same vector
as scikit-learn's. Gradients and optimizer state use the same layout.
"""

import numpy as np

from . import _threads
from ._kernels import activations
from ._kernels.forward import Net


class Layout:
    """Offsets of the layers of one network in its flat vectors.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``.
    """

    def __init__(self, layer_units):
        self.units = np.asarray(layer_units, dtype=np.int64)
        n_layers = self.units.shape[0]
        fan_in, fan_out = self.units[:-1], self.units[1:]
        sizes = np.concatenate([fan_in * fan_out, fan_out])
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.coef_off = starts[: n_layers - 1].copy()
        self.icpt_off = starts[n_layers - 1 : 2 * (n_layers - 1)].copy()
        self.n_params = int(starts[-1])
        self.n_coefs = int(self.icpt_off[0])

    @property
    def n_layers(self):
        return int(self.units.shape[0])

    def views(self, flat):
        """Return ``(coefs, intercepts)``: lists of views into ``flat``."""
        coefs, intercepts = [], []
        for i in range(self.n_layers - 1):
            fi, fo = int(self.units[i]), int(self.units[i + 1])
            a = int(self.coef_off[i])
            coefs.append(flat[a : a + fi * fo].reshape(fi, fo))
            b = int(self.icpt_off[i])
            intercepts.append(flat[b : b + fo])
        return coefs, intercepts

    def pack(self, coefs, intercepts, dtype):
        """Copy lists of weight matrices and bias vectors into a new flat vector."""
        flat = np.empty(self.n_params, dtype=dtype)
        own_coefs, own_intercepts = self.views(flat)
        given = list(coefs) + list(intercepts)
        if len(given) != len(own_coefs) * 2:
            raise ValueError(
                f"Expected {len(own_coefs)} weight matrices and as many bias vectors for "
                f"layer sizes {self.units.tolist()}, got {len(coefs)} and {len(intercepts)}."
            )
        for dst, src in zip(own_coefs + own_intercepts, given, strict=True):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(
                    f"A weight array has shape {src.shape}, the network needs "
                    f"{dst.shape} (layer sizes {self.units.tolist()})."
                )
            dst[...] = src
        return flat

    def buffer_offsets(self, rows):
        """Offsets of each layer's ``rows x units`` block in one activation buffer.

        Layer 0 (the input) has no block: it is read from X. Returns ``(offsets, size)``.
        """
        block = rows * self.units
        block[0] = 0
        off = np.concatenate([[0], np.cumsum(block)[:-1]]).astype(np.int64)
        return off, int(block.sum())

    def net(self, rows, act_codes, dtype, cols=None, small=None, bind=True):
        """The description of the network the entry kernels take (the fields of
        ``_kernels.forward.Net``, as a plain tuple), for ``dtype`` arrays (float32 or
        float64), its products cut in ``cols`` columns per task (None: whole), and for
        BLAS's small-matrix kernels up to ``small`` multiply-adds (None: this process's
        BLAS, ``_threads.small_products``; 0: no cut).

        ``act_codes[l]`` is the activation code of layer ``l`` (entry 0 is unused; the
        last entry is the output activation); ``bind`` writes their functions' addresses
        (``bind_activations``), else they stay 0 until it is called, and no kernel may
        take the fields before. Returns ``(fields, buffer_size)``; ``Net(*fields)`` names
        them.
        """
        act_off, size = self.buffer_offsets(rows)
        codes = np.asarray(act_codes, dtype=np.int64)
        fns = np.zeros(codes.shape[0], dtype=np.int64)
        if small is None:
            small = _threads.small_products()
        net = Net(self.units, self.coef_off, self.icpt_off, act_off, codes, fns, cols, small)
        if bind:
            bind_activations(net, dtype)
        return tuple(net), size

    def cached(self, key, build):
        """``build()``, cached for the last ``key`` asked. Predict keeps its plan here
        (offsets, thread count): only read, so threads may share it."""
        cached = getattr(self, "_cached", None)
        if cached is None or cached[0] != key:
            cached = (key, build())
            self._cached = cached  # one assignment: a reader sees old or new, whole
        return cached[1]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_cached", None)
        return state


def bind_activations(fields, dtype):
    """Write into ``fields`` (a ``Net``'s, as ``Layout.net`` made them) the address of
    each layer's activation for ``dtype`` arrays, compiled or loaded from the cache if
    this process has not used it yet."""
    net = Net(*fields)
    for layer in range(1, net.act_codes.shape[0]):
        net.act_fns[layer] = activations.address(int(net.act_codes[layer]), dtype)
