"""The command line demo and the example scripts run, print their results and write their
figures. Quick mode (``--quick``, ``FASTBP_EXAMPLE_QUICK=1``) keeps each to a few seconds;
nothing here checks speed."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastbp.__main__ import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# "model  test accuracy  median fit (s)  speed-up vs sklearn" rows of the demo's table
ROW = r"^{name}\s+(?P<acc>[01]\.\d{{4}})\s+\d+\.\d{{3}}\s+(?P<ratio>\d+\.\d{{2}})x$"


def run(args, cwd):
    env = {**os.environ, "FASTBP_EXAMPLE_QUICK": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def check_table(out):
    assert re.search(r"^machine: \d+", out, re.M), out
    assert "fastbp first fit (compile or cache load):" in out
    assert re.search(r"^model\s+test accuracy\s+median fit \(s\)\s+speed-up vs sklearn$", out, re.M)
    rows = {}
    for name in ("fastbp", "sklearn"):
        match = re.search(ROW.format(name=name), out, re.M)
        assert match, f"no table row for {name}:\n{out}"
        assert float(match["acc"]) > 0.5  # 10 classes: far above chance
        rows[name] = match
    assert rows["sklearn"]["ratio"] == "1.00"  # the reference row


def check_png(path):
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 1000


def test_demo_in_process(capsys):
    assert main(["demo", "--quick"]) == 0
    check_table(capsys.readouterr().out)


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "demo" in out


def test_demo_rejects_zero_repeats(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--repeats", "0"])
    assert exc.value.code == 2
    assert "--repeats" in capsys.readouterr().err


def test_demo_cli_with_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = run(["-m", "fastbp", "demo", "--quick", "--repeats", "2", "--plot", "demo.png"], tmp_path)
    check_table(out)
    assert "median of 2 fit(s)" in out
    check_png(tmp_path / "demo.png")


def test_quickstart(tmp_path):
    out = run([str(EXAMPLES / "quickstart.py")], tmp_path)
    accuracy = re.search(r"^test accuracy: ([01]\.\d{3})$", out, re.M)
    assert accuracy and float(accuracy[1]) > 0.6, out
    assert "predictions (first 10 test rows):" in out
    assert "class probabilities (first 3 test rows):" in out


def test_pipeline_grid_search(tmp_path):
    out = run([str(EXAMPLES / "pipeline_grid_search.py")], tmp_path)
    assert re.search(r"^best params: \{'mlp__alpha': .+'mlp__hidden_layer_sizes': ", out, re.M)
    score = re.search(r"^best CV accuracy: ([01]\.\d{3})$", out, re.M)
    assert score and float(score[1]) > 0.8, out
    assert "test accuracy of the refitted best pipeline:" in out


def test_plot_loss_curves(tmp_path):
    pytest.importorskip("matplotlib")
    out = run([str(EXAMPLES / "plot_loss_curves.py")], tmp_path)  # default path: cwd
    assert re.search(r"^sgd .+: 10 epochs, final loss \d", out, re.M), out
    assert re.search(r"^adam .+: 10 epochs, final loss \d", out, re.M), out
    check_png(tmp_path / "loss_curves.png")


def test_compare_toolbox(tmp_path):
    pytest.importorskip("matplotlib")
    out = run([str(EXAMPLES / "compare_toolbox.py"), "cmp.png"], tmp_path)
    assert re.search(r"^digits \(\d+ train / \d+ validation rows\), \d+ epochs$", out, re.M)
    for label in ("gelu", "leaky_relu", "adamw (lr", "rmsprop (lr", "adagrad (lr"):
        row = re.search(rf"^{re.escape(label)}.*validation loss (\d+\.\d+)\s+accuracy "
                        r"([01]\.\d{4})$", out, re.M)
        assert row, f"no row for {label}:\n{out}"
        assert float(row[2]) > 0.5  # 10 classes: far above chance
    check_png(tmp_path / "cmp.png")


def test_robust_outliers(tmp_path):
    out = run([str(EXAMPLES / "robust_outliers.py"), "--quick"], tmp_path)
    constant = re.search(r"^test RMSE of the training median: (\d+\.\d)$", out, re.M)
    assert constant, out
    rmse = {}
    for row in re.finditer(r"^(\w+Scaler)\s+(\w+)\s+(squared_error|huber)"
                           r"\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)$", out, re.M):
        rmse[row[1], row[2], row[3]] = [float(v) for v in row.group(4, 5, 6)]
    assert len(rmse) == 6, out
    clean, x_outliers, _ = rmse["SoftClipScaler", "StandardScaler", "squared_error"]
    assert clean < float(constant[1])  # a scaled target: better than a constant
    # the point of the scaler: the missing-value codes in X do not hurt, and the others
    # (no clip, or a mean and std that the codes move) do worse with them
    assert x_outliers < 1.05 * clean
    for x_scaler in ("StandardScaler", "RobustScaler"):
        assert x_outliers < rmse[x_scaler, "StandardScaler", "squared_error"][1], out

def test_dask_grid_search(tmp_path):
    pytest.importorskip("distributed")
    out = run([str(EXAMPLES / "dask_grid_search.py")], tmp_path)
    assert re.search(r"^8 candidates x 3 folds on 2 workers: \d+\.\d s$", out, re.M), out
    score = re.search(r"^best CV accuracy: ([01]\.\d{3})$", out, re.M)
    assert score and float(score[1]) > 0.5, out


def test_out_of_core(tmp_path):
    out = run([str(EXAMPLES / "out_of_core.py")], tmp_path)
    accuracies = [float(a) for a in re.findall(r"held-out accuracy ([01]\.\d{3})$", out, re.M)]
    assert len(accuracies) == 2 and accuracies[-1] > 0.9, out
    assert "weights are float32" in out


def test_onnx_export(tmp_path):
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    out = run([str(EXAMPLES / "onnx_export.py"), "m.onnx"], tmp_path)
    assert "onnxruntime labels equal fastbp's: True" in out, out
    diff = re.search(r"max \|probability difference\|: (\S+)$", out, re.M)
    assert diff and float(diff[1]) < 1e-4, out
    assert (tmp_path / "m.onnx").stat().st_size > 1000


def test_warmup_command(capsys):
    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"kernels ready in \d+\.\d s \(numba's on-disk cache\)$", out.strip()), out
