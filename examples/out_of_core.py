"""Training on data larger than memory: partial_fit over a numpy.memmap, block by block.

Writes a float32 data set to a memory-mapped file (here 200,000 x 64, 51 MB; the same code
runs on files larger than RAM), then streams it through ``partial_fit`` one block of rows
at a time: only a block is ever read into memory, and the network trains in float32 like
the file. With dask, ``dask_ml.wrappers.Incremental(fastbp.MLPClassifier())`` does the
same over a dask array. Set FASTBP_EXAMPLE_QUICK=1 for a few-second run.

    python examples/out_of_core.py
"""

import os
import tempfile
import time

import numpy as np

from fastbp import MLPClassifier

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"
n, d, block = (40_000 if QUICK else 200_000), 64, 10_000

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "X.f32")
    rng = np.random.default_rng(0)
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    w = rng.normal(size=d)
    for start in range(0, n, block):  # written block by block, too
        X[start : start + block] = rng.normal(size=(min(block, n - start), d))
    y = (np.asarray(X) @ w > 0).astype(np.int64)  # a linear rule to learn
    X.flush()
    del X

    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
    clf = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0)
    start = time.perf_counter()
    for epoch in range(2 if QUICK else 3):
        for first in range(0, n - block, block):  # the last block is held out
            rows = slice(first, first + block)
            clf.partial_fit(X[rows], y[rows], classes=[0, 1])
        held_out = slice(n - block, n)
        print(f"epoch {epoch + 1}: held-out accuracy {clf.score(X[held_out], y[held_out]):.3f}")
    print(f"streamed {n:,} rows x {d} float32 features from {os.path.basename(path)} "
          f"in {time.perf_counter() - start:.1f} s; weights are {clf.coefs_[0].dtype}")
    del X
