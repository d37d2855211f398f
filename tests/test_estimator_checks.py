"""scikit-learn's estimator checks, for both estimators, with no expected failures."""

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import estimator_checks_generator

from fastbp import MLPClassifier, MLPRegressor

# The checks fit tiny data sets with max_iter=100, as scikit-learn's own instances do, and
# judge the fitted model, not convergence: ~100 expected ConvergenceWarnings would bury
# any warning that means something. (A check that expects a warning records it with its
# own filter: all checks still pass under this mark.)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# The instances and per-check parameters scikit-learn itself uses for its MLPs
# (sklearn/utils/_test_common/instance_generator.py): max_iter=100 everywhere, and for
# the sample-weight equivalence check a deterministic solver (classifier) or a loose
# tolerance (regressor), because a stochastic fit of duplicated rows differs from a fit
# with weight 2 by its minibatch composition.
ESTIMATORS = [
    MLPClassifier(max_iter=100),
    MLPRegressor(max_iter=100),
    # the opt-in target options change what fit learns and predict returns
    MLPRegressor(max_iter=100, normalize_y=True, clip_predictions=0.1),
]
PER_CHECK_PARAMS = {
    MLPClassifier: {"check_sample_weight_equivalence_on_dense_data": dict(solver="lbfgs")},
    MLPRegressor: {
        "check_sample_weight_equivalence_on_dense_data": dict(
            solver="sgd", tol=1e-2, random_state=42
        )
    },
}


def _check_name(check):
    return getattr(check, "__name__", None) or check.func.__name__


def _cases():
    for estimator in ESTIMATORS:
        for est, check in estimator_checks_generator(estimator, legacy=True):
            name = _check_name(check)
            params = PER_CHECK_PARAMS[type(estimator)].get(name)
            if params:
                est = clone(est).set_params(**params)
            kind = type(estimator).__name__
            if estimator.get_params().get("normalize_y"):
                kind += "-targetoptions"
            yield pytest.param(est, check, id=f"{kind}-{name}")


@pytest.mark.parametrize("estimator, check", list(_cases()))
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
