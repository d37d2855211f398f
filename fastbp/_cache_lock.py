"""A file lock around numba's cache of the kernels, so that processes can fill it at once.

numba saves a compiled function in two steps, without a lock: it reads the function's
index, picks the first free data-file number, writes the index, then the data file. Two
processes saving two signatures of one function at the same time can both pick number 1,
and the index can end up naming one signature with the other's machine code; the next
process to load it runs that code on the wrong argument types (numba issue 4807).
Grid searches and Dask workers starting on an empty cache, fits in both dtypes in two
processes, or the compile helper of ``_compile_ahead`` beside its fit can all do that.

``install`` makes numba's ``IndexDataCacheFile.save`` (and ``flush``) hold an exclusive
``flock`` on a lock file in the cache folder for the whole save, and ``load`` a shared one
while it reads the index and the data: a reader never sees an index entry before its
data, and saves are serialised. Only the folders ``register`` was given (the kernels'
cache, see ``_config``) are locked; numba's other caches are left as numba makes them.
Without ``fcntl`` (Windows), or where the lock file cannot be opened (a read-only cache,
which nobody writes), the cache works unlocked, as numba's does.
"""

import contextlib
import functools
import os

try:
    import fcntl
except ImportError:  # Windows: numba's own, unlocked behaviour
    fcntl = None

LOCK_NAME = "fastbp-cache.lock"

_folders = set()


def register(folder):
    """Lock numba's cache files in ``folder`` from now on."""
    _folders.add(os.path.abspath(folder))


@contextlib.contextmanager
def held(folder, exclusive):
    """Hold the lock of cache ``folder`` (exclusive for a writer, shared for a reader)
    when it is registered and can be opened; otherwise do nothing."""
    fd = _open(folder) if fcntl is not None and os.path.abspath(folder) in _folders else None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        # unlock before closing: a child forked meanwhile holds a copy of the descriptor,
        # and the lock belongs to the open file, not to this process
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open(folder):
    path = os.path.join(folder, LOCK_NAME)
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(path, flags | os.O_CLOEXEC, 0o666)
        except OSError:
            continue
    return None


def install():
    """Wrap numba's cache-file methods once per process (no-op on another numba)."""
    try:
        from numba.core.caching import IndexDataCacheFile
    except ImportError:
        return
    if getattr(IndexDataCacheFile, "_fastbp_locked", False):
        return
    for name, exclusive in (("save", True), ("flush", True), ("load", False)):
        setattr(IndexDataCacheFile, name, _locked(getattr(IndexDataCacheFile, name), exclusive))
    IndexDataCacheFile._fastbp_locked = True


def _locked(method, exclusive):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with held(self._cache_path, exclusive):
            return method(self, *args, **kwargs)
    return call
