"""Command line of fastbp: ``python -m fastbp demo [--quick] [--plot out.png] [--repeats N]``
, ``python -m fastbp bench [--quick] [--only NAME,...] [--json out.json] [--plot out.png]``
and ``python -m fastbp warmup``.

``demo`` trains fastbp's and scikit-learn's MLPClassifier side by side on the digits data
bundled with scikit-learn, with the same hyperparameters and the same number of epochs, and
prints their test accuracy and median fit time. Times are only comparable within one run
on one machine: the table reports ratios, measured side by side.

``bench`` measures the speed targets of fastbp (per-epoch speed-ups over scikit-learn,
training FLOP rate, one-row latency, thread scaling, cold start): see ``fastbp._bench``.

``warmup`` compiles every kernel into numba's on-disk cache (``fastbp.warm_up``).
"""

import argparse
import os
import statistics
import sys
import time
import warnings

from ._cli import load_pyplot, pyplot_missing

SEED = 0


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _workload_names(text):
    """``--only`` value: comma-separated workload names, each known, kept in table order."""
    from ._bench import WORKLOADS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown) or repr(text)}; "
            f"choose from {', '.join(WORKLOADS)}"
        )
    return [name for name in WORKLOADS if name in names]


def _cores():
    """Core count for the report: the machine's, and the usable ones if fewer."""
    total = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return f"{total}" if usable == total else f"{total} ({usable} usable by this process)"


def _digits():
    """Digits scaled to [0, 1], stratified 75/25 train/test split with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=SEED)


def _timed_fit(cls, params, X, y):
    est = cls(**params)
    start = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - start


def _plot(path, curves, epochs):
    plt = load_pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    # The two curves may coincide: draw the second one dashed so both stay visible.
    for (name, curve), style in zip(curves.items(), ("-", "--"), strict=False):
        ax.plot(range(1, len(curve) + 1), curve, style, linewidth=2, label=name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"digits, hidden (64,), adam, batch 32, {epochs} epochs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def demo(args):
    """Run the side-by-side demo; return an exit code."""
    if args.plot and pyplot_missing():
        return 1

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from . import MLPClassifier as FastbpMLP

    epochs = 5 if args.quick else 30
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    params = dict(
        hidden_layer_sizes=(64,),
        solver="adam",
        batch_size=32,
        random_state=SEED,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,  # never stop early: both run exactly `epochs` epochs
    )
    models = {"fastbp": FastbpMLP, "sklearn": SklearnMLP}
    X_train, X_test, y_train, y_test = _digits()

    print(f"machine: {_cores()} cores")
    print(
        f"digits: {len(X_train)} train / {len(X_test)} test rows; hidden (64,), adam, "
        f"batch 32, {epochs} epochs; median of {repeats} fit(s)"
    )
    with warnings.catch_warnings():
        # Stopping after a fixed number of epochs is the point here, not a problem.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Untimed first fits: fastbp's compiles its kernels or loads them from the
        # on-disk cache; scikit-learn's pays its own first-call costs.
        _, first_fit = _timed_fit(FastbpMLP, params, X_train, y_train)
        _timed_fit(SklearnMLP, params, X_train, y_train)
        print(f"fastbp first fit (compile or cache load): {first_fit:.2f} s")

        times = {name: [] for name in models}
        fitted = {}
        for _ in range(repeats):  # interleaved, so that machine noise hits both alike
            for name, cls in models.items():
                fitted[name], seconds = _timed_fit(cls, params, X_train, y_train)
                times[name].append(seconds)

    medians = {name: statistics.median(t) for name, t in times.items()}
    header = ("model", "test accuracy", "median fit (s)", "speed-up vs sklearn")
    rows = [
        (
            name,
            f"{fitted[name].score(X_test, y_test):.4f}",
            f"{medians[name]:.3f}",
            f"{medians['sklearn'] / medians[name]:.2f}x",
        )
        for name in models
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    if args.plot:
        _plot(args.plot, {name: est.loss_curve_ for name, est in fitted.items()}, epochs)
        print(f"loss curves saved to {args.plot}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastbp",
        description="fastbp: compiled backpropagation behind scikit-learn's MLP interface.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    p = commands.add_parser(
        "demo",
        help="train fastbp and scikit-learn side by side on digits",
        description="Train fastbp's and scikit-learn's MLPClassifier side by side on the "
        "digits data, same hyperparameters and epochs; print accuracy and median fit times.",
    )
    p.add_argument("--quick", action="store_true", help="fewer epochs and repeats (seconds)")
    p.add_argument("--plot", metavar="OUT.png", help="save both loss curves to this PNG file")
    p.add_argument(
        "--repeats",
        type=_positive_int,
        metavar="N",
        help="timed fits per model, median reported (default 3, or 1 with --quick)",
    )
    p.set_defaults(func=demo)

    p = commands.add_parser(
        "bench",
        help="measure fastbp's speed targets against scikit-learn (and PyTorch)",
        description="Time fastbp against scikit-learn (and PyTorch CPU when installed) on "
        "the workloads of the speed targets, side by side in one run, interleaved repeats, "
        "medians; print the machine, the ratios and whether each target is met.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller data, fewer repeats, no cold start, no PyTorch: about a minute, "
        "indicative only",
    )
    p.add_argument(
        "--only",
        type=_workload_names,
        metavar="NAME[,NAME]",
        help="run only these workloads: digits64, digits32, mc-b32, mc-b200, wide, predict, start",
    )
    p.add_argument("--json", metavar="OUT.json", help="write every result to this JSON file")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart of the ratios, to this PNG")
    p.add_argument(
        "--repeats",
        type=_positive_int,
        metavar="N",
        help="timed repeats per configuration (default 7, 5 for the wide net; 3 with --quick)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    # Test-suite knob: every code path on tiny data, in seconds.
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_bench_command)

    p = commands.add_parser(
        "warmup",
        help="compile every kernel into numba's on-disk cache (once per install)",
        description="Compile fastbp's kernels for float64 and float32 into numba's on-disk "
        "cache, so that later processes (and Dask or joblib workers) load them instead of "
        "compiling.",
    )
    p.set_defaults(func=_warmup_command)
    return parser


def _warmup_command(args):
    from . import _config, warm_up

    seconds = warm_up()
    where = "numba's on-disk cache" if _config.JIT_OPTIONS["cache"] else "this process only"
    print(f"kernels ready in {seconds:.1f} s ({where})")
    return 0


def _bench_command(args):
    from ._bench import bench

    return bench(args)


def main(argv=None):
    """Entry point of ``python -m fastbp``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
