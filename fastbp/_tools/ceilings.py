"""Ceilings: the largest speed-up over scikit-learn, or over a peer library, that the
same arithmetic could reach on this machine, from the matrix-product FLOPs of the work
and a GEMM peak timed in the run.

It is an upper bound, not an estimate: the work it leaves out (bias, activation, loss,
optimizer, small-matrix inefficiency) only adds time. A target above it cannot be met here
by code whose products run no faster than this BLAS's large square product (the peak is
the BLAS's, not the core's floating-point peak, which a faster GEMM could approach).
"""

import math
import statistics
import time

import numpy as np

from .._threads import usable_cores
from .common import SEED
from .report import append_note

WIDE_BATCH = 512  # rows of the reference GEMM: the wide workload's batch


def training_flops(layer_units, n_rows):
    """Floating-point operations of one epoch of training, counted analytically.

    Per layer of ``fan_in x fan_out`` weights and per row: forward ``2 fan_in fan_out``
    (the matrix product), weight gradient ``2 fan_in fan_out``, and the delta handed to the
    previous layer ``2 fan_in fan_out`` except for the first layer (no delta is computed
    for the input). Element-wise work (bias, activation, loss, Adam) is not counted: it is
    under 1 % here and counting it would flatter the rate.
    """
    products = _products(layer_units)
    return 2 * n_rows * (2 * sum(products) + sum(products[1:]))


def _products(layer_units):
    return [a * b for a, b in zip(layer_units[:-1], layer_units[1:], strict=False)]


def validation_rows(n_rows, fraction):
    """Rows scikit-learn's early stopping holds out of ``n_rows`` for its validation
    score: ``fraction`` of them rounded up (``train_test_split``'s test size)."""
    return math.ceil(fraction * n_rows)


def fit_flops(layer_units, n_train, n_validation, epochs):
    """Floating-point operations of a whole fit of ``epochs`` epochs on ``n_train`` rows
    that scores ``n_validation`` held-out rows after each epoch (a forward pass,
    ``2 fan_in fan_out`` per layer and row), as early stopping does."""
    forward = 2 * n_validation * sum(_products(layer_units))
    return epochs * (training_flops(layer_units, n_train) + forward)


def gemm_seconds(A, B, out, calls):
    """Seconds per ``A @ B`` (numpy's BLAS), averaged over ``calls`` calls into ``out``."""
    start = time.perf_counter()
    for _ in range(calls):
        np.dot(A, B, out=out)
    return (time.perf_counter() - start) / calls


def gemm_operands(dtype=np.float32, rows=WIDE_BATCH, inner=1024, cols=1024):
    """Random operands of the reference GEMM, ``(rows x inner) @ (inner x cols)``."""
    rng = np.random.default_rng(SEED)
    A = rng.random((rows, inner), dtype=dtype)
    B = rng.random((inner, cols), dtype=dtype)
    return A, B, np.empty((rows, cols), dtype=dtype)


class PeakRates:
    """The machine's peak matrix-product rate per (dtype, thread count), measured once
    per bench run.

    A sample is the mean time of ``calls`` square GEMMs ``(size x size) @ (size x size)``
    (numpy's BLAS), at 1 thread and at ``usable_cores()``. The first fit workload of a
    dtype times them in turns with its own configurations (``configs``, then
    ``collect``); later workloads of that dtype reuse those samples. Their
    configurations are keyed ``peak <dtype>@<threads>`` (``key``), so that a workload can
    time both dtypes' in one run of turns.
    """

    def __init__(self, size, calls):
        self.size, self.calls = size, calls
        self.samples = {}  # (dtype name, threads) -> [seconds per GEMM]

    @staticmethod
    def thread_counts():
        return sorted({1, usable_cores()})

    @staticmethod
    def key(dtype, n_threads):
        """The configuration's and the samples' key of ``dtype``'s peak at ``n_threads``."""
        return f"peak {np.dtype(dtype).name}@{n_threads}"

    def configs(self, dtype):
        """Configurations for ``interleave`` (keys ``key``) of the rates of ``dtype`` not
        measured yet in this run."""
        dtype = np.dtype(dtype).name
        missing = [n for n in self.thread_counts() if (dtype, n) not in self.samples]
        if not missing:
            return {}
        A, B, out = gemm_operands(dtype, self.size, self.size, self.size)
        calls = self.calls

        def sample():
            return gemm_seconds(A, B, out, calls)

        return {self.key(dtype, n): (sample, None, n) for n in missing}

    def collect(self, dtype, samples):
        """Move ``dtype``'s peak samples out of ``interleave``'s result into the cache."""
        for n in self.thread_counts():
            if self.key(dtype, n) in samples:
                self.samples[np.dtype(dtype).name, n] = samples.pop(self.key(dtype, n))

    def times(self, dtype):
        """``dtype``'s samples, keyed as ``key`` (``collect`` first)."""
        dtype = np.dtype(dtype).name
        return {self.key(dtype, n): self.samples[dtype, n] for n in self.thread_counts()}

    def gflops(self, dtype, n_threads):
        """Median GFLOP/s of the peak GEMM (``collect`` first)."""
        seconds = statistics.median(self.samples[np.dtype(dtype).name, n_threads])
        return 2 * self.size**3 / seconds / 1e9


