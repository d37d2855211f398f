"""The bench's rows and what they say: a measured value against its target, the verdict
drawn from the interleaved samples, and the printed table with a key to its marks."""

import dataclasses
import statistics

from .common import fmt_seconds

# A configuration whose slowest sample took this many times its fastest marks its row as
# noisy: another process took the cores for part of the run, the median may be off.
NOISY_SPREAD = 2.0
MISSING = "—"  # a cell with nothing measured
# metric -> (direction of the target, unit suffix of the target cell)
METRICS = {
    "speed-up": (">=", "x"),
    "fraction": (">=", ""),
    "seconds": ("<=", " s"),
    "slowdown": ("<=", "x"),
}


def verdict(samples, target, comparison):
    """"met" or "missed" only when every sample lies on one side of ``target`` (the
    smallest and the largest included); "within noise" when they straddle it: the run
    cannot tell (two runs minutes apart once read 4.44x missed, then 8.21x met);
    "report" when there is no target."""
    if target is None:
        return "report"
    ok = [s <= target if comparison == "<=" else s >= target for s in samples]
    if all(ok):
        return "met"
    return "within noise" if any(ok) else "missed"


@dataclasses.dataclass
class Row:
    """One line of the report: a measured value against its target.

    ``value`` is a ratio (``metric`` "speed-up", "fraction", "slowdown") or a time in
    seconds ("seconds"), computed from the medians; ``samples`` holds the same value per
    interleaved repeat (its verdict comes from them); ``times`` the raw samples of every
    configuration that went into it (seconds, see ``unit``). The speed-up rows of the fit
    workloads also carry their ``ceiling`` and ``ceiling_1thread`` (see
    ``ceilings.add_ceiling``). ``peer`` and ``peer_ratio`` are the fastest other library
    measured on the workload and fastbp's speed-up over it (None: no peer measured), at
    one thread (or as ``peer_setting`` says); ``peer_samples`` holds that speed-up per
    repeat and ``peer_target`` the speed-up the issue asks for (``peer_verdict`` as
    ``verdict``); ``peer_ceiling`` the most any code doing the same FLOPs could gain
    over the peer at one thread's peak GEMM rate (``ceilings.add_peer_ceiling``).
    """

    workload: str
    label: str
    metric: str
    value: float
    target: float | None
    fastbp: str  # table cells, formatted
    reference: str
    times: dict
    unit: str
    samples: list
    torch_ratio: float | None = None
    note: str = ""
    ceiling: float | None = None
    ceiling_1thread: float | None = None
    peer: str | None = None
    peer_ratio: float | None = None
    peer_samples: list | None = None
    peer_target: float | None = None
    peer_setting: str = "1 thr"  # how both sides ran for the peer column
    peer_ceiling: float | None = None  # the most the same FLOPs could gain over the peer

    @property
    def comparison(self):
        return METRICS[self.metric][0]

    @property
    def verdict(self):
        return verdict(self.samples, self.target, self.comparison)

    @property
    def met(self):
        """True / False when the samples separate from the target, else None."""
        return {"met": True, "missed": False}.get(self.verdict)

    @property
    def peer_verdict(self):
        """``verdict`` of the speed-up over the fastest peer (None: no peer measured)."""
        if self.peer is None:
            return None
        return verdict(self.peer_samples, self.peer_target, ">=")

    @property
    def within_noise(self):
        return self.verdict == "within noise"

    @property
    def spread(self):
        """Largest max/min ratio of the samples of one configuration (1.0: no noise)."""
        return max(max(t) / min(t) for t in self.times.values())

    def to_json(self):
        data = dataclasses.asdict(self)
        data["medians"] = {key: statistics.median(t) for key, t in self.times.items()}
        for name in ("comparison", "verdict", "met", "within_noise", "spread", "peer_verdict"):
            data[name] = getattr(self, name)
        return data


def append_note(row, *texts):
    """Add the non-empty ``texts`` to ``row``'s note, "; " between parts."""
    row.note = "; ".join(filter(None, [row.note, *texts]))


