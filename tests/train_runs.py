"""Runs shared by test_train.py and test_notebook.py, built once per test session.

Each builder caches its result under pytest's session base temp directory, so a second module
asking for it (or a second call) reuses the files instead of training again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from posrec.paths import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
CI_CONFIG = ROOT / "configs" / "ci_penn_slice.yaml"
PENN_LABELS = shared_data_dir() / "skeleton" / "penn_action" / "labels"


def penn_pickle(base: Path) -> Path:
    """Real Penn Action, converted by posrec's reader (official split) and saved as a pickle."""
    import pytest

    from posrec.io.datasets import convert
    from posrec.io.pickle import save_dataset

    if not PENN_LABELS.is_dir():
        pytest.skip(f"Penn Action not found at {PENN_LABELS} (set POSREC_SHARED_DATA)")
    out = base / "penn_action.pkl"
    if not out.exists():
        save_dataset(convert(PENN_LABELS, "penn"), out)
    return out


def ci_run(base: Path) -> tuple[Path, dict, float]:
    """configs/ci_penn_slice.yaml trained on real Penn Action: (run dir, metrics, seconds)."""
    from posrec.config import load_config
    from posrec.train import train

    run = base / "ci_run"
    done = run / "result.json"
    if not done.exists():
        cfg = load_config(CI_CONFIG, [f"data.source={penn_pickle(base)}", "data.format=pickle",
                                      f"out_dir={run}"])
        t0 = time.perf_counter()
        metrics = train(cfg)
        seconds = time.perf_counter() - t0
        done.write_text(json.dumps({"metrics": metrics, "seconds": seconds}))
    r = json.loads(done.read_text())
    return run, r["metrics"], r["seconds"]
