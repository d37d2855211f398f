"""``python -m fastbp bench`` runs every code path on tiny data (the hidden ``--tiny`` knob),
prints its table, writes its JSON and PNG, and rejects bad arguments. Nothing here checks
a speed: the speed targets are what the benchmark reports, not what the tests assert."""

import json
import re
import statistics

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastbp import _bench, _cli
from fastbp.__main__ import main

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
}


def bench(tmp_path, *args):
    """Run ``bench --tiny --no-torch *args`` in process; return (exit code, JSON report)."""
    out = tmp_path / "bench.json"
    code = main(["bench", "--tiny", "--no-torch", "--json", str(out), *args])
    return code, json.loads(out.read_text())


def blas_threads():
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}


def test_json_report_and_table(tmp_path, capsys):
    code, report = bench(tmp_path, "--only", "digits32,mc-b32,wide")
    assert code == 0
    out = capsys.readouterr().out

    assert report["mode"] == "tiny" and report["workloads"] == ["digits32", "mc-b32", "wide"]
    assert list(report["workload_seconds"]) == report["workloads"]
    assert re.search(r"^\[2/3\] mc-b32: make_classification .+ \(\d+ s\)$", out, re.M)
    machine = report["machine"]
    for key in ("cores", "usable_cores", "cpu", "numpy", "numba", "sklearn", "blas"):
        assert machine[key], key
    assert machine["torch"] is None  # --no-torch
    assert any(
        lib["internal_api"] == "openblas" or lib["user_api"] == "blas" for lib in machine["blas"]
    )

    rows = report["rows"]
    assert [row["label"] for row in rows] == [
        "digits32",
        "digits32 2 vs 1 thr",
        "mc-b32",
        "mc-b32 2 vs 1 thr",
        "wide GFLOP/s vs GEMM",
        "wide",
        "wide 2 vs 1 thr",
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
        times = row["times"]
        assert row["within_noise"] == (
            row["met"] is False
            and "fastbp@2" in times
            and min(times["fastbp@2"]) <= max(times["fastbp@1"])
        )
        assert row["torch_ratio"] is None

    digits, digits_threads, mc = rows[0], rows[1], rows[2]
    peak_keys = {f"peak@{n}" for n in _bench.PeakRates.thread_counts()}
    assert set(digits["times"]) == {"fastbp", "sklearn"} | peak_keys
    med = digits["medians"]
    assert digits["value"] == pytest.approx(med["sklearn"] / med["fastbp"])
    assert digits["target"] == 30
    assert set(digits_threads["times"]) == {"fastbp@1", "fastbp@2"}
    assert digits_threads["value"] == pytest.approx(
        digits_threads["medians"]["fastbp@1"] / digits_threads["medians"]["fastbp@2"]
    )
    assert "sklearn trained on 200 of 400 rows" in mc["note"]
    gflops, wide, wide_threads = rows[4], rows[5], rows[6]
    assert (gflops["metric"], gflops["target"], wide["target"]) == ("fraction", 0.5, None)
    assert wide_threads["target"] == 1.5 and "gemm@1" in wide_threads["times"]
    flops = _bench.training_flops([256, 1024, 1024, 10], 512)
    gemm_flops = 2 * 512 * 1024 * 1024
    expected = (flops / gflops["medians"]["fastbp"]) / (gemm_flops / gflops["medians"]["gemm"])
    assert gflops["value"] == pytest.approx(expected)

    # Ceilings: on the fit workloads' speed-up rows only, recomputed here from the row's
    # own medians, the FLOP count and the size of the peak GEMM.
    units = {"digits32": [64, 64, 10], "mc-b32": [100, 256, 128, 10], "wide": [256, 1024, 1024, 10]}
    n_rows = {"digits32": 1797, "mc-b32": 400, "wide": 512}
    peak_flops = 2 * report["settings"]["peak_size"] ** 3
    for row in rows:
        if row["label"] not in units:
            assert row["ceiling"] is None and row["ceiling_1thread"] is None
            continue
        med = row["medians"]
        rates = {key: peak_flops / med[key] for key in peak_keys}  # FLOP/s
        epoch_flops = _bench.training_flops(units[row["label"]], n_rows[row["label"]])
        assert row["ceiling"] == pytest.approx(med["sklearn"] * max(rates.values()) / epoch_flops)
        assert row["ceiling_1thread"] == pytest.approx(
            med["sklearn"] * rates["peak@1"] / epoch_flops
        )
        assert 0 < row["ceiling_1thread"] <= row["ceiling"] < float("inf")
        assert "GFLOP/epoch at the peak" in row["note"]
        above = row["target"] is not None and row["target"] > row["ceiling"]
        assert ("is above this machine's ceiling" in row["note"]) == above
    # float32's peak was measured once (during digits32) and reused by wide.
    for key in peak_keys:
        assert wide["times"][key] == digits["times"][key] != mc["times"][key]

    # The printed table: a header, one line per row, and the machine above it.
    assert re.search(r"^machine: \d+ cores \(\d+ usable\)", out, re.M)
    header = r"^workload\s+fastbp\s+reference\s+ratio\s+ceiling \(1 thr\)\s+target\s+result$"
    assert re.search(header, out, re.M)
    digits_line = (
        r"^digits32\s+\S+ ms/epoch\s+sklearn .+x\s+(\S+)x \((\S+)x\)\s+>= 30x\s+(met|missed)$"
    )
    ceilings = re.search(digits_line, out, re.M).groups()[:2]
    assert ceilings == (f"{digits['ceiling']:.1f}", f"{digits['ceiling_1thread']:.1f}")
    assert re.search(r"^digits32 2 vs 1 thr\s+.+x\s+-\s+>= 1x", out, re.M)
    assert re.search(r"^wide\s+.+x \(.+x\)\s+-\s+report$", out, re.M)
    assert re.search(r"^ceiling: the largest speed-up over sklearn", out, re.M)
    assert "indicative only" in out
    assert "vs torch" not in out


def test_only_keeps_table_order_and_selects(tmp_path):
    _, report = bench(tmp_path, "--only", "predict,digits64")
    assert report["workloads"] == ["digits64", "predict"]
    assert {row["workload"] for row in report["rows"]} == {"digits64", "predict"}
    predict = report["rows"][2]
    assert predict["label"] == "predict 1 row" and predict["target"] == 20
    assert predict["unit"] == "s/call"


def test_start_runs_a_fresh_process(tmp_path):
    # --tiny has no cold start (a compile from scratch takes many seconds): warm only.
    _, report = bench(tmp_path, "--only", "start")
    (row,) = report["rows"]
    assert (row["label"], row["metric"], row["comparison"]) == ("warm start", "seconds", "<=")
    assert row["target"] == 2.0
    assert set(row["times"]) == {"warm first_fit", "warm import", "warm wall"}
    med = row["medians"]
    assert med["warm import"] < med["warm first_fit"] < med["warm wall"]
    assert row["met"] == (row["value"] <= 2.0)


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "ratios.png"
    code, _ = bench(tmp_path, "--only", "digits32", "--plot", str(png))
    assert code == 0
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000


def test_plot_without_matplotlib_fails_before_running(tmp_path, monkeypatch, capsys):
    def missing():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(_cli, "load_pyplot", missing)
    monkeypatch.setattr(_bench, "run", lambda *a, **k: pytest.fail("ran without matplotlib"))
    assert main(["bench", "--tiny", "--plot", str(tmp_path / "x.png")]) == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_json_into_missing_directory_fails_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_bench, "run", lambda *a, **k: pytest.fail("ran"))
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
    report = json.loads(out.read_text())
    speed, threads = report["rows"]
    assert report["machine"]["torch"]
    assert speed["torch_ratio"] == pytest.approx(
        speed["medians"]["torch"] / speed["medians"]["fastbp"]
    )
    assert threads["torch_ratio"] is None


