"""Made ``pickles_0.2.0.dev0.pkl``: models pickled by fastbp 0.2.0.dev0 (commit 3fbffc2),
whose estimators kept their state in loose arrays (_params, _layout, _opt_state, ...).

It only reproduces the file when run against that commit (``git worktree add old 3fbffc2``,
then ``PYTHONPATH=old python tests/data/make_pickles_0.2.0.dev0.py``); kept to say what
the file holds: per model its pickle, the X it predicts, those predictions, and for the
stochastic models without early stopping the coefs_ after one more ``partial_fit``.
"""

import pickle
import warnings

import numpy as np
from sklearn.datasets import load_iris

import fastbp

X, y = load_iris(return_X_y=True)
X32, Xr, yr = X.astype(np.float32), X[:, :3], X[:, 3]
warnings.simplefilter("ignore")
models = {
    "clf_adam_es": (fastbp.MLPClassifier(
        (5,), max_iter=30, early_stopping=True, random_state=0), X, y),
    "clf_sgd_f32_dropout": (fastbp.MLPClassifier(
        (6, 4), solver="sgd", dropout=0.1, max_iter=5, random_state=1), X32, y),
    "reg_lbfgs": (fastbp.MLPRegressor(
        hidden_layer_sizes=(4,), solver="lbfgs", max_iter=20, random_state=0), Xr, yr),
    "reg_adamw_huber": (fastbp.MLPRegressor(
        loss="huber", hidden_layer_sizes=(5,), activation=["tanh"], solver="adamw",
        max_iter=5, random_state=0), Xr, yr),
}
out = {}
for name, (model, Xm, ym) in models.items():
    model.fit(Xm, ym)
    saved = pickle.dumps(model)
    out[name] = {"pickle": saved, "X": Xm, "predict": model.predict(Xm)}
    if model.solver != "lbfgs" and not model.early_stopping:
        again = pickle.loads(saved)
        again.partial_fit(Xm, ym)
        out[name]["continued"] = [c.copy() for c in again.coefs_]
with open("tests/data/pickles_0.2.0.dev0.pkl", "wb") as f:
    pickle.dump({"version": fastbp.__version__, "models": out}, f)
