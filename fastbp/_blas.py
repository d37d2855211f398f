"""The BLAS library behind the kernels' matrix products, bound once per process.

The compiled products (``fastbp._kernels.blas``) call eight functions by name, with the
Fortran BLAS interface (32-bit integers, every argument by address): ``fastbp_sgemm``,
``fastbp_dgemm``, ``fastbp_sgemv``, ``fastbp_dgemv``, ``fastbp_sdot``, ``fastbp_ddot``,
and ``fastbp_sgemm_small`` / ``fastbp_dgemm_small`` for gemms of at most SMALL_GEMM
multiply-adds. ``bind`` enters their addresses in llvmlite's symbol table before any
kernel is compiled or loaded from numba's cache. The machine code names the symbols,
not a library, so one numba cache serves every choice.

``FASTBP_BLAS``, read when fastbp is first imported, chooses the library:

- unset, empty or ``scipy``: scipy's BLAS (``scipy.linalg.cython_blas``), the functions
  numba's ``np.dot`` calls, so the kernels compute what ``np.dot`` in numba code would
  (OpenBLAS in scipy's wheels).
- ``mkl``: Intel oneMKL's gemm for the products above SMALL_GEMM, from the ``mkl``
  package (``pip install "fastbp[mkl]"``) or the active conda environment; or a path to
  MKL's single dynamic library (``libmkl_rt``). The small gemms, gemv and dot stay
  scipy's. fastbp switches MKL to its strict reproducible mode
  (``MKL_CBWR=AUTO,STRICT``, which covers gemm): without it, MKL's results may change
  with the alignment of the arrays, and fastbp's results must be bit-identical from run
  to run. It also makes MKL sequential in the process
  (``MKL_THREADING_LAYER=SEQUENTIAL``): fastbp's own tasks are the threads, and MKL's
  thread count is per thread, so an outer limit does not reach the threads of numba's
  pool. A process that ran MKL in another mode before fastbp's import cannot switch,
  and the import says so.

Measured on an Intel Xeon (AVX-512, one core, float32): MKL did the matrix products of an
epoch in 0.83-0.87 of OpenBLAS's time on the bench's 50,000-row networks; see README.
Either way BLAS computes each product on the thread that calls it: scipy's is held at
one thread during fits and predicts (``fastbp._threads``), MKL is sequential.
"""

import ctypes
import ctypes.util
import os
import sys
import threading
from dataclasses import dataclass

ENV = "FASTBP_BLAS"
KINDS = "sd"  # float32, float64
ROUTINES = ("gemm", "gemv", "dot")
# gemms of at most SMALL_GEMM multiply-adds call ``fastbp_{s,d}gemm_small``: scipy's
# gemm whichever library is chosen. OpenBLAS's small-matrix kernels take such products
# (100**3, its rule; ``fastbp._threads.SMALL_PRODUCT``) without packing, and ran the
# digits network's epoch faster than MKL did (see MKL below).
SMALL_GEMM = 100**3

# oneMKL's constants (mkl_cbwr.h, mkl_service.h)
MKL_CBWR_ALL = ~0
MKL_CBWR_AUTO = 2
MKL_CBWR_STRICT = 0x10000
MKL_CBWR_SUCCESS = 0
MKL_INTERFACE_LP64 = 0
MKL_INTERFACE_ILP64 = 1
MKL_INTERFACE_GNU = 2
MKL_THREADING_SEQUENTIAL = 1
_MKL_NAMES = {
    "linux": ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so"),
    "win32": ("mkl_rt.3.dll", "mkl_rt.2.dll", "mkl_rt.dll"),
    "darwin": ("libmkl_rt.3.dylib", "libmkl_rt.2.dylib", "libmkl_rt.dylib"),
}


@dataclass(frozen=True)
class Library:
    """The BLAS the kernels call: ``name`` ("scipy" or "mkl"), its file (None for
    scipy's, which threadpoolctl names) and version text."""

    name: str
    path: object = None
    version: str = ""


_lock = threading.Lock()
_bound = None


def bind():
    """Bind the kernels' BLAS symbols once per process (``FASTBP_BLAS``) and return the
    ``Library``. Raises ImportError naming the problem when the chosen library cannot be
    used."""
    global _bound
    if _bound is None:
        with _lock:
            if _bound is None:
                _bound = _bind(os.environ.get(ENV, "").strip())
    return _bound