def test_interleave_warms_up_then_takes_turns_at_each_thread_count():
    calls = []

    def config(name, n_threads):
        def sample():
            calls.append((name, numba.get_num_threads(), set(blas_threads().values())))
            return 1.0

        return sample, (lambda: calls.append((name, "warm-up"))), n_threads

    before = (numba.get_num_threads(), blas_threads())
    samples = _bench.interleave({"a": config("a", 1), "b": config("b", 2)}, repeats=2)
    assert samples == {"a": [1.0, 1.0], "b": [1.0, 1.0]}
    assert [c[:1] for c in calls] == [("a",), ("b",), ("a",), ("b",), ("a",), ("b",)]
    assert calls[:2] == [("a", "warm-up"), ("b", "warm-up")]
    assert calls[2][1:] == (1, {1})
    assert calls[3][1] == min(2, numba.config.NUMBA_NUM_THREADS)
    assert (numba.get_num_threads(), blas_threads()) == before


def test_threads_restored_when_the_block_raises():
    before = (numba.get_num_threads(), blas_threads())
    with pytest.raises(RuntimeError), _bench.threads(1):
        assert numba.get_num_threads() == 1
        assert set(blas_threads().values()) == {1}
        raise RuntimeError
    assert (numba.get_num_threads(), blas_threads()) == before


