"""``python -m fastbp bench`` runs every code path on tiny data (the hidden ``--tiny`` knob),
prints its table, writes its JSON and PNG, and rejects bad arguments. Nothing here checks
a speed: the speed targets are what the benchmark reports, not what the tests assert."""

import contextlib
import json
import os
import re
import statistics
import time
import warnings

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastbp.__main__ import main
from fastbp._tools import bench as workloads
from fastbp._tools import ceilings, common, peers, processes, report, runner, vs_peers

HAS_JAX = peers.unavailable("jax") is None
HAS_ONNX = peers.unavailable("onnxruntime") is None

ROW_KEYS = {
    "workload",
    "label",
    "metric",
    "value",
    "target",
    "comparison",
    "met",
    "fastbp",
    "reference",
    "times",
    "medians",
    "unit",
    "torch_ratio",
    "note",
    "spread",
    "ceiling",
    "ceiling_1thread",
    "within_noise",
    "samples",
    "verdict",
    "peer",
    "peer_ratio",
    "peer_samples",
    "peer_target",
    "peer_verdict",
    "peer_setting",
    "peer_ceiling",
}


def bench(tmp_path, *args):
    """Run ``bench --tiny --no-torch *args`` in process; return (exit code, JSON report)."""
    out = tmp_path / "bench.json"
    code = main(["bench", "--tiny", "--no-torch", "--json", str(out), *args])
    return code, json.loads(out.read_text())


def blas_threads():
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}


def peak_keys(dtype):
    return {ceilings.PeakRates.key(dtype, n) for n in ceilings.PeakRates.thread_counts()}


# The fit workloads' speed-up rows of a tiny run: their FLOPs (per epoch; the table's per
# whole fit: 2 epochs on 450 rows, each followed by the forward pass of 50 held out)
# and the dtype of their scikit-learn side.
CEILING_ROWS = {
    "digits32": (ceilings.training_flops([64, 64, 10], 1797), "float32"),
    "mc-b32": (ceilings.training_flops([100, 256, 128, 10], 400), "float64"),
    "wide": (ceilings.training_flops([256, 1024, 1024, 10], 512), "float32"),
    "table 500x90 fit": (2 * (ceilings.training_flops([90, 100, 10], 450)
                              + 2 * 50 * (90 * 100 + 100 * 10)), "float64"),
}


def check_ceilings(result):
    """The ceilings of the speed-up rows, recomputed from the rows' own medians."""
    rows = result["rows"]
    # Ceilings: on the fit workloads' speed-up rows only, recomputed here from the row's
    # own medians, the FLOP count and the size of the peak GEMM.
    peak_flops = 2 * result["settings"]["peak_size"] ** 3
    for row in rows:
        if row["label"] not in CEILING_ROWS:
            assert row["ceiling"] is None and row["ceiling_1thread"] is None
            continue
        flops, dtype = CEILING_ROWS[row["label"]]
        med = row["medians"]
        rates = {key: peak_flops / med[key] for key in peak_keys(dtype)}  # FLOP/s
        best = max(rates.values())
        if row["label"].startswith("table"):  # a 1-thread workload: the 1-thread rate
            best = rates[ceilings.PeakRates.key(dtype, 1)]
        assert row["ceiling"] == pytest.approx(med["sklearn"] * best / flops)
        assert row["ceiling_1thread"] == pytest.approx(
            med["sklearn"] * rates[ceilings.PeakRates.key(dtype, 1)] / flops
        )
        assert 0 < row["ceiling_1thread"] <= row["ceiling"] < float("inf")
        per = "fit" if row["label"].startswith("table") else "epoch"
        assert f"GFLOP/{per} at the peak {dtype}" in row["note"]
        above = row["target"] is not None and row["target"] > row["ceiling"]
        assert ("is above this machine's ceiling" in row["note"]) == above


def check_printed_table(out, digits):
    """The printed table: a header, one line per row, the machine above it."""
    # The printed table: a header, one line per row, and the machine above it.
    assert re.search(r"^machine: \d+ cores \(\d+ usable\)", out, re.M)
    header = (
        r"^workload\s+fastbp\s+reference\s+ratio\s+ceiling \(1 thr\)\s+target\s+result"
        r"\s+fastest peer$"
    )
    assert re.search(header, out, re.M)
    peer = (r"\S+x vs jax 1 thr, (fastbp|jax) ahead: >= 1.25x (met|missed) \(ceiling \S+x\)"
            if HAS_JAX else "—")
    digits_line = (
        r"^digits32\s+\S+ ms/epoch\s+sklearn .+x\s+(\S+)x \((\S+)x\)\s+>= 30x\s+(met|missed)\s+"
        + peer + "$"
    )
    cells = re.search(digits_line, out, re.M).groups()[:2]
    assert cells == (f"{digits['ceiling']:.1f}", f"{digits['ceiling_1thread']:.1f}")
    assert re.search(r"^digits32 2 vs 1 thr\s+.+x\s+—\s+>= 0.97x", out, re.M)
    assert re.search(r"^wide\s+.+x \(.+x\)\s+—\s+report\s+—$", out, re.M)  # tiny: no JAX
    assert re.search(r"^mc-b32 GEMM fraction\s+\S+ ms/epoch \(1 thr\)\s+GEMM .+>= 0.8", out, re.M)
    assert re.search(r"^GEMM fraction: numpy's time", out, re.M)
    assert re.search(r"^ceiling \(1 thr\): the most any code doing the same FLOPs", out, re.M)
    assert "indicative only" in out
    assert "vs torch" not in out



