"""Finite-difference checks of the gradient written by ``full_loss_grad`` (float64).

For every hidden activation x loss x penalty (L2, L1) x sample weights, on a 2-hidden-layer
net, the central differences of the objective value returned by the kernel must match the
gradient the kernel writes (tests/test_toolbox.py runs the same check through the public
``fastbp.check_gradients``). A last group of tests shows that the check does fail on wrong
gradients.
"""

import numpy as np
import pytest

from fastbp._kernels import activations as A
from fastbp._kernels import losses as L
from fastbp._kernels import penalties
from fastbp._kernels.train import full_loss_grad
from fastbp._layout import Layout
from fastbp._workspace import Workspace, kernel_rows, kernel_X, no_dropout, readonly

try:  # tests/ is not a package: pytest puts it on sys.path (rootdir "prepend" mode)
    from . import naive
except ImportError:
    import naive

HIDDEN = dict(A.HIDDEN_CODES)
# (loss code, number of outputs)
LOSS_CASES = {
    "squared_error-1": (L.SQUARED_ERROR, 1),
    "squared_error-3": (L.SQUARED_ERROR, 3),
    "poisson-2": (L.POISSON, 2),
    "log_loss-3": (L.LOG_LOSS, 3),
    "binary_log_loss-1": (L.BINARY_LOG_LOSS, 1),
    "binary_log_loss-2": (L.BINARY_LOG_LOSS, 2),
    "absolute_error-2": (L.ABSOLUTE_ERROR, 2),
    "huber-2": (L.HUBER, 2),
    "hinge-3": (L.HINGE, 3),
    "binary_hinge-2": (L.BINARY_HINGE, 2),
}
LOSS_NAMES = L.NAMES
HUBER_DELTA = 0.5
# (alpha, l1)
PENALTIES = {"none": (0.0, 0.0), "l2": (1e-2, 0.0), "l1": (0.0, 1e-2), "l2+l1": (1e-2, 1e-2)}
N_SAMPLES, UNITS = 17, (5, 4, 3)
CHUNK = 7  # several chunks: the path L-BFGS takes on large data
STEP = 1e-6
TOL = 1e-6
KINK = 1e-4  # kinks (relu's 0, |r| = 0 or huber_delta, hinge margins) stay this far away
KINKED = ("relu", "leaky_relu")


class Problem:
    def __init__(self, hidden, loss_code, n_out, weighted, seed):
        rng = np.random.default_rng(seed)
        self.layout = Layout([*UNITS, n_out])
        self.params = np.empty(self.layout.n_params)
        coefs, intercepts = self.layout.views(self.params)
        for W, b in zip(coefs, intercepts, strict=True):
            bound = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
            W[...] = rng.uniform(-bound, bound, W.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)
        self.X = rng.normal(size=(N_SAMPLES, UNITS[0]))
        if loss_code in (L.SQUARED_ERROR, L.ABSOLUTE_ERROR, L.HUBER):
            Y = rng.normal(size=(N_SAMPLES, n_out))
        elif loss_code == L.POISSON:
            Y = rng.poisson(1.5, size=(N_SAMPLES, n_out)).astype(np.float64)
        elif loss_code in (L.LOG_LOSS, L.HINGE):
            Y = np.eye(n_out)[rng.integers(0, n_out, N_SAMPLES)]
        else:
            Y = rng.integers(0, 2, size=(N_SAMPLES, n_out)).astype(np.float64)
        self.Y = Y
        sw = rng.uniform(0.5, 2.0, N_SAMPLES)
        sw[3] = 0.0
        self.sw = sw if weighted else None
        self.hidden, self.loss_code = hidden, loss_code
        codes = [0, HIDDEN[hidden], HIDDEN[hidden], L.OUTPUT_ACTIVATION[loss_code]]
        self.ws = Workspace(self.layout, codes, CHUNK, np.float64, dense=True)
        self.Xk, self.Xsp = kernel_X(self.X, np.float64)
        self.Yk = readonly(Y)
        self.swk = readonly(sw if weighted else np.empty(0))
        self.rows = kernel_rows(N_SAMPLES)
        self.clip_eps = float(np.finfo(np.float64).eps)

    def hidden_preactivations(self):
        coefs, intercepts = self.layout.views(self.params)
        _, zs = naive.forward(self.X, coefs, intercepts, self.hidden,
                              naive.OUTPUT_ACTIVATION[LOSS_NAMES[self.loss_code]],
                              return_preactivations=True)
        return np.concatenate([z.ravel() for z in zs[:-1]])

    def kink_distance(self):
        """How far the kinks of the loss are: |r| and ||r| - delta| (absolute error,
        huber), the margins' distance to 0 (hinges)."""
        coefs, intercepts = self.layout.views(self.params)
        P = naive.forward(self.X, coefs, intercepts, self.hidden, "identity")[-1]
        R = P - self.Y
        if self.loss_code == L.ABSOLUTE_ERROR:
            return np.abs(R).min()
        if self.loss_code == L.HUBER:
            return np.abs(np.abs(R) - HUBER_DELTA).min()
        if self.loss_code == L.BINARY_HINGE:
            return np.abs(1.0 - (2.0 * self.Y - 1.0) * P).min()
        if self.loss_code == L.HINGE:
            rows = np.arange(len(P))
            c = self.Y.argmax(axis=1)
            others = P.copy()
            others[rows, c] = -np.inf
            top2 = np.sort(others, axis=1)[:, -2:]  # ties between the other classes
            margins = 1.0 + top2[:, 1] - P[rows, c]
            return min(np.abs(margins).min(), np.abs(top2[:, 1] - top2[:, 0]).min())
        return np.inf

    def value_grad(self, params, alpha, l1=0.0):
        grads = np.full(self.layout.n_params, np.nan)
        scratch = np.empty(self.layout.n_params)
        ws = self.ws
        value = full_loss_grad(params, grads, scratch, ws.net, self.Xk, self.Xsp, self.Yk,
                               self.swk, self.rows, CHUNK, L.address(self.loss_code, params.dtype),
                               penalties.address(penalties.FINISH, params.dtype),
                               self.clip_eps, HUBER_DELTA, alpha, l1, ws.act, ws.delta,
                               ws.xbuf, ws.dact, no_dropout())
        return value, grads

    def numeric_grad(self, alpha, l1=0.0):
        x = self.params.copy()
        num = np.empty_like(x)
        for j in range(x.shape[0]):
            x[j] = self.params[j] + STEP
            f_plus, _ = self.value_grad(x, alpha, l1)
            x[j] = self.params[j] - STEP
            f_minus, _ = self.value_grad(x, alpha, l1)
            x[j] = self.params[j]
            num[j] = (f_plus - f_minus) / (2.0 * STEP)
        return num


