"""The estimators' docstrings: their examples run, and every parameter and fitted
attribute is documented in each, with no line-continuation glitch."""

import doctest
import re

import numpy as np
import pytest
from sklearn.datasets import load_iris

import fastbp._multilayer_perceptron as mlp
from fastbp import MLPClassifier, MLPRegressor

BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
pytestmark = pytest.mark.usefixtures("quiet_convergence")


def test_the_examples_in_the_docstrings_run_as_written():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mlp) if t.examples]
    names = {t.name.rsplit(".", 1)[-1] for t in tests}
    assert {"MLPClassifier", "MLPRegressor"} <= names
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def _documented(doc, section):
    """The names documented in a numpydoc section (``name : type`` lines)."""
    body = doc.split(f"\n    {section}\n    {'-' * len(section)}\n", 1)[1]
    body = re.split(r"\n    [A-Z][A-Za-z ]+\n    -{3,}\n", body)[0]
    return set(re.findall(r"^    (\w+) :", body, flags=re.M))


@BOTH
def test_every_parameter_is_documented_in_full(Est):
    doc = Est.__doc__
    assert set(Est().get_params()) == _documented(doc, "Parameters")
    assert "As in :class:" not in doc  # written out, not referred elsewhere
    assert not re.search(r",\s{4,}default=", doc)  # a \\-continuation's gap


@BOTH
def test_every_fitted_attribute_is_documented_with_its_meaning(Est):
    X, y = load_iris(return_X_y=True)
    y = y if Est is MLPClassifier else X[:, 3]
    est = Est(hidden_layer_sizes=(3,), max_iter=3, early_stopping=True).fit(X, y)
    fitted = {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}
    fitted.add("feature_names_in_")  # only with named columns
    documented = _documented(Est.__doc__, "Attributes")
    assert fitted <= documented
    for name in documented:  # a line of meaning under each, not a bare type
        entry = Est.__doc__.split(f"\n    {name} :", 1)[1].split("\n")
        assert entry[1].startswith("        ") and len(entry[1].split()) >= 3, name
    assert np.isfinite(est.loss_)