def check_peer_rows(rows):
    """JAX on digits32's speed-up row (1 thread, in turns with fastbp@1), the GEMM
    fraction rows, and the reason on the rows without JAX (tiny mode leaves it out of
    the large workloads)."""
    by_label = {row["label"]: row for row in rows}
    digits = by_label["digits32"]
    if HAS_JAX:
        med = digits["medians"]
        assert (digits["peer"], digits["peer_target"]) == ("jax", 1.25)
        assert digits["peer_ratio"] == pytest.approx(med["jax@1"] / med["fastbp@1"])
        assert digits["peer_samples"] == pytest.approx([digits["peer_ratio"]])
        assert digits["peer_verdict"] == ("met" if digits["peer_ratio"] >= 1.25 else "missed")
        # the ceiling over JAX: its epoch over the epoch's FLOPs at the float32 1-thread peak
        flops, _ = CEILING_ROWS["digits32"]
        rate = 2 * runner.TINY.peak_size**3 / med[ceilings.PeakRates.key("float32", 1)]
        assert digits["peer_ceiling"] == pytest.approx(med["jax@1"] * rate / flops)
        assert "ceiling over jax" in digits["note"]
    else:
        assert digits["peer_ceiling"] is None
        assert "jax peer not measured: the jax peer needs" in digits["note"]
    for name in ("mc-b32", "wide"):
        assert "jax peer not measured: left out in tiny mode" in by_label[name]["note"]
    for name, target in [("digits32", None), ("mc-b32", 0.8), ("wide", 0.9)]:
        fraction = by_label[f"{name} GEMM fraction"]
        assert (fraction["metric"], fraction["target"]) == ("fraction", target)
        med = fraction["medians"]
        assert set(med) == {"fastbp@1", "gemm-epoch@1"}
        assert fraction["value"] == pytest.approx(med["gemm-epoch@1"] / med["fastbp@1"])
        # the 1-thread fastbp samples are the thread row's, not a second configuration
        assert fraction["times"]["fastbp@1"] == by_label[f"{name} 2 vs 1 thr"]["times"]["fastbp@1"]
    # JAX at 2 threads (on two cores) against fastbp's 2-thread samples of the thread row
    jax2 = by_label.get("digits32 vs jax 2 thr")
    assert (jax2 is not None) == (HAS_JAX and len(os.sched_getaffinity(0)) >= 2)
    if jax2 is not None:
        med = jax2["medians"]
        assert (jax2["metric"], jax2["target"], set(med)) == (
            "speed-up", 1.25, {"fastbp@2", "jax@2"})
        assert jax2["value"] == pytest.approx(med["jax@2"] / med["fastbp@2"])
        assert jax2["times"]["fastbp@2"] == by_label["digits32 2 vs 1 thr"]["times"]["fastbp@2"]


def test_json_report_and_table(tmp_path, capsys):
    code, result = bench(tmp_path, "--only", "digits32,mc-b32,wide")
    assert code == 0
    out = capsys.readouterr().out

    assert result["mode"] == "tiny" and result["workloads"] == ["digits32", "mc-b32", "wide"]
    assert list(result["workload_seconds"]) == result["workloads"]
    assert re.search(r"^\[2/3\] mc-b32: make_classification .+ \(\d+ s\)$", out, re.M)
    machine = result["machine"]
    for key in ("cores", "usable_cores", "cpu", "numpy", "numba", "sklearn", "blas"):
        assert machine[key], key
    assert machine["torch"] is None  # --no-torch
    assert any(
        lib["internal_api"] == "openblas" or lib["user_api"] == "blas" for lib in machine["blas"]
    )

    rows = result["rows"]
    jax2 = ["digits32 vs jax 2 thr"] if HAS_JAX and len(os.sched_getaffinity(0)) >= 2 else []
    assert [row["label"] for row in rows] == [
        "digits32",
        "digits32 2 vs 1 thr",
        "digits32 GEMM fraction",
        *jax2,
        "mc-b32",
        "mc-b32 2 vs 1 thr",
        "mc-b32 GEMM fraction",
        "wide GFLOP/s vs GEMM",
        "wide",
        "wide 2 vs 1 thr",
        "wide GEMM fraction",
    ]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["times"] and row["medians"].keys() == row["times"].keys()
        for key, times in row["times"].items():
            assert len(times) == 1 and all(t > 0 for t in times)  # --tiny: one repeat
            assert row["medians"][key] == statistics.median(times)
        assert row["spread"] == 1.0  # one sample per configuration
        if row["target"] is None:
            assert row["met"] is None
        else:
            assert row["comparison"] == ">="
            assert row["met"] == (row["value"] >= row["target"])
        assert len(row["samples"]) == 1 and row["samples"][0] == pytest.approx(row["value"])
        assert row["within_noise"] is False  # one sample is always on one side
        assert row["torch_ratio"] is None
        assert (row["peer"] is not None) == (HAS_JAX and row["label"] == "digits32")

    by_label = {row["label"]: row for row in rows}
    digits, digits_threads, mc = rows[0], rows[1], by_label["mc-b32"]
    jax_keys = {"fastbp@1", "jax@1"} if HAS_JAX else set()
    assert set(digits["times"]) == {"fastbp", "sklearn"} | peak_keys("float32") | jax_keys
    med = digits["medians"]
    assert digits["value"] == pytest.approx(med["sklearn"] / med["fastbp"])
    assert digits["target"] == 30
    assert set(digits_threads["times"]) == {"fastbp@1", "fastbp@2"}
    assert digits_threads["value"] == pytest.approx(
        digits_threads["medians"]["fastbp@1"] / digits_threads["medians"]["fastbp@2"]
    )
    assert "sklearn trained on 200 of 400 rows" in mc["note"]
    check_peer_rows(rows)
    gflops, wide = by_label["wide GFLOP/s vs GEMM"], by_label["wide"]
    assert (gflops["metric"], gflops["target"], wide["target"]) == ("fraction", 0.5, None)
    targets = {name: by_label[f"{name} 2 vs 1 thr"]["target"] for name in ("digits32", "mc-b32")}
    assert targets == {"digits32": 0.97, "mc-b32": 1.3}
    wide_threads = by_label["wide 2 vs 1 thr"]
    assert wide_threads["target"] == 1.8 and "gemm@1" in wide_threads["times"]
    flops = ceilings.training_flops([256, 1024, 1024, 10], 512)
    gemm_flops = 2 * 512 * 1024 * 1024
    expected = (flops / gflops["medians"]["fastbp"]) / (gemm_flops / gflops["medians"]["gemm"])
    assert gflops["value"] == pytest.approx(expected)

    check_ceilings(result)
    # float32's peak was measured once (during digits32) and reused by wide; mc-b32's
    # scikit-learn side is float64, its own
    for key in peak_keys("float32"):
        assert wide["times"][key] == digits["times"][key] and key not in mc["times"]
    assert peak_keys("float64") <= mc["times"].keys()

    check_printed_table(out, digits)

