"""``python -m fastbp bench``: the run's sizes, the workloads in order, the machine and the
outputs (table, JSON, PNG).

Nothing here asserts a speed: targets are printed as met, missed or within noise, and the
exit code is 0 either way (the numbers are a report, not a gate).
"""

import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

from .._threads import usable_cores
from . import common
from .bench import DESCRIPTIONS, RUNNERS, WORKLOADS
from .ceilings import PeakRates
from .report import print_report


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run (full, --quick, or the test suite's tiny one)."""

    mode: str
    repeats: int  # interleaved timed repeats per configuration
    digits_epochs: int
    mc_rows: int  # rows of the 100-feature make_classification data
    mc_sklearn_rows: int  # leading rows scikit-learn trains on (time scaled per row)
    wide_rows: int  # rows of the 256-feature data of the wide net
    wide_sklearn_rows: int
    wide_repeats: int
    predict_calls: int  # one-row predictions per repeat (their median is one sample)
    cold_start: bool  # also time first fits with an empty NUMBA_CACHE_DIR
    start_repeats: int
    gemm_calls: int  # GEMMs per sample of the reference GFLOP/s and of the peak rate
    peak_size: int  # side of the square GEMM that measures the peak rate (ceilings)
    # Compare with PyTorch when it is installed. Off in --quick: on a busy 2-core machine
    # torch's 2 OpenMP threads stall on every small operation (measured: 0.04 to 4.7 s
    # per digits epoch), which alone can take minutes.
    torch: bool = True
    table_rows: int = 10_000  # rows of the real-table-shaped workload (90 features)
    table_epochs: int = 10  # epochs of each of its whole fits
    # The JAX peer on mc-b32, mc-b200 and wide. Off in --quick: each of them adds a JAX
    # process, its compile and its 1-thread epochs to the run; digits keeps its peer.
    jax_large: bool = True
    lbfgs_iterations: int = 10  # per L-BFGS fit (on mc_rows rows)
    predict_mc_rows: int = 100_000  # rows of the mc network's prediction


# The peak GEMM: OpenBLAS on the 2-core development machine reaches the same GFLOP/s at
# 512 as at 1024 (float64 43 at 1 thread, 83 at 2; float32 93, 180), in an eighth of
# the time; 256 is within 10 % of it.
FULL = Settings("full", 7, 20, 50_000, 10_000, 50_000, 5_000, 5, 1_000, True, 3, 25, 1024)
QUICK = Settings("quick", 3, 5, 10_000, 2_000, 4_096, 1_024, 3, 200, False, 1, 10, 512, False,
                 table_epochs=5, jax_large=False, lbfgs_iterations=5)
TINY = Settings("tiny", 1, 1, 400, 200, 512, 512, 1, 5, False, 1, 1, 256,
                table_rows=500, table_epochs=2, jax_large=False, lbfgs_iterations=2,
                predict_mc_rows=1_000)


def load_torch():
    """PyTorch if it can be imported: an optional side comparison."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def warm_fastbp():
    """A tiny fit in each dtype: kernels compiled or loaded, numba's BLAS loaded."""
    from .. import MLPClassifier

    X, y = common.digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in ("float64", "float32"):
            MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, batch_size=32).fit(
                X[:64].astype(dtype), y[:64]
            ).predict(X[:2].astype(dtype))


def run(settings, names, torch=None, log=print):
    """Run the workloads ``names``; return the report rows and each workload's seconds."""
    from sklearn.exceptions import ConvergenceWarning

    rows, seconds = [], {}
    peaks = PeakRates(settings.peak_size, settings.gemm_calls)  # shared by the workloads
    with warnings.catch_warnings():
        # Stopping after a fixed number of epochs is the point here, not a problem.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, name in enumerate(names, 1):
            log(f"[{i}/{len(names)}] {name}: {DESCRIPTIONS[name]}", end="", flush=True)
            start = time.perf_counter()
            rows += RUNNERS[name](settings, torch, peaks)
            seconds[name] = time.perf_counter() - start
            log(f" ({seconds[name]:.0f} s)", flush=True)
    return rows, seconds


def _bad_output_path(args):
    """An error message if --json or --plot has no directory to go to, else None."""
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path and not Path(path).resolve().parent.is_dir():
            return f"{option}: no directory {Path(path).resolve().parent}"
    return None


def _settings(args):
    settings = TINY if args.tiny else QUICK if args.quick else FULL
    if args.repeats is not None:
        settings = dataclasses.replace(
            settings, repeats=args.repeats, wide_repeats=args.repeats, start_repeats=args.repeats
        )
    return settings


def _print_mode(settings, torch, args):
    print(
        f"mode: {settings.mode}; ratios are medians of {settings.repeats} interleaved "
        f"repeats ({settings.wide_repeats} for wide), all libraries at "
        f"{usable_cores()} threads unless a row says otherwise"
    )
    if settings.mode != "full":
        print(
            f"note: {settings.mode} mode uses smaller data and fewer repeats: its numbers "
            "are indicative only; the cold start is skipped"
            + ("" if settings.jax_large else "; JAX only on digits")
        )
    if torch is None:
        why = (
            "--no-torch" if args.no_torch
            else f"not in {settings.mode} mode" if not settings.torch
            else "torch not installed"
        )
        print(f"PyTorch comparison: off ({why})")


def _write_json(path, settings, names, machine, wall, workload_seconds, rows):
    report = {
        "format": 2,  # 2: rows carry samples, verdict, peer and peer_ratio
        "mode": settings.mode,
        "settings": dataclasses.asdict(settings),
        "workloads": list(names),
        "machine": machine,
        "wall_seconds": wall,
        "workload_seconds": workload_seconds,
        "rows": [row.to_json() for row in rows],
    }
    Path(path).write_text(json.dumps(report, indent=1) + "\n")
    print(f"results saved to {path}")


def bench(args):
    """``python -m fastbp bench``: run, print the table, write JSON and PNG; exit code."""
    if args.plot and common.pyplot_missing():
        return 1
    error = _bad_output_path(args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    settings = _settings(args)
    names = args.only or WORKLOADS
    torch = load_torch() if settings.torch and not args.no_torch else None

    started = time.perf_counter()
    warm_fastbp()
    machine = common.machine_info(torch)
    common.print_machine(machine)
    _print_mode(settings, torch, args)
    machine["load_average"] = {"start": common.load_average()}
    rows, workload_seconds = run(settings, names, torch)
    wall = time.perf_counter() - started
    machine["load_average"]["end"] = common.load_average()
    print()
    print_report(rows, torch, details=args.details)
    load = machine["load_average"]
    if load["start"] is not None:
        print(
            f"load average (1 min): {load['start']:.2f} at start, {load['end']:.2f} at end "
            f"({machine['usable_cores']} cores); wall time {wall:.1f} s"
        )
    if args.json:
        _write_json(args.json, settings, names, machine, wall, workload_seconds, rows)
    if args.plot:
        from .plot import plot

        plot(args.plot, rows, f"fastbp bench ({settings.mode}, {usable_cores()} cores)")
        print(f"figure saved to {args.plot}")
    return 0