def _scipys():
    """The addresses of scipy's BLAS functions (``cython_blas``), by routine name."""
    from numba.extending import get_cython_function_address
    from numba.np import linalg

    linalg.ensure_blas()  # scipy present, and its BLAS integers 32-bit (LP64)
    return {f"{k}{r}": get_cython_function_address("scipy.linalg.cython_blas", f"{k}{r}")
            for k in KINDS for r in ROUTINES}


def _bind(choice):
    import llvmlite.binding as ll

    addresses = _scipys()
    for k in KINDS:
        addresses[f"{k}gemm_small"] = addresses[f"{k}gemm"]
    found = Library("scipy")
    if choice.lower() not in ("", "scipy"):
        mkl, found = _open_mkl(choice)
        for k in KINDS:
            addresses[f"{k}gemm"] = ctypes.cast(getattr(mkl, f"{k}gemm_"), ctypes.c_void_p).value
    for routine, address in addresses.items():
        ll.add_symbol(f"fastbp_{routine}", address)
    return found


def _mkl_candidates(choice):
    """Where ``FASTBP_BLAS=choice`` may find MKL's single dynamic library."""
    if choice.lower() != "mkl":
        return [choice]  # a path
    names = _MKL_NAMES.get(sys.platform, _MKL_NAMES["linux"])
    folders = [os.path.join(prefix, sub)
               for prefix in dict.fromkeys(
                   p for p in (sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX"))
                   if p)
               for sub in (("Library", "bin") if sys.platform == "win32" else ("lib",))]
    found = [os.path.join(folder, name) for folder in folders for name in names]
    system = ctypes.util.find_library("mkl_rt")
    return found + ([system] if system else [])


def _open_mkl(choice):
    tried = []
    for path in _mkl_candidates(choice):
        if os.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            mkl = ctypes.CDLL(path)
            mkl.MKL_CBWR_Set  # noqa: B018 (an MKL, not another library of that path)
        except (OSError, AttributeError) as exc:
            tried.append(f"{path} ({exc})")
            continue
        return mkl, Library("mkl", path, _configure_mkl(mkl, path))
    raise ImportError(
        f"{ENV}={choice!r}: no usable oneMKL library found (tried: {', '.join(tried)}). "
        'Install it with `pip install "fastbp[mkl]"` (or conda\'s mkl), give the path of '
        f"libmkl_rt in {ENV}, or unset {ENV} for scipy's BLAS."
    )


def _configure_mkl(mkl, path):
    """Make ``mkl`` compute what fastbp's contract needs; return its version text."""
    mkl.MKL_Set_Interface_Layer.restype = ctypes.c_int
    # LP64, keeping the GNU bit (gfortran's calling convention) an environment asks for
    gnu = MKL_INTERFACE_GNU if "GNU" in os.environ.get("MKL_INTERFACE_LAYER", "").upper() else 0
    if mkl.MKL_Set_Interface_Layer(MKL_INTERFACE_LP64 | gnu) & MKL_INTERFACE_ILP64:
        raise ImportError(
            f"{ENV}: {path} already computed in this process with its ILP64 interface "
            "(64-bit integers, MKL_INTERFACE_LAYER=ILP64), and fastbp's kernels pass 32-bit "
            "ones: unset MKL_INTERFACE_LAYER, or import fastbp before anything runs MKL "
            "(fastbp then chooses LP64)."
        )
    mkl.MKL_Set_Threading_Layer.restype = ctypes.c_int
    if mkl.MKL_Set_Threading_Layer(MKL_THREADING_SEQUENTIAL) != MKL_THREADING_SEQUENTIAL:
        raise ImportError(
            f"{ENV}: {path} already computed in this process with threads of its own, "
            "which it would start inside fastbp's tasks too (its thread count is per "
            "thread): set MKL_THREADING_LAYER=SEQUENTIAL in the environment or import "
            "fastbp before anything runs MKL."
        )
    mkl.MKL_CBWR_Set.restype = mkl.MKL_CBWR_Get.restype = ctypes.c_int
    wanted = MKL_CBWR_AUTO | MKL_CBWR_STRICT
    if (mkl.MKL_CBWR_Set(wanted) != MKL_CBWR_SUCCESS
            and not mkl.MKL_CBWR_Get(MKL_CBWR_ALL) & MKL_CBWR_STRICT):
        raise ImportError(
            f"{ENV}: {path} already computed in this process in a mode that is not "
            "reproducible, so fastbp cannot switch it to its strict mode (results "
            "bit-identical from run to run): set MKL_CBWR=AUTO,STRICT in the environment "
            "or import fastbp before anything runs MKL."
        )
    text = ctypes.create_string_buffer(256)
    mkl.MKL_Get_Version_String(text, len(text))
    return text.value.decode(errors="replace").strip()
