"""The bench's comparisons with fastbp's speed peers (``peers.py``), side by side with
the workload's other configurations, in the same interleaved turns, at one thread (and
JAX also at two).

Training: the JAX peer (a whole epoch jitted as one ``lax.scan``, in a subprocess pinned
to one core, and a second one on two cores against fastbp at 2 threads) trains the same
network from the same kind of initial weights over ``epochs`` shuffled epochs per
sample, as fastbp's fit does, and numpy's BLAS times the matrix products of one epoch of
the same shapes (``peers.GemmEpoch``): over fastbp's 1-thread epoch that is the
workload's own-shape GEMM fraction. Prediction: a 1-thread onnxruntime session of
fastbp's exported model. A peer that is not installed is left out and the row's note
says why; the table then shows "—" in its peer column.
"""

import statistics

from .._threads import usable_cores
from . import peers
from .ceilings import add_peer_ceiling, layer_units, training_flops
from .common import fit_params, fmt_seconds, median_call_seconds, timed
from .report import Row, append_note, per_repeat

JAX_TARGET = 1.25  # fastbp's epoch at least this much faster than JAX's, at 1 thread and 2
# own-shape GEMM fraction the issue asks for; digits' tiny products have none (report)
GEMM_TARGETS = {"mc-b32": 0.8, "mc-b200": 0.8, "wide": 0.9}
GEMM_KEY, JAX_KEY, JAX2_KEY, ONNX_KEY = "gemm-epoch@1", "jax@1", "jax@2", "onnxruntime@1"
FASTBP_KEY = "fastbp@1"  # the workload's own 1-thread fastbp configuration


def set_fastest_peer(row, fastbp, peer_samples, target):
    """Put the fastest of ``peer_samples`` (``{name: [seconds]}``, measured in turns with
    ``fastbp``'s samples) on ``row``: its name, fastbp's speed-up over it (medians and
    per repeat), ``target``; its samples join the row's."""
    name = min(peer_samples, key=lambda key: statistics.median(peer_samples[key]))
    samples = peer_samples[name]
    row.peer = name.split("@")[0]
    row.peer_ratio = statistics.median(samples) / statistics.median(fastbp)
    row.peer_samples = per_repeat(samples, fastbp)
    row.peer_target = target
    row.times[name] = samples