def test_only_keeps_table_order_and_selects(tmp_path):
    _, result = bench(tmp_path, "--only", "table,predict-rows,predict")
    assert result["workloads"] == ["predict", "predict-rows", "table"]
    assert [row["label"] for row in result["rows"]] == [
        "predict 1 row", "predict 1 row 2 vs 1 thr", "predict 10000 rows",
        "predict 10000 rows 2 vs 1 thr", "table 500x90 fit",
    ]
    predict, _, rows, _, table = result["rows"]
    assert (predict["target"], predict["unit"], rows["target"]) == (20, "s/call", None)
    assert "median of 5 calls" in rows["note"] and "predict_proba" in rows["note"]
    for row_, target in ((predict, 1.0), (rows, 1.2)):
        if HAS_ONNX:
            med = row_["medians"]
            assert (row_["peer"], row_["peer_target"]) == ("onnxruntime", target)
            assert row_["peer_ratio"] == pytest.approx(med["onnxruntime@1"] / med["fastbp@1"])
        else:
            assert row_["peer"] is None and "onnxruntime peer not" in row_["note"]
    # the real-table shape: whole fits, both at 1 thread, early stopping on
    assert (table["metric"], table["target"], table["unit"]) == ("speed-up", 6.0, "s/fit")
    assert set(table["times"]) == {"fastbp", "sklearn"} | peak_keys("float64")
    check_ceilings(result)
    assert table["value"] == pytest.approx(
        table["medians"]["sklearn"] / table["medians"]["fastbp"])
    assert "early_stopping=True" in table["note"] and "2 epochs" in table["note"]


def test_table_fits_stop_early_at_one_thread(monkeypatch):
    """The real-table workload fits with early stopping on, at one thread (numba and
    BLAS), for exactly its fixed epochs."""
    seen = []

    def fake_fit_seconds(cls, params, X, y):
        seen.append((cls.__module__.split(".")[0], params["early_stopping"],
                     params["max_iter"], numba.get_num_threads(), X.shape,
                     round(float(X.mean()), 6), tuple(set(blas_threads().values()))))
        return 1.0

    monkeypatch.setattr(workloads, "fit_seconds", fake_fit_seconds)
    settings = runner.Settings(**{**vars(runner.TINY), "repeats": 2})
    (table,) = workloads.table_workload(settings, None, ceilings.PeakRates(16, 1))
    assert table.value == 1.0 and table.samples == [1.0, 1.0]
    assert len(seen) == 6  # a warm-up and two repeats, each library
    assert {entry[0] for entry in seen} == {"fastbp", "sklearn"}
    assert {entry[1:] for entry in seen} == {(True, 2, 1, (500, 90), 0.0, (1,))}


def record_fastbp_fits(monkeypatch):
    """Replace the workloads' fits by a record of (library, dtype, params, BLAS threads)."""
    seen = []

    def fake_fit_seconds(cls, params, X, y):
        seen.append((cls.__module__.split(".")[0], X.dtype.name, params,
                     max(blas_threads().values())))
        return 1.0

    monkeypatch.setattr(workloads, "fit_seconds", fake_fit_seconds)
    return seen


def test_fit_workloads_set_fastbp_n_threads_and_time_threads_in_float32(monkeypatch):
    """fastbp's thread count is its n_threads (BLAS is only an outer limit to it): the
    main run at the usable cores, the thread row's runs at 1 and 2, in float32 on the
    50k-row networks, with the outer BLAS limit at the same count."""
    seen = record_fastbp_fits(monkeypatch)
    rows = workloads.RUNNERS["mc-b200"](runner.TINY, None, ceilings.PeakRates(64, 1))
    main = len(os.sched_getaffinity(0))
    fastbp = {(dtype, params["n_threads"], blas) for lib, dtype, params, blas in seen
              if lib == "fastbp"}
    assert fastbp == {("float64", main, main), ("float32", 1, 1), ("float32", 2, 2)}
    assert {lib for lib, *_ in seen} == {"fastbp", "sklearn"}
    assert all("n_threads" not in params for lib, _, params, _ in seen if lib == "sklearn")
    scaling = rows[1]
    assert (scaling.label, scaling.target) == ("mc-b200 2 vs 1 thr", 1.6)
    assert "float32" in scaling.note and "cores busy" in scaling.note


def test_lbfgs_row_fits_at_one_and_two_threads(monkeypatch):
    seen = record_fastbp_fits(monkeypatch)
    (row,) = workloads.RUNNERS["lbfgs"](runner.TINY, None, None)
    assert (row.label, row.target, row.unit) == ("lbfgs 400 rows 2 vs 1 thr", 1.6, "s/fit")
    assert set(row.times) == {"fastbp@1", "fastbp@2"}
    assert [(params["n_threads"], blas) for *_, params, blas in seen] == [
        (1, 1), (2, 2), (1, 1), (2, 2)]  # warm-ups, then one repeat in turns
    for _, dtype, params, _ in seen:
        assert (dtype, params["solver"], params["max_iter"]) == ("float32", "lbfgs", 2)
        assert "batch_size" not in params and "n_iter_no_change" not in params


def test_predict_mc_row_predicts_at_one_and_two_threads(monkeypatch):
    seen = []

    def fake_latency(predict, x, calls):
        seen.append((predict.__self__.n_threads, x.shape, x.dtype.name))
        return 1.0

    monkeypatch.setattr(workloads, "median_call_seconds", fake_latency)
    (row,) = workloads.RUNNERS["predict-mc"](runner.TINY, None, None)
    assert (row.label, row.target, row.unit) == ("predict 1000 rows mc 2 vs 1 thr", 1.6, "s/call")
    assert seen == [(1, (1000, 100), "float32"), (2, (1000, 100), "float32")] * 2


def test_busy_row_runs_fastbp_at_its_default_threads(monkeypatch):
    seen = record_fastbp_fits(monkeypatch)
    monkeypatch.setattr(workloads, "burner", lambda core: contextlib.nullcontext())
    workloads.RUNNERS["busy"](runner.TINY, None, None)
    # warm-ups (the busy one's is a quiet fit), then quiet and busy in turns
    assert len(seen) == 4
    assert [(params["n_threads"], blas) for *_, params, blas in seen[::2]] == [(1, 1), (1, 1)]
    assert "n_threads" not in seen[-1][2]  # the busy sample: fastbp's default
    assert seen[-1][3] == max(blas_threads().values())  # and no outer limit


