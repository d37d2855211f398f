"""Shared fixtures of the test suite."""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning


@pytest.fixture
def quiet_convergence():
    """Fixed epoch counts are the point of most tests: no ConvergenceWarning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
