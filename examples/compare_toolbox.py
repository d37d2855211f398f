"""Activations and optimizers side by side, with validation-loss curves.

Trains fastbp.MLPClassifier on the digits data bundled with scikit-learn with each hidden
activation (adam) and each optimizer (relu), passing a held-out validation set with
``fit(..., X_val=, y_val=)`` so that every epoch records ``validation_loss_curve_``. Saves
a PNG with two panels of validation-loss curves: the path given as first argument, else
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

fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
print(f"digits: {len(X_train)} train / {len(X_val)} validation rows, {epochs} epochs")
for ax, (title, configs) in zip(axes, panels.items(), strict=True):
    print(f"\n{title}")
    for label, params in configs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epochs on purpose
            clf = MLPClassifier(**common, **params).fit(
                X_train, y_train, X_val=X_val, y_val=y_val
            )
        curve = clf.validation_loss_curve_
        ax.plot(range(1, len(curve) + 1), curve, label=label)
        print(f"{label:30s} validation loss {curve[-1]:.4f}  "
              f"accuracy {clf.validation_scores_[-1]:.4f}")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
axes[0].set_ylabel("validation log-loss")
fig.tight_layout()
fig.savefig(out, dpi=100)
print(f"\nsaved {out}")