def speedup_ceiling(reference_seconds, flops, gflops):
    """The largest speed-up over a reference run of ``reference_seconds`` that any
    implementation doing ``flops`` floating-point operations can reach at ``gflops``."""
    return reference_seconds * gflops * 1e9 / flops


def ceiling_note(value, target, ceiling, ceiling_1thread):
    """What a speed-up row's ceilings say about its value and target ("" if nothing)."""
    notes = []
    if target is not None and target > ceiling:
        notes.append(
            f"target {target:g}x is above this machine's ceiling {ceiling:.1f}x "
            "(FLOPs at peak GEMM rate): it takes products faster than this BLAS's peak"
        )
    elif target is not None and target > ceiling_1thread:
        notes.append(
            f"target {target:g}x is above the 1-thread ceiling {ceiling_1thread:.1f}x "
            "(FLOPs at 1 thread's peak GEMM rate): reaching it takes more than one core"
        )
    if value > ceiling:
        # Faster than the peak rate allows: the GEMM samples were slowed, or a FLOP
        # count no longer matches the arithmetic.
        notes.append(f"the speed-up is above the ceiling {ceiling:.1f}x: check the peak")
    return "; ".join(notes)


def add_ceiling(row, peaks, dtype, flops, per="epoch", one_thread=False):
    """Set the ceilings of a fit workload's speed-up row and append them to its note.

    The ceiling is scikit-learn's median time per ``per`` (an epoch, a whole fit) over
    its ``flops`` (``training_flops``, ``fit_flops``) at the peak GEMM rate: the best of
    the rates at 1 and at ``usable_cores()`` threads (a run allowed two threads may use
    one; on a busy machine the 2-thread GEMM can be the slower). It is an upper bound,
    not a prediction: it ignores bias, activation, loss and optimizer work and the
    inefficiency of small matrix products, all of which only add time.
    ``ceiling_1thread`` uses the 1-thread rate: fastbp runs small networks on one BLAS
    thread (``fastbp._threads.policy``). A workload that runs at one thread by
    definition (``one_thread``) has the 1-thread ceiling for both.
    """
    row.times.update(peaks.times(dtype))
    rates = {n: peaks.gflops(dtype, n) for n in peaks.thread_counts()}
    if one_thread:
        rates = {1: rates[1]}
    reference = statistics.median(row.times["sklearn"])
    row.ceiling = speedup_ceiling(reference, flops, max(rates.values()))
    row.ceiling_1thread = speedup_ceiling(reference, flops, rates[1])
    at = ", ".join(f"{rate:.1f} at {n} thr" for n, rate in sorted(rates.items(), reverse=True))
    notes = [
        f"ceiling from {flops / 1e9:.3g} GFLOP/{per} at the peak {np.dtype(dtype).name} "
        f"GEMM rate ({at}, GFLOP/s)",
        ceiling_note(row.value, row.target, row.ceiling, row.ceiling_1thread),
    ]
    append_note(row, *notes)


def add_peer_ceiling(row, peaks, dtype, flops, peer_seconds, own_shape_seconds):
    """Set the ceiling of fastbp's 1-thread speed-up over the peer on a training row
    (``vs_peers.set_fastest_peer`` first) and say on its note what it implies.

    ``row.peer_ceiling`` is the peer's median epoch (``peer_seconds``) over the epoch's
    ``flops`` at this run's 1-thread peak GEMM rate in ``dtype``: the most any code
    doing the same arithmetic on one core with this BLAS could gain over the peer, as
    ``add_ceiling`` is over scikit-learn (the peak is a large square product's, not the
    core's floating-point peak, which a faster GEMM could approach). The note adds the
    same ratio against numpy's own time for the epoch's matrix products of these shapes
    (``own_shape_seconds``, the GEMM fraction row's samples): what an epoch doing nothing
    but this BLAS's products would gain.
    """
    row.times.update(peaks.times(dtype))
    rate = peaks.gflops(dtype, 1)
    peer = statistics.median(peer_seconds)
    row.peer_ceiling = speedup_ceiling(peer, flops, rate)
    own_shape = peer / statistics.median(own_shape_seconds)
    notes = [
        f"ceiling over {row.peer} {row.peer_ceiling:.2f}x from {flops / 1e9:.3g} "
        f"GFLOP/epoch at the 1-thread peak {np.dtype(dtype).name} GEMM rate "
        f"({rate:.1f} GFLOP/s); {own_shape:.2f}x for an epoch of numpy's products of "
        "these shapes alone"
    ]
    target = row.peer_target
    if target is not None and target > row.peer_ceiling:
        notes.append(f"peer target {target:g}x is above that ceiling: on one core it takes "
                     "products faster than this BLAS's peak")
    elif target is not None and target > own_shape:
        notes.append(f"peer target {target:g}x is above the own-shape ratio: it takes "
                     "faster products than this BLAS's on these shapes")
    append_note(row, *notes)


def layer_units(X, y, hidden):
    """Layer sizes of a classifier of ``hidden`` layers on (X, y), as scikit-learn's."""
    n_classes = len(np.unique(y))
    return [X.shape[1], *hidden, n_classes if n_classes > 2 else 1]