def test_peer_columns_show_a_dash_when_the_peers_are_unavailable(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(peers, "unavailable", lambda peer: f"no {peer} here")
    monkeypatch.setattr(peers, "JaxEpochs", lambda *a, **k: pytest.fail("started JAX"))
    monkeypatch.setattr(peers, "onnxruntime_peer", lambda *a, **k: pytest.fail("ran onnx"))
    monkeypatch.setattr(peers, "jax_start_seconds", lambda *a, **k: pytest.fail("timed JAX"))
    _, result = bench(tmp_path, "--only", "digits32,predict,start")
    out = capsys.readouterr().out
    rows = {row["label"]: row for row in result["rows"]}
    assert all(row["peer"] is None and row["peer_verdict"] is None for row in rows.values())
    assert "jax peer not measured: no jax here" in rows["digits32"]["note"]
    assert "onnxruntime peer not measured: no onnxruntime here" in rows["predict 1 row"]["note"]
    assert "jax@1" not in rows["digits32"]["times"]
    assert "jax peer not measured: no jax here" in rows["warm start both"]["note"]
    assert "jax" not in rows["warm start both"]["times"]
    for label in ("digits32", "predict 1 row", "warm start float64"):
        assert re.search(rf"^{label}\s.*\s—$", out, re.M), label
    assert rows["digits32 GEMM fraction"]["value"] > 0  # numpy's own products still run


def test_start_runs_fresh_processes_per_dtype(tmp_path):
    # --tiny has no cold start (a compile from scratch takes many seconds): warm only.
    _, result = bench(tmp_path, "--only", "start")
    rows = result["rows"]
    assert [r["label"] for r in rows] == [
        "warm start float64", "warm start float32", "warm start both"
    ]
    for row_ in rows:
        assert (row_["metric"], row_["comparison"], row_["target"]) == ("seconds", "<=", 1.5)
        kind = "warm"
        keys = {f"{kind} first_fit", f"{kind} import", f"{kind} wall"}
        assert set(row_["times"]) == keys | ({"jax"} if HAS_JAX else set())
        med = row_["medians"]
        assert med["warm import"] < med["warm first_fit"] < med["warm wall"]
        assert row_["met"] == (row_["value"] <= 1.5)
        if HAS_JAX:  # a JAX user's first fit took turns with fastbp's: the peer column
            assert (row_["peer"], row_["peer_setting"], row_["peer_target"]) == (
                "jax", "fresh process", None)
            assert row_["peer_ratio"] == pytest.approx(med["jax"] / med["warm first_fit"])
            assert "jax: import jax + jit + first epoch" in row_["note"]
        else:
            assert row_["peer"] is None
            assert "jax peer not measured: the jax peer needs" in row_["note"]
    assert "float64+float32" in rows[2]["note"]


def _start_with_fakes(monkeypatch, fastbp_start, jax_start, **settings):
    """``processes.start_workload``'s rows in tiny mode with ``settings``, fastbp's and
    JAX's start-up runs replaced by the fakes (JAX counted as installed)."""
    monkeypatch.setattr(processes, "start_seconds", fastbp_start)
    monkeypatch.setattr(peers, "unavailable", lambda peer: None)
    monkeypatch.setattr(processes, "_start_jax_arguments", lambda X, y, params: "arguments")
    monkeypatch.setattr(peers, "jax_start_seconds", jax_start)
    return processes.start_workload(runner.Settings(**{**vars(runner.TINY), **settings}),
                                    None, None)


def test_cold_runs_get_empty_caches_and_warm_runs_reuse_the_full_one(tmp_path, monkeypatch):
    calls = []

    def fake_run(library, seconds):
        def run(dtypes, cache_dir):
            filled = cache_dir is not None and any(cache_dir.iterdir())
            calls.append((library, tuple(dtypes), cache_dir, filled))
            if cache_dir is not None:  # what a run leaves in its cache
                (cache_dir / f"{'-'.join(dtypes)}.cache").touch()
            return {"first_fit": seconds, "import": seconds / 2, "wall": seconds * 1.5}
        return run

    fastbp_run, jax_run = fake_run("fastbp", 1.0), fake_run("jax", 0.5)

    def fake_start(data_path, params, dtypes, cache_dir):
        assert params["max_iter"] == 1  # a 1-epoch first fit
        return fastbp_run(dtypes, cache_dir)

    def fake_jax_start(arguments, dtypes, cache_dir):
        assert arguments == "arguments"
        return jax_run(dtypes, cache_dir)

    rows = _start_with_fakes(monkeypatch, fake_start, fake_jax_start, cold_start=True,
                             start_repeats=2)
    assert [r.label for r in rows] == [
        f"{kind} start {name}"
        for kind in ("cold", "warm")
        for name in ("float64", "float32", "both")
    ]
    assert [r.target for r in rows] == [4.0, 4.0, 6.0] + [1.5] * 3
    assert all(r.samples == [1.0, 1.0] for r in rows)
    # JAX took half fastbp's time: fastbp's speed-up over it is 0.5, below the cold target
    assert [r.peer_target for r in rows] == [1.0] * 3 + [None] * 3
    assert all(r.peer_samples == [0.5, 0.5] and r.peer_ratio == 0.5 for r in rows)
    assert [r.peer_verdict for r in rows] == ["missed"] * 3 + ["report"] * 3
    assert report.fmt_peer(rows[0]) == "0.50x vs jax fresh process, jax ahead: >= 1x missed"
    assert report.fmt_peer(rows[3]) == "0.50x vs jax fresh process, jax ahead: report"
    keys = "\n".join(report.key_lines(rows, None))
    assert "vs jax fresh process: JAX's import + jit + first epoch" in keys
    assert "both at 1 thread,\n  which" not in keys  # no 1-thread peer on these rows
    # JAX's warm caches are filled first, untimed, one per dtypes name
    fills, calls = calls[:3], calls[3:]
    assert [c[:2] for c in fills] == [("jax", ("float64",)), ("jax", ("float32",)),
                                      ("jax", ("float64", "float32"))]
    assert not any(c[3] for c in fills)
    assert len(calls) == 24
    for repeat in (calls[:12], calls[12:]):
        # the two libraries take turns on each start-up, fastbp first
        assert [c[0] for c in repeat] == ["fastbp", "jax"] * 6
        for library in ("fastbp", "jax"):
            runs = [c[1:] for c in repeat if c[0] == library]
            cold, warm = runs[:3], runs[3:]
            assert [c[0] for c in cold] == [("float64",), ("float32",), ("float64", "float32")]
            assert [c[0] for c in warm] == [c[0] for c in cold]
            assert all(filled for *_, filled in warm)
            if library == "fastbp":
                assert all(not filled for *_, filled in cold)  # every cold run starts empty
                assert len({c[1] for c in cold}) == 3
                assert {c[1] for c in warm} == {cold[2][1]}  # the cold "both" run's cache
            else:  # no persistent cache cold; warm, the cache filled for the same dtypes
                assert [c[1] for c in cold] == [None] * 3
                assert [c[1] for c in warm] == [c[2] for c in fills]
    fastbp_colds = [c[2] for c in calls if c[0] == "fastbp" and not c[3]]
    assert len(fastbp_colds) == len(set(fastbp_colds)) == 6  # never a directory twice


@pytest.mark.parametrize("fails_at", [0, 4], ids=["filling its caches", "mid-run"])
def test_a_failing_jax_start_leaves_fastbps_rows_without_their_peer(monkeypatch, fails_at):
    calls, jax_calls = [], []

    def fake_start(data_path, params, dtypes, cache_dir):
        calls.append(tuple(dtypes))
        return {"first_fit": 1.0, "import": 0.5, "wall": 1.5}

    def broken_jax(arguments, dtypes, cache_dir):
        jax_calls.append(tuple(dtypes))
        if len(jax_calls) > fails_at:
            raise RuntimeError("the JAX start-up process failed; its stderr:\n"
                               "ImportError: jaxlib")
        return {"first_fit": 2.0, "import": 1.0, "wall": 3.0}

    rows = _start_with_fakes(monkeypatch, fake_start, broken_jax, cold_start=True,
                             start_repeats=2)
    assert [r.label for r in rows] == [f"{kind} start {name}" for kind in ("cold", "warm")
                                       for name in ("float64", "float32", "both")]
    assert all(r.peer is None and r.samples == [1.0, 1.0] for r in rows)
    assert all("jax peer not measured: the JAX start-up process failed: ImportError: jaxlib"
               in r.note and "jax" not in r.times for r in rows)
    assert len(calls) == 12  # every fastbp start-up ran, in every repeat
    assert len(jax_calls) == fails_at + 1  # none after the failure


def test_warm_only_start_fills_jax_caches_once_untimed(monkeypatch):
    calls = []

    def fake_jax_start(arguments, dtypes, cache_dir):
        calls.append((tuple(dtypes), cache_dir, any(cache_dir.iterdir())))
        (cache_dir / "program").touch()
        return {"first_fit": 2.0, "import": 1.0, "wall": 3.0}

    def fake_start(data, params, dtypes, cache):
        return {"first_fit": 1.0, "import": 0.5, "wall": 1.5}

    rows = _start_with_fakes(monkeypatch, fake_start, fake_jax_start, start_repeats=2)
    assert [r.label for r in rows] == ["warm start float64", "warm start float32",
                                       "warm start both"]
    assert all(r.peer_ratio == 2.0 and r.peer_verdict == "report" for r in rows)
    fills, timed = calls[:3], calls[3:]
    assert [c[0] for c in fills] == [("float64",), ("float32",), ("float64", "float32")]
    assert not any(filled for *_, filled in fills)
    assert len(timed) == 6 and all(filled for *_, filled in timed)
    assert [c[1] for c in timed] == [c[1] for c in fills] * 2


def test_grid_search_row_takes_turns_after_an_untimed_first_run(monkeypatch):
    calls = []

    def fake_grid(data_path, library, max_iter):
        calls.append(library)
        assert max_iter == 2 and data_path.exists()  # tiny mode; the digits written once
        return {"fastbp": 1.0, "sklearn": 3.0}[library]

    monkeypatch.setattr(processes, "grid_seconds", fake_grid)
    settings = runner.Settings(**{**vars(runner.TINY), "start_repeats": 3})
    (row,) = processes.grid_workload(settings, None, None)
    # the first run of each fills numba's cache (fastbp) and is not timed
    assert calls == ["fastbp", "sklearn"] + ["fastbp", "sklearn"] * 3
    assert (row.label, row.metric, row.target) == ("grid search, fresh process", "speed-up", 2.0)
    assert row.value == 3.0 and row.samples == [3.0] * 3 and row.verdict == "met"


def test_grid_search_row_runs_both_libraries_in_fresh_processes(tmp_path):
    _, result = bench(tmp_path, "--only", "grid")
    (row_,) = result["rows"]
    assert row_["label"] == "grid search, fresh process" and row_["value"] > 0
    assert set(row_["times"]) == {"fastbp", "sklearn"}
    assert "n_jobs=2" in row_["note"]


def test_busy_core_row_against_the_quiet_one_thread_epoch(tmp_path, monkeypatch):
    burners = []
    real_burner = processes.burner

    def watched(core):
        cm = real_burner(core)
        burners.append(core)
        return cm

    monkeypatch.setattr(workloads, "burner", watched)
    _, result = bench(tmp_path, "--only", "busy")
    (busy,) = result["rows"]
    assert (busy["label"], busy["metric"], busy["comparison"], busy["target"]) == (
        "busy core", "slowdown", "<=", 1.25
    )
    med = busy["medians"]
    assert busy["value"] == pytest.approx(med["busy"] / med["quiet@1"])
    assert burners == [max(os.sched_getaffinity(0))]  # the one busy sample; warm-up is quiet
    assert busy["samples"] == pytest.approx([busy["value"]])


def test_burner_holds_one_core_and_is_killed_when_the_block_raises():
    core = max(os.sched_getaffinity(0))
    with pytest.raises(RuntimeError), processes.burner(core) as proc:
        assert os.sched_getaffinity(proc.pid) == {core}
        assert proc.poll() is None  # spinning
        raise RuntimeError
    assert proc.poll() is not None


def test_version_flag(capsys):
    import fastbp

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"fastbp {fastbp.__version__}\n"


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "ratios.png"
    code, _ = bench(tmp_path, "--only", "digits32", "--plot", str(png))
    assert code == 0
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000


def synthetic_rows():
    """Rows of every kind, crowded on purpose: values on their targets and ceilings."""
    rows = []
    for i, (value, target, ceiling, torch) in enumerate(
        [(8.1, 30, 45, 1.2), (1.0, 1.0, None, None), (29.0, 30, 31, 28.0), (0.3, None, 0.35, None),
         (22.8, 20, None, 19.0), (1.01, 1.5, None, None)]
    ):
        r = row(target=target, samples=[value * 0.9, value, value * 1.1])
        r.label, r.torch_ratio = f"workload {i}", torch
        r.ceiling = r.ceiling_1thread = ceiling
        rows.append(r)
    rows[1].peer, rows[1].peer_ratio = "jax", 0.8
    rows.append(row("fraction", 0.5, [0.76, 0.74]))
    rows.append(row("slowdown", 1.25, [1.3, 1.2]))
    rows += [row("seconds", t, [v, v * 1.05]) for v, t in [(12.0, 15.0), (0.9, 2.0), (2.1, 2.0)]]
    rows[-3].peer, rows[-3].peer_ratio = "jax", 0.25  # a start row: JAX's 3 s beside 12
    for i, r in enumerate(rows[-5:]):
        r.label = f"other {i}"
    return rows


def text_overlaps(fig):
    """Pairs of texts, and of a text and a target/ceiling marker, that overlap on the
    rendered figure."""
    from matplotlib.text import Text

    fig.canvas.draw()  # lays the figure out
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    pairs = [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :]
             if box_a.overlaps(box_b)]
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_marker() in (None, "None", "") or line.get_label().startswith("_"):
                continue
            for x, y in ax.transData.transform(line.get_xydata()):
                pairs += [(line.get_label(), name) for name, box in boxes
                          if box.contains(x, y)]
    return pairs


