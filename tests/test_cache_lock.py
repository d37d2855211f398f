"""numba's cache of the kernels saved under a file lock (``fastbp._cache_lock``): processes
that fill one cache at once keep every signature with its own machine code."""

import errno
import os
import subprocess
import sys
import textwrap
import threading

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


@pytest.fixture
def folder(tmp_path):
    """A registered cache folder (forgotten afterwards)."""
    _cache_lock.register(str(tmp_path))
    yield tmp_path
    _cache_lock._folders.discard(str(tmp_path))


def _cache_file(folder):
    from numba.core.caching import IndexDataCacheFile

    return IndexDataCacheFile(cache_path=str(folder), filename_base="f", source_stamp="s")


def test_the_lock_is_taken_only_for_registered_folders(tmp_path, folder):
    plain = tmp_path / "plain"
    plain.mkdir()
    _cache_file(plain).save(("k",), b"data")
    assert not (plain / _cache_lock.LOCK_NAME).exists()
    _cache_file(folder).save(("k",), b"data")
    assert (folder / _cache_lock.LOCK_NAME).exists()


def test_a_save_writes_its_data_before_the_index_entry_naming_it(folder, monkeypatch):
    """A reader (unlocked) never finds an entry whose data file is not written yet, and
    a save stopped half way leaves no entry naming another version's data."""
    from numba.core.caching import IndexDataCacheFile

    order = []
    for name in ("_save_data", "_save_index"):
        real = getattr(IndexDataCacheFile, name)
        monkeypatch.setattr(IndexDataCacheFile, name, lambda self, *a, real=real, name=name: (
            order.append(name), real(self, *a))[1])
    cache = _cache_file(folder)
    cache.save(("k1",), b"one")
    cache.save(("k2",), b"two")
    cache.save(("k1",), b"one again")  # an existing entry: its data file is replaced
    assert order == ["_save_data", "_save_index"] * 2 + ["_save_data"]
    assert [cache.load(k) for k in (("k1",), ("k2",))] == [b"one again", b"two"]
    assert sorted(cache._load_index().values()) == ["f.1.nbc", "f.2.nbc"]


def test_a_save_holds_the_lock_and_lock_probes_see_it(folder, monkeypatch):
    from numba.core.caching import IndexDataCacheFile

    seen = []

    def probe(self, name, data):  # during the save: another descriptor cannot lock
        fd = os.open(folder / _cache_lock.LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(_cache_lock.works(str(folder)))  # held elsewhere: still works
        finally:
            os.close(fd)

    monkeypatch.setattr(IndexDataCacheFile, "_save_data", probe)
    _cache_file(folder).save(("k",), b"data")
    assert seen == [True]
    assert _cache_lock.works(str(folder))
    assert not _cache_lock.works(str(folder / "unregistered"))


def test_a_save_over_another_versions_index_stamps_it_first(folder, monkeypatch):
    """numba reads another version's index as empty and numbers its data files from 1
    again: a process of that version must not find this one's code under its entry."""
    from numba.core.caching import IndexDataCacheFile

    old = IndexDataCacheFile(cache_path=str(folder), filename_base="f", source_stamp="old")
    old.save(("kA",), b"old A")  # f.1.nbc
    new = IndexDataCacheFile(cache_path=str(folder), filename_base="f", source_stamp="new")
    seen = []
    real = IndexDataCacheFile._save_index

    def save_index(self, index):
        if index:  # the entry, written after its data: the old process must miss
            seen.append(old.load(("kA",)))
        real(self, index)

    monkeypatch.setattr(IndexDataCacheFile, "_save_index", save_index)
    new.save(("kC",), b"new C")  # f.1.nbc again
    assert seen == [None]
    assert new.load(("kC",)) == b"new C" and old.load(("kA",)) is None


def test_a_load_that_compiles_and_saves_does_not_wait_for_itself(folder):
    """Unpickling a cached kernel can compile and save a callee into the same folder: a
    load holding a lock would wait for itself."""
    cache = _cache_file(folder)
    cache.save(("caller",), b"caller")
    real = cache._load_data

    def load_data(name):  # what unpickling a caller whose callee is gone does
        cache.save(("callee",), b"callee")
        return real(name)

    cache._load_data = load_data
    loaded = []
    loader = threading.Thread(target=lambda: loaded.append(cache.load(("caller",))),
                              daemon=True)
    loader.start()
    loader.join(10)
    assert loaded == [b"caller"]
    assert cache.load(("callee",)) == b"callee"


def test_a_file_system_without_flock_saves_unlocked(folder, monkeypatch):
    closed, close = [], os.close
    monkeypatch.setattr(_cache_lock.fcntl, "flock", lambda fd, op: (_ for _ in ()).throw(
        OSError(errno.ENOLCK, "no locks")))
    monkeypatch.setattr(_cache_lock.os, "close", lambda fd: (closed.append(fd), close(fd)))
    cache = _cache_file(folder)
    cache.save(("k",), b"data")
    assert cache.load(("k",)) == b"data"
    assert len(closed) == 1  # the lock file's descriptor, not leaked


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_under_the_lock_does_not_keep_it(folder):
    read, write = os.pipe()
    with _cache_lock.held(str(folder)):
        child = os.fork()
        if child == 0:  # holds a copy of the lock's descriptor until the parent says
            try:
                os.close(write)
                os.read(read, 1)
            finally:
                os._exit(0)
    os.close(read)
    try:
        fd = os.open(folder / _cache_lock.LOCK_NAME, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
        finally:
            os.close(fd)
        assert os.waitpid(child, os.WNOHANG) == (0, 0), "the child should still live"
    finally:
        os.write(write, b"x")
        os.close(write)
        os.waitpid(child, 0)


def test_a_read_only_cache_is_left_unlocked(folder):
    os.chmod(folder, 0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user writes read-only folders (root)")
        with _cache_lock.held(str(folder)):
            pass
        assert not (folder / _cache_lock.LOCK_NAME).exists()
    finally:
        os.chmod(folder, 0o700)


def test_the_kernels_cache_is_the_locked_one():
    from fastbp._kernels.forward import csr_rows_dot
    assert csr_rows_dot._cache._cache_path in _cache_lock._folders


class _Context:
    """A target context that counts numba's refreshes."""

    def __init__(self):
        self.refreshes = 0

    def refresh(self):
        self.refreshes += 1


@pytest.mark.parametrize("registered", [True, False])
def test_a_load_from_the_kernels_cache_initialises_only_numbas_runtime(
        folder, monkeypatch, registered):
    """numba refreshes its target context (imports and registers its lowering modules)
    before every cache load; a load from the kernels' folders initialises numba's
    runtime instead, and any other cache keeps numba's own load."""
    from numba.core import caching
    from numba.core.runtime import nrt

    runtime = []
    monkeypatch.setattr(nrt.rtsys, "initialize", runtime.append)
    _cache_lock.install()  # once per process: on numba's loads, the same function
    assert getattr(caching.Cache, "_fastbp_loads", False)
    cache = caching.Cache.__new__(caching.FunctionCache)
    cache._cache_path = str(folder if registered else folder / "plain")
    cache._enabled = False  # numba's load then finds nothing: a miss
    context = _Context()
    assert cache.load_overload(("sig",), context) is None
    assert (context.refreshes, len(runtime)) == ((0, 1) if registered else (1, 0))
