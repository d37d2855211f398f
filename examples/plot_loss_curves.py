"""Training loss per epoch of fastbp.MLPClassifier with the sgd and adam solvers.

Fits both on the digits data bundled with scikit-learn and saves their ``loss_curve_`` to
a PNG: the path given as first argument, else ``loss_curves.png`` in the current
directory. Needs matplotlib. Set FASTBP_EXAMPLE_QUICK=1 for a few-second run.

    python examples/plot_loss_curves.py [out.png]
"""

import os
import sys
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from fastbp import MLPClassifier

plt.switch_backend("Agg")  # files only, no display needed

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"
out = sys.argv[1] if len(sys.argv) > 1 else "loss_curves.png"

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixels in [0, 1]
epochs = 10 if QUICK else 100
solvers = {
    "sgd (momentum 0.9, lr 0.01)": dict(solver="sgd", learning_rate_init=0.01),
    "adam (lr 0.001)": dict(solver="adam", learning_rate_init=0.001),
}

fig, ax = plt.subplots(figsize=(6, 4))
for label, params in solvers.items():
    clf = MLPClassifier(
        hidden_layer_sizes=(64,), batch_size=32, max_iter=epochs, random_state=0, **params
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    print(f"{label}: {clf.n_iter_} epochs, final loss {clf.loss_:.4f}")
    ax.plot(range(1, len(clf.loss_curve_) + 1), clf.loss_curve_, label=label)

ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.set_yscale("log")
ax.set_title("fastbp MLPClassifier on digits, hidden (64,)")
ax.legend()
fig.tight_layout()
fig.savefig(out, dpi=100)
print(f"saved {out}")