def test_figure_labels_do_not_overlap():
    pytest.importorskip("matplotlib")
    from fastbp._tools import plot

    rows = synthetic_rows()
    fig = plot.figure(rows, "synthetic")
    try:
        assert len(fig.axes) == 3  # speed-ups, other ratios, seconds
        texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
        for verdict in ("met", "missed", "within noise", "report", "target",
                        "fastbp over the fastest peer", "the fastest peer's time"):
            assert verdict in texts, verdict  # the colour key is in the legend
        # on the panel of seconds the peer's marker is its time (value x ratio), not 0.25
        seconds_axis = fig.axes[2]
        (peer_line,) = [line for line in seconds_axis.get_lines()
                        if line.get_label() == "the fastest peer's time"]
        (start,) = [r for r in rows if r.metric == "seconds" and r.peer is not None]
        assert peer_line.get_xdata().tolist() == [start.value * 0.25]
        assert "29.00x, target >= 30x: within noise" in texts
        assert text_overlaps(fig) == []
    finally:
        common.load_pyplot().close(fig)
    # The check itself: the same rows squeezed into a tenth of the height overlap.
    squeezed = plot.figure(rows, "synthetic", row_height=plot.ROW_HEIGHT / 10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "constrained_layout not applied"
            assert text_overlaps(squeezed)
    finally:
        common.load_pyplot().close(squeezed)


def test_plot_without_matplotlib_fails_before_running(tmp_path, monkeypatch, capsys):
    def missing():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(common, "load_pyplot", missing)
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("ran without matplotlib"))
    assert main(["bench", "--tiny", "--plot", str(tmp_path / "x.png")]) == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_json_into_missing_directory_fails_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("ran"))
    assert main(["bench", "--tiny", "--json", str(tmp_path / "nope" / "x.json")]) == 1
    assert "--json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "digits"], "unknown workload(s) digits"),
        (["--only", "wide,nope"], "unknown workload(s) nope"),
        (["--only", ","], "unknown workload"),
        (["--repeats", "0"], "--repeats"),
        (["--json"], "--json"),
        (["--fast"], "unrecognized arguments: --fast"),
    ],
)
def test_bad_arguments_are_argparse_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_help_lists_bench(capsys):
    assert main([]) == 0
    assert "bench" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "--only" in out and "--quick" in out and "--tiny" not in out


