"""numba's cache of the kernels under a file lock (``fastbp._cache_lock``): processes that
fill one cache at once keep every signature with its own machine code."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from fastbp import _cache_lock

fcntl = pytest.importorskip("fcntl")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One process of two that save a signature of one small kernel at the same time. Both
# wait for each other before saving; then the waits force numba's worst order (A reads
# the index, B reads it, A writes it, B writes index and data, A writes its data under
# the number B's index gave B's signature). Under the lock each wait times out instead.
SAVER = """
import os, sys, time
role, other, sync = sys.argv[1], "B" if sys.argv[1] == "A" else "A", sys.argv[2]
from numba import float32, float64, int64, void
from numba.core import caching
from fastbp._kernels.forward import csr_rows_dot

def mark(name):
    open(os.path.join(sync, name), "w").close()

def wait(name, seconds):
    end = time.monotonic() + seconds
    while not os.path.exists(os.path.join(sync, name)) and time.monotonic() < end:
        time.sleep(0.005)

F = caching.IndexDataCacheFile
save, load_index, save_index, save_data = F.save, F._load_index, F._save_index, F._save_data
saving = []

def ours(f):
    return "csr_rows_dot" in f._index_path

def spy_save(self, key, data):
    if ours(self):
        mark(role + "-ready")
        wait(other + "-ready", 120)
        saving.append(1)
    save(self, key, data)
    if ours(self):
        mark(role + "-done")

def spy_load_index(self):
    index = load_index(self)
    if ours(self) and saving:
        mark(role + "-loaded")
        wait("B-loaded" if role == "A" else "A-index", 1.5)
    return index

def spy_save_index(self, index):
    save_index(self, index)
    if ours(self):
        mark(role + "-index")

def spy_save_data(self, name, data):
    if ours(self) and role == "A":
        wait("B-done", 1.5)
    save_data(self, name, data)

F.save, F._load_index, F._save_index, F._save_data = (
    spy_save, spy_load_index, spy_save_index, spy_save_data)
t = float64 if role == "A" else float32
csr_rows_dot.compile(void(int64[::1], int64[::1], t[::1], int64[::1], t[:, ::1], t[:, ::1]))
"""

# A third process loads both signatures and runs them against a dense product.
CHECK = """
import numpy as np, scipy.sparse as sp
from numba import float32, float64, int64, njit, void
from fastbp._kernels.forward import csr_rows_dot

@njit  # compiled here, not cached: it runs the signatures loaded below
def run(indptr, indices, data, rows, W, out):
    csr_rows_dot(indptr, indices, data, rows, W, out)

rng = np.random.default_rng(0)
for dtype, t in ((np.float64, float64), (np.float32, float32)):
    csr_rows_dot.compile(void(int64[::1], int64[::1], t[::1], int64[::1], t[:, ::1], t[:, ::1]))
    X = sp.random(30, 7, density=0.5, format="csr", random_state=1, dtype=dtype)
    W = rng.standard_normal((7, 5)).astype(dtype)
    rows = np.arange(30, dtype=np.int64)[::-1].copy()
    out = np.empty((30, 5), dtype)
    run(X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data, rows, W, out)
    np.testing.assert_allclose(out, X.toarray()[rows] @ W, rtol=1e-5)
print(sum(csr_rows_dot.stats.cache_hits.values()), len(csr_rows_dot.overloads))
"""


def _python(code, *argv, cache, wait=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(NUMBA_CACHE_DIR=str(cache), PYTHONPATH=ROOT, FASTBP_COMPILE_HELPER="0")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, argv)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return _finish(proc) if wait else proc


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def test_two_processes_saving_one_kernel_keep_each_signature_with_its_code(tmp_path):
    cache, sync = tmp_path / "cache", tmp_path / "sync"
    cache.mkdir()
    sync.mkdir()
    savers = [_python(SAVER, role, sync, cache=cache, wait=False) for role in "AB"]
    for proc in savers:
        _finish(proc)
    assert (sync / "A-done").exists() and (sync / "B-done").exists()
    # both signatures came from the cache, and each ran as its own dtype
    assert _python(CHECK, cache=cache).split() == ["2", "2"]


def test_the_lock_is_taken_only_for_registered_folders(tmp_path):
    plain, kernels = tmp_path / "plain", tmp_path / "kernels"
    plain.mkdir()
    kernels.mkdir()
    _cache_lock.register(kernels)
    try:
        with _cache_lock.held(plain, True):
            pass
        with _cache_lock.held(kernels, False):
            pass
    finally:
        _cache_lock._folders.discard(str(kernels))
    assert not (plain / _cache_lock.LOCK_NAME).exists()
    assert (kernels / _cache_lock.LOCK_NAME).exists()


def test_a_writer_excludes_readers_and_readers_share(tmp_path):
    _cache_lock.register(tmp_path)
    order = []
    try:
        with _cache_lock.held(tmp_path, True):
            reader = threading.Thread(target=lambda: _read(tmp_path, order))
            reader.start()
            time.sleep(0.3)
            order.append("writer done")
        reader.join(10)
        assert order == ["writer done", "read"]
        with _cache_lock.held(tmp_path, False), _cache_lock.held(tmp_path, False):
            order.append("two readers")
    finally:
        _cache_lock._folders.discard(str(tmp_path))
    assert order[-1] == "two readers"


def _read(folder, order):
    with _cache_lock.held(folder, False):
        order.append("read")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_under_the_lock_does_not_keep_it(tmp_path):
    _cache_lock.register(tmp_path)
    child = None
    try:
        with _cache_lock.held(tmp_path, True):
            child = os.fork()
            if child == 0:  # holds a copy of the lock's descriptor while it lives
                time.sleep(3)
                os._exit(0)
        fd = os.open(tmp_path / _cache_lock.LOCK_NAME, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
        finally:
            os.close(fd)
        assert os.waitpid(child, os.WNOHANG) == (0, 0), "the child should still live"
    finally:
        _cache_lock._folders.discard(str(tmp_path))
        if child:
            os.waitpid(child, 0)


def test_a_read_only_cache_is_read_unlocked(tmp_path):
    _cache_lock.register(tmp_path)
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("this user writes read-only folders (root)")
        with _cache_lock.held(tmp_path, False):
            pass
        assert not (tmp_path / _cache_lock.LOCK_NAME).exists()
    finally:
        os.chmod(tmp_path, 0o700)
        _cache_lock._folders.discard(str(tmp_path))


def test_the_kernels_cache_is_the_locked_one():
    from fastbp._kernels.forward import csr_rows_dot
    assert os.path.abspath(csr_rows_dot._cache._cache_path) in _cache_lock._folders
