"""Metrics against hand-computed values, result folders that are never written over.

The score arrays here are written by hand: the point is to know every expected number (ties,
classes without samples), which real scores cannot provide.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from posrec.cli import main
from posrec.errors import PosrecError
from posrec.evaluate import confusion, ensemble, score_metrics, topk, write_results
from posrec.io.pickle import save_pickle

# 5 samples, 4 classes; class 3 has no sample. Row 1 ties classes 0 and 1 (the lower index
# ranks first, as argmax), row 4 ties all four (label 2 ranks third).
SCORES = np.array([[0.7, 0.2, 0.1, 0.0],    # label 0: top-1 right
                   [0.4, 0.4, 0.2, 0.0],    # label 1: tie 0/1 -> predicted 0; in top-2
                   [0.1, 0.2, 0.3, 0.4],    # label 2: predicted 3 (no samples); 2nd
                   [0.1, 0.6, 0.3, 0.0],    # label 1: right
                   [0.25, 0.25, 0.25, 0.25]])  # label 2: tie -> predicted 0; rank 3 of 4
LABELS = np.array([0, 1, 2, 1, 2])


def test_topk_by_hand_with_ties():
    assert topk(SCORES, LABELS, 1) == pytest.approx(2 / 5)          # rows 0, 3
    assert topk(SCORES, LABELS, 2) == pytest.approx(4 / 5)          # + row 1 (tie), row 2
    assert topk(SCORES, LABELS, 3) == pytest.approx(5 / 5)          # + row 4 (third of a tie)
    assert topk(SCORES, LABELS, 10) == 1.0                          # k beyond K: all
    assert np.isnan(topk(SCORES[:0], LABELS[:0], 1))


def test_confusion_and_mean_class_accuracy_by_hand():
    cm = confusion(LABELS, SCORES.argmax(1), 4)
    expected = np.array([[1, 0, 0, 0],
                         [1, 1, 0, 0],
                         [1, 0, 0, 1],
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    m = score_metrics(SCORES, LABELS)
    # per class: 0 -> 1/1, 1 -> 1/2, 2 -> 0/2; class 3 (no samples) is left out of the mean
    assert m["mean_class_acc"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["top1"] == pytest.approx(0.4) and m["num_samples"] == 5
    assert m["top5"] == 1.0  # K = 4 < 5: every label is in the top 5


def _scores_file(path, scores=SCORES, labels=LABELS):
    save_pickle({"scores": scores.astype(np.float32), "labels": labels,
                 "frame_dirs": [f"c{i}" for i in range(len(labels))],
                 "class_names": ["a", "b", "c", "d"]}, path)


def test_write_results_never_over_an_earlier_result(tmp_path):
    m = score_metrics(SCORES, LABELS)
    write_results(tmp_path / "r", SCORES, LABELS, list("vwxyz"), list("abcd"), m,
                  about={"checkpoint": "x/best.pt", "split": "test"}, title="best.pt on test")
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["checkpoint"] == "x/best.pt" and saved["split"] == "test"
    before = (tmp_path / "r" / "scores.pkl").read_bytes()
    with pytest.raises(PosrecError, match="already holds a result"):
        write_results(tmp_path / "r", SCORES, LABELS, list("vwxyz"), list("abcd"), m)
    assert (tmp_path / "r" / "scores.pkl").read_bytes() == before


def test_ensemble_refuses_to_write_over_its_input(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _scores_file(tmp_path / name / "scores.pkl")
    before = (tmp_path / "a" / "scores.pkl").read_bytes()
    with pytest.raises(PosrecError, match="refusing to overwrite the input"):
        ensemble([tmp_path / "a", tmp_path / "b"], out_dir=tmp_path / "a")
    code = main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "refusing to overwrite the input" in err
    assert (tmp_path / "a" / "scores.pkl").read_bytes() == before
    # a loose score file named as the output's scores.pkl is an input too
    with pytest.raises(PosrecError, match="refusing to overwrite the input"):
        ensemble([tmp_path / "a" / "scores.pkl", tmp_path / "b"], out_dir=tmp_path / "a")
    # a new folder is fine, and a second run into it is refused (an earlier result)
    m = ensemble([tmp_path / "a", tmp_path / "b"], out_dir=tmp_path / "ab")
    assert m["top1"] == pytest.approx(0.4)
    assert json.loads((tmp_path / "ab" / "metrics.json").read_text())["ensemble"] == \
        [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(PosrecError, match="already holds a result"):
        ensemble([tmp_path / "a", tmp_path / "b"], out_dir=tmp_path / "ab")
    save_pickle({"scores": SCORES, "labels": LABELS, "frame_dirs": [f"c{i}" for i in range(5)],
                 "class_names": ["a", "b", "c", "x"]}, tmp_path / "other.pkl")
    with pytest.raises(PosrecError, match="other clips or classes"):
        ensemble([tmp_path / "a", tmp_path / "other.pkl"])