def make_problem(hidden, loss_case, weighted):
    """The problem of the first seed whose pre-activations and residuals avoid kinks."""
    loss_code, n_out = LOSS_CASES[loss_case]
    for seed in range(200):
        pb = Problem(hidden, loss_code, n_out, weighted, seed)
        if hidden in KINKED and np.abs(pb.hidden_preactivations()).min() <= KINK:
            continue
        if pb.kink_distance() > KINK:
            return pb
    raise AssertionError("no seed keeps the kinks away")


def max_rel_diff(analytic, numeric):
    return float(np.max(np.abs(analytic - numeric)
                        / np.maximum(1.0, np.abs(analytic) + np.abs(numeric))))


def check_gradient(analytic, numeric, tol=TOL):
    assert np.all(np.isfinite(analytic)) and np.all(np.isfinite(numeric))
    diff = max_rel_diff(analytic, numeric)
    worst = int(np.argmax(np.abs(analytic - numeric)))
    assert diff < tol, (
        f"max relative difference {diff:.3e} >= {tol:.0e} at parameter {worst}: "
        f"analytic {analytic[worst]!r}, numeric {numeric[worst]!r}"
    )


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("penalty", list(PENALTIES))
@pytest.mark.parametrize("loss_case", list(LOSS_CASES))
@pytest.mark.parametrize("hidden", list(HIDDEN))
def test_gradient_matches_finite_differences(hidden, loss_case, penalty, weighted):
    alpha, l1 = PENALTIES[penalty]
    pb = make_problem(hidden, loss_case, weighted)
    params_before = pb.params.copy()
    value, analytic = pb.value_grad(pb.params, alpha, l1)
    assert np.isfinite(value)
    numeric = pb.numeric_grad(alpha, l1)
    assert np.array_equal(pb.params, params_before)
    check_gradient(analytic, numeric)
    # the value is the objective the oracle defines
    coefs, intercepts = pb.layout.views(pb.params)
    want, _, _ = naive.objective(coefs, intercepts, pb.X, pb.Y, hidden,
                                 LOSS_NAMES[pb.loss_code], alpha, pb.sw, pb.clip_eps, l1,
                                 HUBER_DELTA)
    assert value == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------- the check is able to fail
@pytest.fixture(scope="module")
def reference():
    pb = make_problem("tanh", "log_loss-3", weighted=True)
    _, analytic = pb.value_grad(pb.params, 1e-2)
    numeric = pb.numeric_grad(1e-2)
    check_gradient(analytic, numeric)
    return pb, analytic, numeric


@pytest.mark.parametrize("entry", [0, 23, -1])
def test_check_fails_on_perturbed_gradient(reference, entry):
    _, analytic, numeric = reference
    bad = analytic.copy()
    bad[entry] += 1e-4 * max(1.0, abs(bad[entry]))
    with pytest.raises(AssertionError, match="max relative difference"):
        check_gradient(bad, numeric)


def test_check_fails_on_gradient_of_another_objective(reference):
    pb, _, numeric = reference
    # the gradient without the L2 term, and the one ignoring the sample weights
    _, no_l2 = pb.value_grad(pb.params, 0.0)
    with pytest.raises(AssertionError, match="max relative difference"):
        check_gradient(no_l2, numeric)
    coefs, intercepts = pb.layout.views(pb.params)
    _, gW, gb = naive.objective(coefs, intercepts, pb.X, pb.Y, "tanh", "log_loss", 1e-2,
                                None, pb.clip_eps)
    unweighted = np.concatenate([g.ravel() for g in gW] + gb)
    with pytest.raises(AssertionError, match="max relative difference"):
        check_gradient(unweighted, numeric)