class TrainingPeers:
    """The peer configurations of one training workload, then its peer rows.

    ``configs`` go into the workload's ``interleave``; fastbp's side is the workload's
    own ``fastbp@1`` and ``fastbp@2`` configurations, on the same ``X`` (in the peers'
    dtype). ``stack`` (an ``ExitStack``) keeps the JAX processes alive until the
    workload is done. ``skip_jax``, a
    reason, leaves JAX out (``--quick`` on the large workloads); ``why_no_jax`` says why.
    With 2 usable cores or more, a second JAX process (``jax@2``) runs on two of them
    (XLA's default threads) against fastbp at 2 threads.
    """

    def __init__(self, stack, name, X, y, hidden, batch_size, epochs, skip_jax=None):
        from .. import MLPClassifier

        self.name, self.configs, self.dtype = name, {}, X.dtype.name
        units = layer_units(X, y, hidden)
        self.flops = training_flops(units, len(X))  # an epoch's, for the peer's ceiling
        gemm = peers.GemmEpoch(units, len(X), batch_size, X.dtype)
        self.configs[GEMM_KEY] = (lambda: timed(gemm)["wall"], None, 1)
        self.why_no_jax = skip_jax or peers.unavailable("jax")
        if self.why_no_jax is None:
            # one epoch gives the network its shapes and weights; the peer starts from them
            start = MLPClassifier(**fit_params(hidden, batch_size, 1), n_threads=1).fit(X, y)
            for key, threads in ((JAX_KEY, 1), (JAX2_KEY, 2))[:usable_cores()]:
                arguments = peers.jax_arguments(start, X, y, batch_size, epochs, threads)
                jax = stack.enter_context(peers.JaxEpochs(**arguments))
                self.configs[key] = (self._sampler(jax, epochs), None, threads)

    @staticmethod
    def _sampler(jax, epochs):
        return lambda: jax.sample(epochs)["wall"]

    def take(self, samples):
        """Move this comparison's samples out of the workload's ``samples``, and copy
        fastbp's ``fastbp@1`` (the thread-scaling row uses it too)."""
        self.samples = {key: samples.pop(key) for key in self.configs if key in samples}
        self.samples[FASTBP_KEY] = samples[FASTBP_KEY]

    def rows(self, speed, scaling, peaks):
        """Put the fastest peer and fastbp's ceiling over it (``add_peer_ceiling``, from
        ``peaks``, which hold this dtype's rates) on the workload's ``speed`` row
        (``take`` first); return the GEMM fraction row and, where JAX ran at 2 threads,
        the row comparing it with fastbp's 2-thread samples (those of the ``scaling``
        row, in this dtype)."""
        fastbp, gemm = self.samples[FASTBP_KEY], self.samples[GEMM_KEY]
        if JAX_KEY in self.samples:
            jax = self.samples[JAX_KEY]
            set_fastest_peer(speed, fastbp, {JAX_KEY: jax}, JAX_TARGET)
            speed.times[FASTBP_KEY] = fastbp
            add_peer_ceiling(speed, peaks, self.dtype, self.flops, jax, gemm)
        else:
            append_note(speed, f"jax peer not measured: {self.why_no_jax}")
        rows = [self._gemm_row(fastbp, gemm)]
        if JAX2_KEY in self.samples:
            rows.append(self._jax_two_threads(scaling.times["fastbp@2"]))
        return rows

    def _jax_two_threads(self, fastbp):
        """JAX's epoch over fastbp's, both at 2 threads, measured in turns."""
        jax = self.samples[JAX2_KEY]
        return Row(
            self.name,
            f"{self.name} vs jax 2 thr",
            "speed-up",
            statistics.median(jax) / statistics.median(fastbp),
            JAX_TARGET,
            fmt_seconds(statistics.median(fastbp)) + "/epoch (2 thr)",
            "jax " + fmt_seconds(statistics.median(jax)) + "/epoch (2 thr)",
            {"fastbp@2": fastbp, JAX2_KEY: jax},
            "s/epoch",
            per_repeat(jax, fastbp),
            note=f"JAX (jit + lax.scan epoch) in a process on this process's cores, XLA's "
            f"default threads; fastbp n_threads=2; {self.dtype}",
        )

    def _gemm_row(self, fastbp, gemm):
        """numpy's time for the epoch's products over fastbp's epoch, at 1 thread."""
        fraction = statistics.median(gemm) / statistics.median(fastbp)
        return Row(
            self.name,
            f"{self.name} GEMM fraction",
            "fraction",
            fraction,
            GEMM_TARGETS.get(self.name),
            fmt_seconds(statistics.median(fastbp)) + "/epoch (1 thr)",
            "GEMM " + fmt_seconds(statistics.median(gemm)) + "/epoch",
            {FASTBP_KEY: fastbp, GEMM_KEY: gemm},
            "s/epoch",
            per_repeat(gemm, fastbp),
            note=f"numpy's time for the matrix products of one epoch over fastbp's epoch, "
            f"both at 1 thread, {self.dtype}",
        )


def onnxruntime_config(estimator, x, calls):
    """The 1-thread onnxruntime configuration of a predict workload (``{}`` and the reason
    when onnxruntime is missing): the median of ``calls`` calls on ``x`` per sample."""
    why = peers.unavailable("onnxruntime")
    if why is not None:
        return {}, why
    run = peers.onnxruntime_peer(estimator, threads=1)
    return {ONNX_KEY: (lambda: median_call_seconds(run, x, calls), None, 1)}, None


def predict_peer(speed, samples, why_not, target):
    """Put onnxruntime on a predict workload's ``speed`` row against fastbp at 1 thread."""
    if ONNX_KEY in samples:
        set_fastest_peer(speed, samples["fastbp@1"], {ONNX_KEY: samples.pop(ONNX_KEY)}, target)
        speed.times["fastbp@1"] = samples["fastbp@1"]
    else:
        append_note(speed, f"onnxruntime peer not measured: {why_not}")
