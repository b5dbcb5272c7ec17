"""notebooks/analyse_run.ipynb runs top to bottom on a real run directory (the CI run on Penn
Action, shared with test_train.py) and shows what it promises."""

from __future__ import annotations

import json
import os

import pytest

from train_runs import ROOT, ci_run

NOTEBOOK = ROOT / "notebooks" / "analyse_run.ipynb"


@pytest.mark.slow
def test_analyse_run_notebook_executes(tmp_path_factory, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run, metrics, _ = ci_run(tmp_path_factory.getbasetemp())
    # As a user runs it: the kernel in notebooks/, the run named relative to the repository
    # root (which, from notebooks/, names nothing)
    relative = os.path.relpath(run, ROOT)
    assert not (NOTEBOOK.parent / relative).exists()
    monkeypatch.setenv("POSREC_RUN_DIR", relative)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}
                            ).execute()  # raises CellExecutionError on any failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert len(images) >= 3  # learning curves, confusion matrix, per-class accuracy
    assert "6 epochs" in text
    assert "test_best: best.pt on split test" in text  # which checkpoint and split it shows
    assert json.dumps(metrics["test_top1"]) in text  # the summary printed from the scores
    assert "baseball_pitch" in html and "predicted" in html  # per-class and confused pairs
