"""``python -m fastbp demo``: fastbp's and scikit-learn's MLPClassifier side by side on
digits, same hyperparameters and epochs; test accuracy and median fit times.

Times are only comparable within one run on one machine: the table reports ratios,
measured side by side in turns.
"""

import statistics
import warnings

from . import common


def plot_loss_curves(path, curves, epochs):
    plt = common.load_pyplot()
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


def _fit_in_turns(models, params, X, y, repeats):
    """First fits untimed, then ``repeats`` fits per model in turns; return the seconds of
    fastbp's first fit, each model's fit times and its last fitted estimator."""
    # fastbp's first fit compiles its kernels or loads them from the on-disk cache;
    # scikit-learn's pays its own first-call costs.
    first = {name: common.timed_fit(cls, params, X, y)[1] for name, cls in models.items()}
    times = {name: [] for name in models}
    fitted = {}
    for _ in range(repeats):
        for name, cls in models.items():
            fitted[name], seconds = common.timed_fit(cls, params, X, y)
            times[name].append(seconds)
    return first["fastbp"], times, fitted


def _print_table(header, rows):
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def demo(args):
    """Run the side-by-side demo; return an exit code."""
    if args.plot and common.pyplot_missing():
        return 1

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from .. import MLPClassifier as FastbpMLP

    epochs = 5 if args.quick else 30
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    params = common.fit_params((64,), 32, epochs)
    models = {"fastbp": FastbpMLP, "sklearn": SklearnMLP}
    X_train, X_test, y_train, y_test = common.digits_split()

    print(f"machine: {common.cores_text()} cores")
    print(
        f"digits: {len(X_train)} train / {len(X_test)} test rows; hidden (64,), adam, "
        f"batch 32, {epochs} epochs; median of {repeats} fit(s)"
    )
    with warnings.catch_warnings():
        # Stopping after a fixed number of epochs is the point here, not a problem.
        warnings.simplefilter("ignore", ConvergenceWarning)
        first_fit, times, fitted = _fit_in_turns(models, params, X_train, y_train, repeats)
    print(f"fastbp first fit (compile or cache load): {first_fit:.2f} s")

    medians = {name: statistics.median(t) for name, t in times.items()}
    rows = [
        (
            name,
            f"{fitted[name].score(X_test, y_test):.4f}",
            f"{medians[name]:.3f}",
            f"{medians['sklearn'] / medians[name]:.2f}x",
        )
        for name in models
    ]
    _print_table(("model", "test accuracy", "median fit (s)", "speed-up vs sklearn"), rows)

    if args.plot:
        curves = {name: est.loss_curve_ for name, est in fitted.items()}
        plot_loss_curves(args.plot, curves, epochs)
        print(f"loss curves saved to {args.plot}")
    return 0