def test_training_flops_counts_forward_gradient_and_hidden_deltas():
    # layers 2 -> 3 -> 1, one row: forward 2*(6+3), weight gradients 2*(6+3), the delta
    # into the hidden layer 2*3 (none into the input).
    assert _bench.training_flops([2, 3, 1], 1) == 18 + 18 + 6
    assert _bench.training_flops([2, 3, 1], 10) == 420


def test_ceiling_is_the_reference_time_over_flops_at_peak():
    # The hand measurement it formalises: a digits batch (32 rows, 64 -> 64 -> 10) is
    # about 647 kFLOP of products; at float64's 43 GFLOP/s on one core against
    # scikit-learn's 334 us per batch, no implementation gets past ~22x.
    flops = _bench.training_flops([64, 64, 10], 32)
    assert flops == pytest.approx(647e3, rel=0.01)
    assert _bench.speedup_ceiling(334e-6, flops, 43.0) == pytest.approx(22.2, abs=0.1)
    assert _bench.speedup_ceiling(2.0, 4e9, 8.0) == 4.0


@pytest.mark.parametrize(
    "value, target, ceilings, expected",
    [
        (12.0, 30, (21.7, 11.0), ["target 30x is above this machine's ceiling 21.7x"]),
        (12.0, 30, (43.4, 21.7), ["target 30x is above the 1-thread ceiling 21.7x"]),
        (12.0, 8, (43.4, 21.7), []),
        (12.0, None, (5.0, 5.0), ["the speed-up is above the ceiling 5.0x"]),
        (3.0, 8, (7.9, 7.0), ["target 8x is above this machine's ceiling 7.9x"]),
    ],
)
def test_ceiling_note_says_when_the_target_is_out_of_reach(value, target, ceilings, expected):
    note = _bench.ceiling_note(value, target, *ceilings)
    assert [part for part in expected if part in note] == expected
    assert bool(note) == bool(expected)
    if "machine's ceiling" in note:
        assert "1-thread" not in note  # the stronger statement only