def per_repeat(numerator, denominator):
    """The ratio of two configurations' samples repeat by repeat (taken in turns, so
    the i-th samples of both saw the same machine)."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


# ------------------------------------------------------------------------------ cells
def fmt_value(row):
    if row.metric == "seconds":
        return MISSING  # the value is the fastbp column
    if row.metric == "fraction":
        return f"{row.value:.2f}"
    return f"{row.value:.2f}x"


def fmt_ceiling(row):
    if row.ceiling is None:
        return MISSING
    return f"{row.ceiling:.1f}x ({row.ceiling_1thread:.1f}x)"


def fmt_target(row):
    if row.target is None:
        return MISSING
    comparison, suffix = METRICS[row.metric]
    return f"{comparison} {row.target:g}{suffix}"


def fmt_result(row):
    return row.verdict + (" (noisy)" if row.spread > NOISY_SPREAD else "")


def fmt_peer(row):
    """fastbp's speed-up over the fastest peer, who is ahead, and the verdict."""
    if row.peer is None:
        return MISSING
    ahead = "fastbp" if row.peer_ratio >= 1 else row.peer
    target = "" if row.peer_target is None else f" >= {row.peer_target:g}x"
    ratio = f"{row.peer_ratio:.2f}x vs {row.peer} {row.peer_setting}"
    ceiling = "" if row.peer_ceiling is None else f" (ceiling {row.peer_ceiling:.2f}x)"
    return f"{ratio}, {ahead} ahead:{target} {row.peer_verdict}{ceiling}"


# ------------------------------------------------------------------------------ table
def table_lines(rows, torch):
    """The table: a header and one line per row, columns aligned."""
    header = ["workload", "fastbp", "reference", "ratio", "ceiling (1 thr)", "target", "result"]
    header += ["vs torch"] if torch is not None else []
    header.append("fastest peer")
    lines = [header]
    for row in rows:
        cells = [row.label, row.fastbp, row.reference, fmt_value(row), fmt_ceiling(row)]
        cells += [fmt_target(row), fmt_result(row)]
        if torch is not None:
            cells.append(MISSING if row.torch_ratio is None else f"{row.torch_ratio:.2f}x")
        cells.append(fmt_peer(row))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines]


# (test on the rows, line of the key): a key line is printed when its mark is on screen
KEY = [
    (lambda r: r.reference.endswith("*"),
     "*: sklearn trained on a leading subset of the rows, its time scaled per row"),
    (lambda r: r.ceiling is not None,
     "ceiling (1 thr): the most any code doing the same FLOPs could gain over sklearn at "
     "this run's\n  peak GEMM rate (at 1 thread's peak); an upper bound"),
    (lambda r: r.target is not None,
     "met / missed: every repeat's value on that side of the target; within noise: "
     "repeats on both sides"),
    (lambda r: r.target is None, "report: no target, shown for information"),
    (lambda r: r.spread > NOISY_SPREAD,
     f"(noisy): a configuration's slowest sample took over {NOISY_SPREAD:g}x its fastest: "
     "the machine was busy"),
    (lambda r: r.metric == "slowdown", "slowdown: fastbp's time with a core taken over "
     "its quiet 1-thread time (lower is better)"),
    (lambda r: r.peer is not None and r.peer_setting == "1 thr",
     "fastest peer: fastbp's speed-up over the fastest peer library (JAX, onnxruntime), "
     "both at 1 thread,\n  which of the two is ahead, and the verdict against the peer "
     "target"),
    (lambda r: r.peer_ceiling is not None,
     "(ceiling ...x) in the peer column: the most any code doing the epoch's FLOPs could "
     "gain over the peer\n  at this run's 1-thread peak GEMM rate; a peer target above it "
     "takes products faster than the BLAS's peak"),
    (lambda r: r.peer_setting == "fresh process" and r.peer is not None,
     "vs jax fresh process: JAX's import + jit + first epoch over fastbp's start-up, "
     "each in fresh unpinned\n  processes taking turns (cold: no persistent compilation "
     "cache; warm: the cache a run of the same start-up left)"),
    (lambda r: r.metric == "fraction" and "GEMM" in r.label,
     "GEMM fraction: numpy's time for the matrix products of one epoch of the same shapes "
     "over fastbp's\n  epoch time, both at 1 thread (1.0: nothing but the products)"),
    (lambda r: True, f"{MISSING}: nothing to show (fastest peer: no peer library measured)"),
]


def key_lines(rows, torch):
    """What every mark in the table means, for the marks that are in it."""
    lines = [text for test, text in KEY if any(test(row) for row in rows)]
    if torch is not None:
        lines.append("vs torch: PyTorch's time over fastbp's (above 1: fastbp is faster)")
    return lines


def detail_lines(rows):
    """Per row: its note, its value per repeat and each configuration's samples."""
    lines = []
    for row in rows:
        values = ", ".join(f"{v:.3g}" for v in row.samples)
        lines.append(f"{row.label}: per repeat {values}" + (f"; {row.note}" if row.note else ""))
        for key, times in row.times.items():
            cells = ", ".join(fmt_seconds(t) for t in times)
            lines.append(f"  {key} ({row.unit}): {cells}")
    return lines


def print_report(rows, torch, details=False):
    lines = table_lines(rows, torch) + key_lines(rows, torch)
    if details:
        lines += ["", "details:", *detail_lines(rows)]
    elif rows:
        lines.append("--details: every row's note and samples")
    print("\n".join(lines))
