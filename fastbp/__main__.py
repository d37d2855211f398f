"""Command line of fastbp: ``python -m fastbp demo | bench | warmup`` (argparse only; the
tools live in ``fastbp._tools``, the warm-up in ``fastbp._warmup``).

``demo`` trains fastbp's and scikit-learn's MLPClassifier side by side on digits.
``bench`` measures fastbp's speed targets (per-epoch speed-ups over scikit-learn, training
FLOP rate, one-row latency, thread scaling, a busy core, cold start).
``warmup`` compiles every kernel into numba's on-disk cache (``fastbp.warm_up``).
"""

import argparse
import sys


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _workload_names(text):
    """``--only`` value: comma-separated workload names, each known, kept in table order."""
    from ._tools.bench import WORKLOADS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown) or repr(text)}; "
            f"choose from {', '.join(WORKLOADS)}"
        )
    return [name for name in WORKLOADS if name in names]


def _demo(args):
    from ._tools.demo import demo

    return demo(args)


def _bench(args):
    from ._tools.runner import bench

    return bench(args)


def _warmup(args):
    from . import _config, warm_up

    seconds = warm_up()
    where = "numba's on-disk cache" if _config.JIT_OPTIONS["cache"] else "this process only"
    print(f"kernels ready in {seconds:.1f} s ({where})")
    return 0


def _add_shared_options(p, quick, plot, repeats):
    """--quick, --plot and --repeats, with each command's help text."""
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--plot", metavar="OUT.png", help=plot)
    p.add_argument("--repeats", type=_positive_int, metavar="N", help=repeats)


def _add_demo(commands):
    p = commands.add_parser(
        "demo",
        help="train fastbp and scikit-learn side by side on digits",
        description="Train fastbp's and scikit-learn's MLPClassifier side by side on the "
        "digits data, same hyperparameters and epochs; print accuracy and median fit times.",
    )
    _add_shared_options(
        p,
        quick="fewer epochs and repeats (seconds)",
        plot="save both loss curves to this PNG file",
        repeats="timed fits per model, median reported (default 3, or 1 with --quick)",
    )
    p.set_defaults(func=_demo)


def _add_bench(commands):
    from ._tools.bench import WORKLOADS

    p = commands.add_parser(
        "bench",
        help="measure fastbp's speed targets against scikit-learn (and PyTorch)",
        description="Time fastbp against scikit-learn (and PyTorch CPU when installed) on "
        "the workloads of the speed targets, side by side in one run, interleaved repeats, "
        "medians; print the machine, the ratios and whether each target is met.",
    )
    _add_shared_options(
        p,
        quick="smaller data, fewer repeats, no cold start, no PyTorch: seconds, indicative only",
        plot="figure of the results, to this PNG",
        repeats="timed repeats per configuration (default 7, 5 for the wide net; 3 with --quick)",
    )
    p.add_argument(
        "--only",
        type=_workload_names,
        metavar="NAME[,NAME]",
        help=f"run only these workloads: {', '.join(WORKLOADS)}",
    )
    p.add_argument("--json", metavar="OUT.json", help="write every result to this JSON file")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument(
        "--details", action="store_true", help="also print every row's note and samples"
    )
    # Test-suite knob: every code path on tiny data, in seconds.
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_bench)


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="python -m fastbp",
        description="fastbp: compiled backpropagation behind scikit-learn's MLP interface.",
    )
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")
    _add_demo(commands)
    _add_bench(commands)
    p = commands.add_parser(
        "warmup",
        help="compile every kernel into numba's on-disk cache (once per install)",
        description="Compile fastbp's kernels for float64 and float32 into numba's on-disk "
        "cache, so that later processes (and Dask or joblib workers) load them instead of "
        "compiling.",
    )
    p.set_defaults(func=_warmup)
    return parser


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