@pytest.mark.slow  # importing torch takes seconds; skipped where torch is not installed
def test_torch_side_comparison(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    # mc-b200 at --tiny: two minibatches per epoch, so this is mostly torch's import.
    assert main(["bench", "--tiny", "--only", "mc-b200", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    speed, threads = result["rows"]
    assert result["machine"]["torch"]
    assert speed["torch_ratio"] == pytest.approx(
        speed["medians"]["torch"] / speed["medians"]["fastbp"]
    )
    assert threads["torch_ratio"] is None


def test_interleave_warms_up_then_takes_turns_at_each_thread_count(monkeypatch):
    calls = []
    monkeypatch.setattr(common, "settle", lambda: calls.append(("settle",)))

    def config(name, n_threads):
        def sample():
            calls.append((name, numba.get_num_threads(), set(blas_threads().values())))
            return 1.0

        return sample, (lambda: calls.append((name, "warm-up"))), n_threads

    before = (numba.get_num_threads(), blas_threads())
    samples = common.interleave({"a": config("a", 1), "b": config("b", 2)}, repeats=2)
    assert samples == {"a": [1.0, 1.0], "b": [1.0, 1.0]}
    # a pause after every call with more than one thread: no spinning threads in a turn
    assert [c[:1] for c in calls] == [("a",), ("b",), ("settle",)] * 3
    assert calls[:2] == [("a", "warm-up"), ("b", "warm-up")]
    assert calls[3][1:] == (1, {1})
    assert calls[4][1] == min(2, numba.config.NUMBA_NUM_THREADS)
    assert (numba.get_num_threads(), blas_threads()) == before



@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_one_thread_samples_run_on_one_core_and_the_affinity_comes_back():
    """A "1 thr" figure is a one-core figure on every side: the in-process ones (fastbp,
    onnxruntime, scikit-learn) are pinned like the JAX child, to the same core."""
    before = os.sched_getaffinity(0)
    seen = {}

    def config(n_threads):
        return (lambda: seen.setdefault(n_threads, os.sched_getaffinity(0)) and 1.0,
                None, n_threads)

    common.interleave({"one": config(1), "two": config(2)}, repeats=1)
    assert seen[1] == {max(before)}
    assert seen[2] == before  # more threads: the process's cores
    assert os.sched_getaffinity(0) == before
    with pytest.raises(RuntimeError), common.threads(1):
        raise RuntimeError  # restored when the block raises too
    assert os.sched_getaffinity(0) == before

def test_busy_cores_is_cpu_time_over_wall_time():
    """About 1 for a sample that computes throughout, about 0 for one that sleeps."""
    cores = []

    def spin():
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass
        return 1.0

    assert common.busy_cores(spin, cores)() == 1.0
    assert common.busy_cores(lambda: time.sleep(0.05) or 2.0, cores)() == 2.0
    # a busy neighbour may take the spin's core part of the time, never give it more
    assert 0 <= cores[1] < 0.2 and cores[1] < cores[0] <= 1.2


def test_threads_restored_when_the_block_raises():
    before = (numba.get_num_threads(), blas_threads())
    with pytest.raises(RuntimeError), common.threads(1):
        assert numba.get_num_threads() == 1
        assert set(blas_threads().values()) == {1}
        raise RuntimeError
    assert (numba.get_num_threads(), blas_threads()) == before


def test_training_flops_counts_forward_gradient_and_hidden_deltas():
    # layers 2 -> 3 -> 1, one row: forward 2*(6+3), weight gradients 2*(6+3), the delta
    # into the hidden layer 2*3 (none into the input).
    assert ceilings.training_flops([2, 3, 1], 1) == 18 + 18 + 6
    assert ceilings.training_flops([2, 3, 1], 10) == 420


@pytest.mark.parametrize("n_rows", [500, 505, 10_000, 19])
def test_validation_rows_are_the_ones_scikit_learn_holds_out(n_rows):
    from sklearn.model_selection import train_test_split

    held_out = train_test_split(np.arange(n_rows), test_size=0.1, random_state=0)[1]
    assert ceilings.validation_rows(n_rows, 0.1) == len(held_out)


def test_fit_flops_adds_the_validation_forward_pass_to_each_epoch():
    # layers 2 -> 3 -> 1: 42 FLOP per training row (above), 2*(6+3) per held-out row
    assert ceilings.fit_flops([2, 3, 1], 10, 0, 1) == 420
    assert ceilings.fit_flops([2, 3, 1], 10, 5, 1) == 420 + 5 * 18
    assert ceilings.fit_flops([2, 3, 1], 10, 5, 3) == 3 * (420 + 90)


def fake_peaks(monkeypatch):
    """Peak rates of 1 and 2 threads whose float32 GEMM of 10**3 took 2 and 1 ns."""
    monkeypatch.setattr(ceilings.PeakRates, "thread_counts", staticmethod(lambda: [1, 2]))
    peaks = ceilings.PeakRates(size=10, calls=1)
    seconds = {1: 2e-9, 2: 1e-9}
    samples = {key: [seconds[n]] for key, (_, _, n) in peaks.configs("float32").items()}
    peaks.collect("float32", samples)
    return peaks


@pytest.mark.parametrize(
    "peer, gemm, target, expected",
    [
        # 1 GFLOP at the 1-thread peak (2000 FLOP in 2 ns: 1000 GFLOP/s) takes 1 ms
        (1.2e-3, [1.1e-3], 1.25, ["above that ceiling"]),  # ceiling 1.2x
        (3e-3, [2.7e-3], 1.25, ["above the own-shape ratio"]),  # 3x; own shape 1.11x
        (3e-3, [2e-3], 1.25, []),  # 3x; own shape 1.5x
        (1.2e-3, [1e-3], None, []),  # no target: the ceiling alone
    ],
)
def test_peer_ceiling_is_the_peer_time_over_the_flops_at_one_threads_peak(
        monkeypatch, peer, gemm, target, expected):
    speed = row(target=2.0, samples=[3.0], times={"fastbp": [1.0]})
    vs_peers.set_fastest_peer(speed, [1e-3], {"jax@1": [peer]}, target)
    ceilings.add_peer_ceiling(speed, fake_peaks(monkeypatch), "float32", 1e9, [peer], gemm)
    assert speed.peer_ceiling == pytest.approx(peer / 1e-3)
    assert peak_keys("float32") <= speed.times.keys()
    own = peer / gemm[0]
    assert f"ceiling over jax {peer / 1e-3:.2f}x from 1 GFLOP/epoch" in speed.note
    assert f"{own:.2f}x for an epoch of numpy's products" in speed.note
    found = [text for text in ("above that ceiling", "above the own-shape ratio")
             if text in speed.note]
    assert found == expected
    assert report.fmt_peer(speed).endswith(f" (ceiling {peer / 1e-3:.2f}x)")


def test_ceiling_is_the_reference_time_over_flops_at_peak():
    # The hand measurement it formalises: a digits batch (32 rows, 64 -> 64 -> 10) is
    # about 647 kFLOP of products; at float64's 43 GFLOP/s on one core against
    # scikit-learn's 334 us per batch, no implementation gets past ~22x.
    flops = ceilings.training_flops([64, 64, 10], 32)
    assert flops == pytest.approx(647e3, rel=0.01)
    assert ceilings.speedup_ceiling(334e-6, flops, 43.0) == pytest.approx(22.2, abs=0.1)
    assert ceilings.speedup_ceiling(2.0, 4e9, 8.0) == 4.0


@pytest.mark.parametrize(
    "value, target, limits, expected",
    [
        (12.0, 30, (21.7, 11.0), ["target 30x is above this machine's ceiling 21.7x"]),
        (12.0, 30, (43.4, 21.7), ["target 30x is above the 1-thread ceiling 21.7x"]),
        (12.0, 8, (43.4, 21.7), []),
        (12.0, None, (5.0, 5.0), ["the speed-up is above the ceiling 5.0x"]),
        (3.0, 8, (7.9, 7.0), ["target 8x is above this machine's ceiling 7.9x"]),
    ],
)
def test_ceiling_note_says_when_the_target_is_out_of_reach(value, target, limits, expected):
    note = ceilings.ceiling_note(value, target, *limits)
    assert [part for part in expected if part in note] == expected
    assert bool(note) == bool(expected)
    if "machine's ceiling" in note:
        assert "1-thread" not in note  # the stronger statement only


def test_peak_rates_are_measured_once_per_dtype_and_thread_count():
    peaks = ceilings.PeakRates(size=16, calls=2)
    configs = peaks.configs("float64")
    assert set(configs) == peak_keys("float64") == {
        f"peak float64@{n}" for n in peaks.thread_counts()}
    assert [n for _, _, n in configs.values()] == peaks.thread_counts()
    samples = common.interleave({"other": (lambda: 1.0, None, None), **configs}, repeats=3)
    peaks.collect("float64", samples)
    assert list(samples) == ["other"]  # the peak samples moved into the cache
    assert peaks.configs("float64") == {} and peaks.configs(np.float64) == {}
    assert set(peaks.configs("float32")) == peak_keys("float32")
    times = peaks.times("float64")
    assert set(times) == set(configs) and all(len(t) == 3 for t in times.values())
    seconds = statistics.median(times["peak float64@1"])
    assert peaks.gflops("float64", 1) == pytest.approx(2 * 16**3 / seconds / 1e9)


def row(metric="speed-up", target=2.0, samples=(3.0,), times=None):
    """A report row of synthetic samples (its value: their median)."""
    times = times or {"x": [1.0]}
    value = statistics.median(samples)
    return report.Row("w", "w", metric, value, target, "", "", times, "s", list(samples))


def test_row_met_follows_metric_direction():
    seconds = row("seconds", samples=[3.0])
    assert seconds.met is False and seconds.comparison == "<="
    assert row("seconds", samples=[1.5]).met is True
    ratio = row("speed-up", samples=[3.0])
    assert ratio.met is True and ratio.comparison == ">="
    assert row("speed-up", target=None).met is None
    assert row("slowdown", target=1.25, samples=[1.1]).met is True
    assert row("slowdown", target=1.25, samples=[1.3]).comparison == "<="


@pytest.mark.parametrize(
    "comparison, target, samples, expected",
    [
        (">=", 5.0, [8.0, 8.2, 9.0], "met"),
        (">=", 5.0, [4.44, 6.0, 8.21], "within noise"),  # once read "missed", then "met"
        (">=", 5.0, [4.4, 4.9, 3.0], "missed"),
        (">=", 5.0, [5.0], "met"),  # on the target counts as met
        ("<=", 2.0, [1.9, 2.0], "met"),
        ("<=", 2.0, [1.5, 2.5], "within noise"),
        ("<=", 2.0, [2.1, 3.0], "missed"),
    ],
)
def test_verdict_needs_every_sample_on_one_side_of_the_target(
    comparison, target, samples, expected
):
    assert report.verdict(samples, target, comparison) == expected
    assert report.verdict(samples, None, comparison) == "report"


def test_verdict_ignores_the_median_when_samples_straddle():
    # median 6.0 >= 5: the old rule said "met"; repeats at 4.4 and 7.9 say the run cannot tell
    straddling = row(target=5.0, samples=[4.4, 6.0, 7.9])
    assert straddling.value >= straddling.target
    assert (straddling.verdict, straddling.met, straddling.within_noise) == (
        "within noise", None, True
    )
    assert report.fmt_result(straddling) == "within noise"


def test_noisy_rows_are_flagged():
    quiet = row(times={"a": [1.0, 1.5]})
    noisy = row(times={"a": [1, 1], "b": [1, 3]})
    assert (quiet.spread, noisy.spread) == (1.5, 3.0)
    assert report.fmt_result(quiet) == "met"
    assert report.fmt_result(noisy) == "met (noisy)"


def thread_row(one, two):
    samples = {"fastbp": two, "sklearn": [5.0] * len(two), "fastbp@1": one, "fastbp@2": two}
    return workloads.speed_rows("w", "w", samples, 2.0, 10, 10, 1.0, "s/epoch", [2.0])[1]


def test_thread_rows_verdict_from_repeat_by_repeat_ratios():
    """A "never slower" row whose per-repeat ratios straddle 1 reads "within noise"; one
    whose 2-thread runs were all slower than their 1-thread turns is missed."""
    overlap = thread_row([1.0, 1.2], [1.1, 1.15])
    assert overlap.samples == pytest.approx([1.0 / 1.1, 1.2 / 1.15])
    assert overlap.within_noise and report.fmt_result(overlap) == "within noise"
    apart = thread_row([1.0, 1.05], [1.1, 1.3])
    assert apart.met is False and report.fmt_result(apart) == "missed"
    faster = thread_row([2.0, 2.2], [1.0, 1.5])
    assert faster.met and report.fmt_result(faster) == "met"


def test_table_explains_every_mark_and_shows_no_peer_as_a_dash(capsys):
    rows = [
        row(target=5.0, samples=[4.0, 6.0], times={"a": [1.0, 3.0]}),  # noisy, within noise
        row(target=None),
        row("seconds", target=2.0, samples=[1.0]),
    ]
    rows[0].reference = "sklearn 1 s/epoch*"
    rows[0].ceiling, rows[0].ceiling_1thread = 9.0, 4.5
    rows[1].peer, rows[1].peer_ratio = "jax", 1.5
    rows[2].peer, rows[2].peer_ratio, rows[2].peer_target = "onnxruntime", 0.5, 1.2
    rows[2].peer_samples = [0.4, 0.6]
    report.print_report(rows, torch=None)
    out = capsys.readouterr().out
    table = out.splitlines()[: len(rows) + 1]
    assert table[0].endswith("fastest peer") and table[1].endswith("—")
    assert table[2].endswith("1.50x vs jax 1 thr, fastbp ahead: report")
    assert table[3].endswith("0.50x vs onnxruntime 1 thr, onnxruntime ahead: >= 1.2x missed")
    key = "\n".join(out.splitlines()[len(rows) + 1 :])
    for mark in ("*:", "ceiling (1 thr):", "within noise:", "report:", "(noisy):", "—:",
                 "fastest peer:"):
        assert mark in key, mark
    assert "slowdown:" not in key  # only marks that are in the table
    assert "--details" in key and "per repeat" not in out
    report.print_report(rows, torch=None, details=True)
    details = capsys.readouterr().out
    assert "w: per repeat 4, 6" in details and "  a (s): 1.00 s, 3.00 s" in details


def test_quick_mode_settings_without_torch(monkeypatch, capsys):
    seen = {}

    def fake_run(settings, names, torch=None, log=print):
        seen.update(settings=settings, names=names, torch=torch)
        return [], {}

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(runner, "load_torch", lambda: pytest.fail("torch loaded in --quick"))
    assert main(["bench", "--quick", "--repeats", "2", "--only", "wide"]) == 0
    settings = seen["settings"]
    assert settings.mode == "quick" and not settings.cold_start and not settings.torch
    assert not settings.jax_large and runner.FULL.jax_large  # JAX on digits only in quick
    assert (settings.repeats, settings.wide_repeats, settings.start_repeats) == (2, 2, 2)
    assert seen["names"] == ["wide"] and seen["torch"] is None
    out = capsys.readouterr().out
    assert "indicative only" in out and "PyTorch comparison: off (not in quick mode)" in out
    assert "JAX only on digits" in out


def test_fastest_peer_is_the_one_with_the_smallest_median():
    speed = row(target=2.0, samples=[3.0, 3.0], times={"fastbp": [1.0, 2.0]})
    vs_peers.set_fastest_peer(
        speed, [1.0, 2.0], {"slow@1": [4.0, 4.0], "jax@1": [1.5, 1.0]}, 1.25
    )
    assert (speed.peer, speed.peer_target) == ("jax", 1.25)
    assert speed.peer_ratio == pytest.approx(1.25 / 1.5)
    assert speed.peer_samples == pytest.approx([1.5, 0.5])
    assert speed.peer_verdict == "within noise" and speed.times["jax@1"] == [1.5, 1.0]
    assert "slow@1" not in speed.times
    assert report.fmt_peer(speed) == "0.83x vs jax 1 thr, jax ahead: >= 1.25x within noise"
