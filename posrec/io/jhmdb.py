"""JHMDB human-annotated 2D joints, as DD-Net ships them: ``GT_{train,test}_{1,2,3}.pkl``.

Each file is a plain pickle ``{"pose": [T x 15 x 2 float64], "label": [class name]}`` holding
one of JHMDB's three official train/test splits (14 of its 21 classes in this release). The
coordinates are JHMDB's ``pos_world``: normalised by the puppet's scale (roughly -2.8 .. 1.8),
not pixels, so these clips have no ``img_shape`` (they carry ``coords: "normalized"``
instead) and need a person-centred normalisation (``data.normalize: person``). The files name no clips, so clip ids are
``jhmdb{split}_{train|test}_{index:03d}``; the same video has other ids in other splits.

The 15 puppet joints map into ``penn13`` (head = the face point; neck and belly have no Penn
counterpart and are dropped). Every joint is annotated (score 1). JHMDB clips run at about
30 fps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posrec.errors import PosrecError

JHMDB_CLASSES = ("catch", "clap", "golf", "jump", "pick", "pour", "pullup", "push", "run", "sit",
                 "stand", "throw", "walk", "wave")
JHMDB_JOINTS = ("neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip",
                "left_hip", "right_elbow", "left_elbow", "right_knee", "left_knee",
                "right_wrist", "left_wrist", "right_ankle", "left_ankle")
# penn13 order: head, L/R shoulder, L/R elbow, L/R wrist, L/R hip, L/R knee, L/R ankle
TO_PENN13 = (2, 4, 3, 8, 7, 12, 11, 6, 5, 10, 9, 14, 13)
JHMDB_FPS = 30.0


def _read_part(path: Path, split: int, part: str) -> list[dict]:
    from posrec.io.pickle import load_pickle

    raw = load_pickle(path)  # restricted unpickler: numpy arrays and containers only
    if not isinstance(raw, dict) or not {"pose", "label"} <= set(raw):
        raise PosrecError(f"{path}: not a JHMDB joints file (needs 'pose' and 'label')")
    poses, labels = raw["pose"], raw["label"]
    if len(poses) != len(labels):
        raise PosrecError(f"{path}: {len(poses)} poses but {len(labels)} labels")
    annos = []
    for i, (pose, name) in enumerate(zip(poses, labels)):
        pose = np.asarray(pose, np.float32)
        if pose.ndim != 3 or pose.shape[1:] != (15, 2) or len(pose) == 0:
            raise PosrecError(f"{path}: clip {i} has shape {pose.shape}, expected (T, 15, 2)")
        if str(name) not in JHMDB_CLASSES:
            raise PosrecError(f"{path}: clip {i} has unknown class '{name}'")
        kp = pose[None][:, :, TO_PENN13]  # (1, T, 13, 2)
        annos.append(dict(frame_dir=f"jhmdb{split}_{part}_{i:03d}",
                          label=JHMDB_CLASSES.index(str(name)), total_frames=len(pose),
                          keypoint=kp, keypoint_score=np.ones(kp.shape[:3], np.float32),
                          layout="penn13", fps=JHMDB_FPS, coords="normalized"))
    return annos


def read_jhmdb(src: str | Path, split: int | None = None) -> dict:
    """Read one official split of a directory holding ``GT_{train,test}_{split}.pkl``.

    Returns the dataset dict with splits ``train`` and ``test`` and the 14 class names (sorted;
    label = index). ``src`` may also be one of the two files of a split, which then names the
    split (``GT_train_2.pkl``: split 2); otherwise ``split`` defaults to 1.
    """
    src = Path(src)
    if split is None:
        stem = src.stem if src.is_file() else ""
        split = int(stem[-1]) if stem[-1:] in ("1", "2", "3") else 1
    if split not in (1, 2, 3):
        raise PosrecError(f"JHMDB has splits 1, 2 and 3, not {split}")
    root = src if src.is_dir() else src.parent
    out = {"split": {}, "annotations": [], "classes": list(JHMDB_CLASSES)}
    for part in ("train", "test"):
        path = root / f"GT_{part}_{split}.pkl"
        if not path.is_file():
            raise PosrecError(f"{root}: no JHMDB file {path.name}")
        annos = _read_part(path, split, part)
        out["annotations"] += annos
        out["split"][part] = [a["frame_dir"] for a in annos]
    return out
