"""The BLAS library behind the kernels' products (``fastbp._blas``, ``FASTBP_BLAS``):
scipy's by default, oneMKL on request, bound before any kernel, and a choice that cannot
be honoured fails the import with a message naming it.

The MKL tests run where an MKL is installed (the ``mkl`` package is in the ``test``
extra on Linux x86-64), each in a fresh process: the binding is once per process."""

import json
import os
import subprocess
import sys
import textwrap

import llvmlite.binding as ll
import pytest
from numba.extending import get_cython_function_address

from fastbp import _blas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYMBOLS = [f"{k}{r}" for k in _blas.KINDS for r in _blas.ROUTINES + ("gemm_small",)]


def _installed_mkl():
    found = [p for p in _blas._mkl_candidates("mkl")
             if p and (os.sep not in p or os.path.exists(p))]  # a bare name: the loader's
    return found[0] if found else None


needs_mkl = pytest.mark.skipif(_installed_mkl() is None, reason="no oneMKL installed")


def _mkl_computed_then_fastbp(integer):
    """Code that has MKL compute a dot product (``integer``: the ctypes type of its
    integers) before it imports fastbp and prints the bound library's name."""
    return f"""
    import ctypes
    mkl = ctypes.CDLL({_installed_mkl()!r})
    n = ctypes.{integer}(1); x = ctypes.c_double(2.0)
    mkl.ddot_.restype = ctypes.c_double
    assert mkl.ddot_(ctypes.byref(n), ctypes.byref(x), ctypes.byref(n), ctypes.byref(x),
                     ctypes.byref(n)) == 4.0
    import fastbp
    print(fastbp._blas.bind().name)
    """


def _run(code, timeout=900, **env):
    """``code`` in a fresh interpreter, ``env`` added to the environment (None: removed;
    MKL's own variables of this process are not passed on)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MKL_")}
    for key, value in env.items():
        full.pop(key, None)
        if value is not None:
            full[key] = value
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout)


def test_the_symbols_are_the_chosen_librarys_functions():
    """The eight symbols the kernels call are scipy's ``cython_blas`` functions (numba's
    ``np.dot``'s) by default; when the suite runs under ``FASTBP_BLAS=mkl``, the two
    large gemms are MKL's Fortran ones and the rest stay scipy's."""
    library = _blas.bind()
    assert _blas.bind() is library  # once per process
    for name in SYMBOLS:
        got = ll.address_of_symbol(f"fastbp_{name}")
        if library.name == "scipy" or not name.endswith("gemm"):  # scipy's
            assert got == get_cython_function_address("scipy.linalg.cython_blas",
                                                      name.replace("_small", ""))
        else:
            import ctypes

            mkl = ctypes.CDLL(library.path)
            assert got == ctypes.cast(getattr(mkl, f"{name}_"), ctypes.c_void_p).value
    assert library.name == ("mkl" if os.environ.get(_blas.ENV, "").strip().lower() not in
                            ("", "scipy") else "scipy")


@pytest.mark.parametrize("choice", ["/nonexistent/libmkl_rt.so.3", "libm"])
def test_a_library_that_cannot_be_had_fails_the_import_by_name(choice):
    if choice == "libm":  # a library that exists, but is no MKL
        import ctypes.util

        choice = ctypes.util.find_library("m")
        if choice is None:
            pytest.skip("no libm to name")
    proc = _run("import fastbp", FASTBP_BLAS=choice)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert f"FASTBP_BLAS={choice!r}: no usable oneMKL library found" in proc.stderr
    assert choice in proc.stderr.split("tried:")[1]


_FITS = """
import hashlib, json, sys, warnings
import numpy as np
from sklearn.datasets import load_digits, make_regression
import fastbp
from fastbp import _blas

warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
Xr, yr = make_regression(n_samples=300, n_features=20, random_state=0)
Xw = np.tile(X, (2, 1))  # two hidden layers of 512: trained by column tasks
CASES = [  # (estimator, params, X, y): every engine and product shape
    (fastbp.MLPClassifier, dict(max_iter=5), X, y),  # serial, gemm
    (fastbp.MLPClassifier, dict(hidden_layer_sizes=(1,), max_iter=3), X, y % 2),  # gemv
    (fastbp.MLPClassifier, dict(batch_size=1, max_iter=1), X[:50], y[:50] % 2),  # dot
    (fastbp.MLPRegressor, dict(solver="lbfgs", max_iter=20), Xr, yr),
    (fastbp.MLPClassifier, dict(hidden_layer_sizes=(256, 128), batch_size=200,
                                max_iter=2), Xw, np.tile(y, 2)),  # blocked
    (fastbp.MLPClassifier, dict(hidden_layer_sizes=(512, 512), batch_size=512,
                                max_iter=1), Xw, np.tile(y, 2)),  # column tasks
]
digests = {}
for threads in (1, 2):
    for dtype in ("float32", "float64"):
        for i, (Est, params, A, b) in enumerate(CASES):
            model = Est(random_state=0, n_threads=threads, **params).fit(A.astype(dtype), b)
            h = hashlib.sha256()
            for c in model.coefs_ + model.intercepts_:
                h.update(np.ascontiguousarray(c).tobytes())
            h.update(np.asarray(model.predict(A[:1].astype(dtype))).tobytes())
            h.update(np.asarray(model.predict(A.astype(dtype))).tobytes())
            digests[f"{dtype} case {i} threads {threads}"] = h.hexdigest()
