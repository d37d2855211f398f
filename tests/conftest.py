"""Shared fixtures of the test suite."""

import os
import warnings

# The suite's own processes start no compile helper (fastbp._compile_ahead). On an empty
# cache (CI), ``import fastbp`` started one in each pytest process, and the process's
# first float64 epoch then waited for it, through whatever a test had monkeypatched in
# the kernel's place (a plain function: AttributeError). The helpers' tests run theirs in
# subprocesses that ask for them, or stand in for them.
os.environ.setdefault("FASTBP_COMPILE_HELPER", "0")

import pytest
from sklearn.exceptions import ConvergenceWarning


@pytest.fixture
def quiet_convergence():
    """Fixed epoch counts are the point of most tests: no ConvergenceWarning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
