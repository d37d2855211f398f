"""Activations and optimizers side by side, with validation-loss curves.

Trains fastbp.MLPClassifier on the digits data bundled with scikit-learn with each hidden
activation (adam) and each optimizer (relu), passing a held-out validation set with
``fit(..., X_val=, y_val=)`` so that every epoch records ``validation_loss_curve_``. Saves
a PNG of validation-loss curves, one small panel per configuration with the others of
its group in grey behind (several activations end within a few percent of each other,
too close to tell apart in one shared panel): the path given as first argument, else
``toolbox_comparison.png`` in the current directory. Needs matplotlib. Set
FASTBP_EXAMPLE_QUICK=1 for a few-second run.

    python examples/compare_toolbox.py [out.png]
"""

import os
import sys
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastbp import MLPClassifier

plt.switch_backend("Agg")  # files only, no display needed

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"
out = sys.argv[1] if len(sys.argv) > 1 else "toolbox_comparison.png"

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(
    X / 16.0, y, test_size=0.3, stratify=y, random_state=0
)
epochs = 8 if QUICK else 60
common = dict(hidden_layer_sizes=(64, 32), batch_size=32, max_iter=epochs, random_state=0,
              tol=0.0, n_iter_no_change=epochs + 1)
panels = {
    "hidden activation (adam, lr 0.001)": {
        name: dict(activation=name)
        for name in ("relu", "leaky_relu", "elu", "gelu", "softplus", "tanh", "logistic")
    },
    "optimizer (relu)": {
        "sgd (lr 0.05)": dict(solver="sgd", learning_rate_init=0.05),
        "adam (lr 0.001)": dict(solver="adam"),
        "adamw (lr 0.001, wd 0.01)": dict(solver="adamw"),
        "rmsprop (lr 0.001)": dict(solver="rmsprop"),
        "adagrad (lr 0.05)": dict(solver="adagrad", learning_rate_init=0.05),
        "adam + cosine + dropout 0.2": dict(learning_rate="cosine", dropout=0.2,
                                            learning_rate_init=0.003),
    },
}


dataset = f"digits ({len(X_train)} train / {len(X_val)} validation rows)"
print(f"{dataset}, {epochs} epochs")
curves = {}
for title, configs in panels.items():
    print(f"\n{title}")
    curves[title] = {}
    for label, params in configs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epochs on purpose
            clf = MLPClassifier(**common, **params).fit(
                X_train, y_train, X_val=X_val, y_val=y_val
            )
        curves[title][label] = curve = clf.validation_loss_curve_
        print(f"{label:30s} validation loss {curve[-1]:.4f}  "
              f"accuracy {clf.validation_scores_[-1]:.4f}")


def small_multiples(subfig, title, group):
    """One small panel per curve, the rest of its group in grey behind it: with seven
    curves within a few percent of each other, one shared panel is a tangle."""
    subfig.suptitle(f"{dataset}: {title}, validation log-loss per epoch")
    axes = subfig.subplots(2, 4, sharex=True, sharey=True)
    for ax in axes.flat[len(group):]:
        ax.set_visible(False)
    for ax, (label, curve) in zip(axes.flat, group.items(), strict=False):
        for other in group.values():
            ax.plot(range(1, len(other) + 1), other, color="0.82", linewidth=1)
        ax.plot(range(1, len(curve) + 1), curve, color="C0", linewidth=2)
        ax.set_title(f"{label}: {curve[-1]:.3f}", fontsize=9)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    columns = axes.shape[1]
    for ax in axes.flat[max(0, len(group) - columns):len(group)]:  # nothing below them
        ax.set_xlabel("epoch")
        ax.xaxis.set_tick_params(labelbottom=True)


fig = plt.figure(figsize=(13, 11), layout="constrained")
for subfig, (title, group) in zip(fig.subfigures(2, 1), curves.items(), strict=True):
    small_multiples(subfig, title, group)
fig.savefig(out, dpi=100)
print(f"\nsaved {out}")
