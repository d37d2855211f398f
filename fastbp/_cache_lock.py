"""numba's cache of the kernels: saved under a file lock so that processes can fill it at
once, and loaded without re-initialising numba's compiler.

numba saves a compiled function without a lock: it reads the function's index, picks the
first free data-file number, writes the index, then the data file. Two processes saving
two signatures of one function at the same time can both pick number 1, and the index
can end up naming one signature with the other's machine code; the next process to load
it runs that code on the wrong argument types (numba issue 4807). A process stopped
between the two writes leaves an index entry naming a data file of an older version.
Grid searches and Dask workers starting on an empty cache, fits in both dtypes in two
processes, or the compile helpers of ``_compile_ahead`` beside their fit can all do that.

``install`` replaces numba's ``IndexDataCacheFile.save`` (and ``flush``) for the folders
``register`` was given (the kernels' cache, see ``_config``; numba's other caches keep
numba's own): the whole save holds an exclusive ``flock`` on a lock file in the folder,
and writes the data file before the index entry that names it. Loads take no lock: every
entry a reader can see names data written before it, and each file is replaced
atomically. (A load can compile: unpickling a kernel binds its unlinked callees, which
may compile and save. A reader's lock would be held across that save.) A save over an
index of another version first stamps it as this version's. ``flush`` (an empty index,
after a callback is refused) lets a reader holding the old index read renumbered data:
a developer's error path only. Without
``fcntl`` (Windows), where the lock file cannot be opened (a read-only cache, which
nobody writes) or where the file system refuses ``flock``, saves run unlocked, in that
order still.

A load of a cached function starts, in numba, with a refresh of its target context: the
import of numba's lowering modules (its implementations of numpy, of Python's builtins,
typed containers, ...) and the installation of their registries, which compiling needs
and loading machine code does not. The first load in a process pays for it: the refresh
alone took 0.24-0.31 s in a fresh process on the Intel development machine. For the
registered folders a load instead initialises numba's runtime (``install``): of the
symbols the kernels' machine code names, ``NRT_*`` are the ones only the refresh
would register. numba's other C helpers are registered when numba creates its target
context, the BLAS symbols by ``fastbp._blas``, unlinked callees by their own reload;
numba's thread pool is started by ``fastbp._threads`` before a kernel runs (or by a
loaded parallel kernel's ``reload_init``). Of the modules the refresh imports, only
numba's string hashing registers symbols (no kernel hashes, and ``import fastbp``
imports it anyway). A compile, in numba, still refreshes first. Measured on a warm cache
(alternating fresh processes, 8 rounds, load 1.2-1.9): import + first digits fit +
predict, the fit and predict took 0.44 s before, 0.23 s after (medians).
"""

import contextlib
import functools
import itertools
import os

try:
    import fcntl
except ImportError:  # Windows: saves unlocked
    fcntl = None

LOCK_NAME = "fastbp-cache.lock"

_folders = set()  # as numba's locators give them (the same strings numba's files keep)


def register(folder):
    """Lock numba's cache saves into ``folder`` from now on."""
    _folders.add(folder)


@contextlib.contextmanager
def held(folder):
    """Hold the exclusive lock of cache ``folder`` when it is registered and the lock
    can be taken; otherwise do nothing."""
    fd = _open(folder)
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock (some NFS, Lustre, FUSE mounts)
            os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            try:
                # unlock before closing: a child forked meanwhile holds a copy of the
                # descriptor, and the lock belongs to the open file, not to a process
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def works(folder):
    """Whether saves into cache ``folder`` are locked: it is registered, and its lock
    file opens and takes ``flock`` (held by another process counts)."""
    fd = _open(folder)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _open(folder):
    """A descriptor of registered ``folder``'s lock file, None where there is none."""
    if fcntl is None or folder not in _folders:
        return None
    path = os.path.join(folder, LOCK_NAME)
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(path, flags | os.O_CLOEXEC, 0o666)
        except OSError:
            continue
    return None


def install():
    """Replace numba's cache-file ``save`` and ``flush``, and its cache's
    ``load_overload``, once per process (each a no-op on another numba)."""
    try:
        from numba.core.caching import Cache, IndexDataCacheFile
        from numba.core.runtime import nrt
    except ImportError:
        return
    needed = ("save", "flush", "_load_index", "_save_index", "_save_data", "_data_name")
    if (not getattr(IndexDataCacheFile, "_fastbp_locked", False)
            and all(hasattr(IndexDataCacheFile, name) for name in needed)):
        IndexDataCacheFile.save = _save_wrapper(IndexDataCacheFile.save)
        IndexDataCacheFile.flush = _locked(IndexDataCacheFile.flush)
        IndexDataCacheFile._fastbp_locked = True
    needed = ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")
    if (not getattr(Cache, "_fastbp_loads", False)
            and all(hasattr(Cache, name) for name in needed)
            and hasattr(getattr(nrt, "rtsys", None), "initialize")):
        Cache.load_overload = _load_wrapper(Cache.load_overload, nrt.rtsys)
        Cache._fastbp_loads = True


def _load_wrapper(numba_load, runtime):
    @functools.wraps(numba_load)
    def load_overload(self, sig, target_context):
        if getattr(self, "_cache_path", None) not in _folders:
            return numba_load(self, sig, target_context)
        runtime.initialize(target_context)  # what numba's refresh does that a load needs
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
        return None  # the guard took an error: a miss, as numba's own
    return load_overload


def _locked(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with held(self._cache_path):
            return method(self, *args, **kwargs)
    return call


def _save_wrapper(numba_save):
    @functools.wraps(numba_save)
    def save(self, key, data):
        if self._cache_path not in _folders:
            return numba_save(self, key, data)
        with held(self._cache_path):
            index = self._load_index()
            if not index and os.path.exists(self._index_path):
                # another version's index (numba reads it as empty): stamp it as this
                # one's before a data file it names is replaced, or a process of that
                # version would load this one's code under its own entry
                self._save_index(index)
            name = index.get(key)
            if name is None:  # the first number no entry uses, as numba picks it
                used = set(index.values())
                name = next(n for n in map(self._data_name, itertools.count(1))
                            if n not in used)
            self._save_data(name, data)  # the data first: no entry names unwritten data
            if index.get(key) != name:
                index[key] = name
                self._save_index(index)
    return save
