"""notebooks/analyse_run.ipynb runs top to bottom on a real run directory (the CI run on Penn
Action, shared with test_train.py) and shows what it promises."""

from __future__ import annotations

import json
import os

import pytest

from notebook_runner import execute
from train_runs import ROOT, ci_run

NOTEBOOK = ROOT / "notebooks" / "analyse_run.ipynb"


@pytest.mark.slow
def test_analyse_run_notebook_executes(tmp_path_factory, monkeypatch):
    run, metrics, _ = ci_run(tmp_path_factory.getbasetemp())
    # As a user runs it: the kernel in notebooks/, the run named relative to the repository
    # root (which, from notebooks/, names nothing)
    relative = os.path.relpath(run, ROOT)
    assert not (NOTEBOOK.parent / relative).exists()
    monkeypatch.setenv("POSREC_RUN_DIR", relative)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    images, text, html = execute(NOTEBOOK, timeout=300)
    assert len(images) >= 3  # learning curves, confusion matrix, per-class accuracy
    assert "6 epochs" in text
    assert "test_best: best.pt on split test" in text  # which checkpoint and split it shows
    assert json.dumps(metrics["test_top1"]) in text  # the summary printed from the scores
    assert "baseball_pitch" in html and "predicted" in html  # per-class and confused pairs