def test_peak_rates_are_measured_once_per_dtype_and_thread_count():
    peaks = _bench.PeakRates(size=16, calls=2)
    configs = peaks.configs("float64")
    assert set(configs) == {f"peak@{n}" for n in peaks.thread_counts()}
    assert [n for _, _, n in configs.values()] == peaks.thread_counts()
    samples = _bench.interleave({"other": (lambda: 1.0, None, None), **configs}, repeats=3)
    peaks.collect("float64", samples)
    assert list(samples) == ["other"]  # the peak samples moved into the cache
    assert peaks.configs("float64") == {} and peaks.configs(np.float64) == {}
    assert set(peaks.configs("float32")) == set(configs)
    times = peaks.times("float64")
    assert set(times) == set(configs) and all(len(t) == 3 for t in times.values())
    seconds = statistics.median(times["peak@1"])
    assert peaks.gflops("float64", 1) == pytest.approx(2 * 16**3 / seconds / 1e9)


def test_row_met_follows_metric_direction():
    row = _bench.Row("w", "w", "seconds", 3.0, 2.0, "", "", {"x": [3.0]}, "s")
    assert row.met is False and row.comparison == "<="
    row.value = 1.5
    assert row.met is True
    ratio = _bench.Row("w", "w", "speed-up", 3.0, 2.0, "", "", {"x": [3.0]}, "s")
    assert ratio.met is True and ratio.comparison == ">="
    ratio.target = None
    assert ratio.met is None


def test_noisy_rows_are_flagged():
    quiet = _bench.Row("w", "w", "speed-up", 3.0, 2.0, "", "", {"a": [1.0, 1.5]}, "s")
    noisy = _bench.Row("w", "w", "speed-up", 3.0, 2.0, "", "", {"a": [1, 1], "b": [1, 3]}, "s")
    assert (quiet.spread, noisy.spread) == (1.5, 3.0)
    assert _bench._fmt_result(quiet) == "met"
    assert _bench._fmt_result(noisy) == "met (noisy)"


def test_thread_rows_below_target_within_noise():
    """A "never slower" row whose samples overlap reads "noise", not "missed"; one whose
    2-thread runs were all slower than every 1-thread run is missed."""
    overlap = _bench._speed_rows(
        "w", "w", {"fastbp": [1.0], "sklearn": [5.0], "fastbp@1": [1.0, 1.2],
                   "fastbp@2": [1.1, 1.15]}, 2.0, 10, 10, 1.0, "s/epoch",
    )[1]
    assert overlap.met is False and overlap.within_noise
    assert _bench._fmt_result(overlap) == "noise"
    apart = _bench._speed_rows(
        "w", "w", {"fastbp": [1.0], "sklearn": [5.0], "fastbp@1": [1.0, 1.05],
                   "fastbp@2": [1.1, 1.3]}, 2.0, 10, 10, 1.0, "s/epoch",
    )[1]
    assert apart.met is False and not apart.within_noise
    assert _bench._fmt_result(apart) == "missed"
    faster = _bench._speed_rows(
        "w", "w", {"fastbp": [1.0], "sklearn": [5.0], "fastbp@1": [2.0, 2.2],
                   "fastbp@2": [1.0, 1.5]}, 2.0, 10, 10, 1.0, "s/epoch",
    )[1]
    assert faster.met and not faster.within_noise and _bench._fmt_result(faster) == "met"


def test_quick_mode_settings_without_torch(monkeypatch, capsys):
    seen = {}

    def fake_run(settings, names, torch=None, log=print):
        seen.update(settings=settings, names=names, torch=torch)
        return [], {}

    monkeypatch.setattr(_bench, "run", fake_run)
    monkeypatch.setattr(_bench, "_load_torch", lambda: pytest.fail("torch loaded in --quick"))
    assert main(["bench", "--quick", "--repeats", "2", "--only", "wide"]) == 0
    settings = seen["settings"]
    assert settings.mode == "quick" and not settings.cold_start and not settings.torch
    assert (settings.repeats, settings.wide_repeats, settings.start_repeats) == (2, 2, 2)
    assert seen["names"] == ["wide"] and seen["torch"] is None
    out = capsys.readouterr().out
    assert "indicative only" in out and "PyTorch comparison: off (not in quick mode)" in out