print("RESULT " + json.dumps({"library": _blas.bind().name, "digests": digests}))
"""


def _fits(**env):
    proc = _run(_FITS, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    result = json.loads(next(line for line in lines if line.startswith("RESULT "))[7:])
    return result, [line for line in lines if line.startswith("MKL_VERBOSE")]


@needs_mkl
@pytest.mark.slow
def test_mkl_computes_every_product_reproducibly():
    """Under ``FASTBP_BLAS=mkl`` MKL computes the kernels' gemms above SMALL_GEMM in
    both dtypes and nothing else (its verbose log lists them), sequential, in its strict
    reproducible mode; and the trained weights and
    predictions of every engine (serial, blocked, column tasks, L-BFGS) are
    bit-identical at 1 and 2 threads and from one process to the next."""
    first, log = _fits(FASTBP_BLAS="mkl", MKL_VERBOSE="1")
    assert first["library"] == "mkl"
    calls = [line.split()[1].split("(")[0] for line in log[1:]]  # [0]: MKL's banner
    assert set(calls) == {"SGEMM", "DGEMM"}  # gemv and dot stay scipy's
    assert "lp64 sequential" in log[0]  # MKL's banner: 32-bit integers, no threads
    for line in log[1:]:
        assert "CNR:AUTO,STRICT" in line and "NThr:2" not in line, line
        if "GEMM(" in line:  # the small ones go to scipy's BLAS
            m, n, k = (int(v) for v in line.split("(")[1].split(",")[2:5])
            assert m * n * k > _blas.SMALL_GEMM, line
    digests = first["digests"]
    for key, value in digests.items():
        if key.endswith("threads 2"):
            assert value == digests[key.replace("threads 2", "threads 1")], key
    again, _ = _fits(FASTBP_BLAS="mkl")
    assert again["digests"] == digests


@needs_mkl
@pytest.mark.parametrize("setting, fixed", [
    ("MKL_CBWR", "AUTO,STRICT"),  # results that may change with the arrays' alignment
    ("MKL_THREADING_LAYER", "SEQUENTIAL"),  # threads inside fastbp's tasks
])
def test_mkl_used_before_in_another_mode_fails_the_import_by_name(setting, fixed):
    """MKL cannot change its mode once it has computed: fastbp refuses rather than train
    irreproducibly or oversubscribed, and names the setting to fix; with the setting
    given from the start, the same process works."""
    code = _mkl_computed_then_fastbp("c_int")
    other = {"MKL_CBWR": "AUTO,STRICT", "MKL_THREADING_LAYER": "SEQUENTIAL"}
    other.pop(setting)
    proc = _run(code, FASTBP_BLAS="mkl", **{setting: None}, **other)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and f"{setting}={fixed}" in proc.stderr
    proc = _run(code, FASTBP_BLAS="mkl", **{setting: fixed}, **other)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "mkl"


@needs_mkl
def test_mkl_in_its_64_bit_integer_interface_fails_the_import_by_name():
    """fastbp chooses MKL's 32-bit integer interface (its kernels' calls) before MKL
    computes, over ``MKL_INTERFACE_LAYER=ILP64``; once MKL has computed in ILP64 it
    cannot, and the import says so."""
    proc = _run("import fastbp; print(fastbp._blas.bind().name)", FASTBP_BLAS="mkl",
                MKL_INTERFACE_LAYER="ILP64")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "mkl"
    code = _mkl_computed_then_fastbp("c_int64")
    settled = dict(FASTBP_BLAS="mkl", MKL_CBWR="AUTO,STRICT", MKL_THREADING_LAYER="SEQUENTIAL")
    proc = _run(code, MKL_INTERFACE_LAYER="ILP64", **settled)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "ILP64" in proc.stderr
    proc = _run(code, MKL_INTERFACE_LAYER="LP64,GNU", **settled)  # conda-forge's: fine
    assert proc.returncode == 0, proc.stderr


@needs_mkl
@pytest.mark.slow
def test_parity_with_scikit_learn_holds_under_mkl():
    """The parity runs (float64 to 1e-8 of scikit-learn, float32 to its stated
    tolerance) and the products' checks against the NumPy reference pass with MKL
    computing the large products."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/test_parity.py", "tests/test_kernels.py", "-k", "parity or matmul or product"],
        cwd=ROOT, env=dict(os.environ, FASTBP_BLAS="mkl"), capture_output=True, text=True,
        timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.splitlines()[-1]
