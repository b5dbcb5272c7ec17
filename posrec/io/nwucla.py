"""Northwestern-UCLA Multiview Action3D: a directory of JSON files, one per clip (Kinect v1, 3D).

Each file is ``{"file_name": "aXX_sYY_eZZ_vNN", "skeletons": [T][20][3], "label": 1..10}`` with
camera-space coordinates in metres. The standard cross-view protocol trains on views 1 and 2 and
tests on view 3.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from posrec.errors import PosrecError

NWUCLA_CLASSES = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
    "stand up", "donning", "doffing", "throw", "carry",
)  # label 1..10 of the files, in order (action ids a01-a06, a08, a09, a11, a12)
_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)$")


def read_nwucla_json(path: str | Path) -> dict:
    """One NW-UCLA JSON file -> annotation dict: ``keypoint`` float32 (1, T, 20, 3) metres,
    ``label`` 0..9, ``layout`` ``"nwucla20"``, ``view`` 1..3, ``subject`` 1..10 (the ``sYY`` of
    the name; validation carved from training holds out whole subjects). 3D: no
    ``keypoint_score``."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        name, label = str(d["file_name"]), int(d["label"])
        kp = np.asarray(d["skeletons"], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise PosrecError(f"{path}: not an NW-UCLA skeleton JSON ({type(e).__name__}: {e})") from None
    m = _NAME.match(name)
    if m is None:
        raise PosrecError(f"{path}: file_name '{name}' is not of the form aXX_sYY_eZZ_vNN")
    if kp.ndim != 3 or kp.shape[1:] != (20, 3) or kp.shape[0] == 0:
        raise PosrecError(f"{path}: 'skeletons' must be T x 20 x 3 with T >= 1, got {kp.shape}")
    if not 1 <= label <= len(NWUCLA_CLASSES):
        raise PosrecError(f"{path}: label {label} outside 1..{len(NWUCLA_CLASSES)}")
    return dict(frame_dir=name, label=label - 1, total_frames=int(kp.shape[0]), keypoint=kp[None],
                layout="nwucla20", view=int(m.group(4)), subject=int(m.group(2)))


def read_nwucla(src: str | Path, test_views: tuple[int, ...] = (3,)) -> dict:
    """Read an NW-UCLA directory (``all_sqe/`` or its parent, or one file) into a dataset dict.

    Cross-view split: clips from ``test_views`` go to ``test``, the others to ``train``. When a
    ``val_label.pkl`` (CTR-GCN's list of test clips) lies in or next to the directory, the test
    split is checked against it (read with posrec's restricted unpickler) and a mismatch is an
    error, so a wrong directory or protocol cannot pass silently.
    """
    src = Path(src)
    if src.is_dir() and not any(src.glob("*.json")) and (src / "all_sqe").is_dir():
        src = src / "all_sqe"
    files = sorted(src.glob("*.json")) if src.is_dir() else [src]
    if not files:
        raise PosrecError(f"{src}: no NW-UCLA .json files found")
    annos = [read_nwucla_json(f) for f in files]
    split = {"train": [a["frame_dir"] for a in annos if a["view"] not in test_views],
             "test": [a["frame_dir"] for a in annos if a["view"] in test_views]}
    base = src if src.is_dir() else src.parent
    for ref in (base / "val_label.pkl", base.parent / "val_label.pkl"):
        if ref.is_file() and src.is_dir() and tuple(test_views) == (3,):
            _check_val_label(ref, annos, split["test"])
            break
    return {"split": split, "annotations": annos, "classes": list(NWUCLA_CLASSES)}


def _check_val_label(ref: Path, annos: list[dict], test: list[str]) -> None:
    from posrec.io.pickle import load_pickle

    items = load_pickle(ref)
    try:
        expected = {str(it["file_name"]): int(it["label"]) - 1 for it in items}
    except (TypeError, KeyError, ValueError):
        raise PosrecError(f"{ref}: expected a list of {{file_name, label}} dicts") from None
    if set(expected) != set(test):
        raise PosrecError(f"{ref}: lists {len(expected)} test clips, the view-3 split has {len(test)}"
                          f" ({len(set(expected) ^ set(test))} differ)")
    labels = {a["frame_dir"]: a["label"] for a in annos}
    wrong = [n for n, lab in expected.items() if labels[n] != lab]
    if wrong:
        raise PosrecError(f"{ref}: labels disagree with the JSON files for {len(wrong)} clips, "
                          f"e.g. {wrong[0]}")
