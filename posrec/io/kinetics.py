"""Kinetics-Skeleton (st-gcn) JSON: one file per clip, OpenPose-18 joints, 2D.

``{"data": [{"frame_index": i, "skeleton": [{"pose": [x0, y0, x1, y1, ...], "score": [18]}]}],
"label": name, "label_index": k}`` with coordinates normalised to 0..1 by the frame size and
(0, 0, score 0) for joints OpenPose did not find.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from posrec.errors import PosrecError


def read_kinetics_json(path: str | Path, max_person: int = 2,
                       img_shape: tuple[int, int] | None = None) -> tuple[dict, str | None]:
    """One st-gcn JSON file -> ``(annotation, class name or None)``.

    ``keypoint`` float32 (M, T, 18, 2), ``keypoint_score`` (M, T, 18). In each frame the people are
    ranked by their summed joint score and the best ``max_person`` kept, as st-gcn's feeder does.
    With ``img_shape=(h, w)`` coordinates become pixels; without, they stay in 0..1 and
    ``img_shape`` is (1, 1), which :class:`~posrec.data.transforms.PreNormalize2D` handles alike.
    T spans the first to the last ``frame_index``; frames absent from the file are empty.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        frames = d["data"]
        idx = [int(f["frame_index"]) for f in frames] if frames else []
        people = [[(np.asarray(s["pose"], np.float32).reshape(18, 2),
                    np.asarray(s["score"], np.float32).reshape(18)) for s in f["skeleton"]]
                  for f in frames]
    except (KeyError, TypeError, ValueError) as e:
        raise PosrecError(f"{path}: not a Kinetics-skeleton JSON ({type(e).__name__}: {e})") from None
    t0 = min(idx, default=0)
    T = max(idx, default=0) - t0 + 1 if idx else 0
    if T == 0:
        raise PosrecError(f"{path}: Kinetics-skeleton JSON has no frames")
    M = max(1, min(max_person, max((len(p) for p in people), default=0)))
    kp = np.zeros((M, T, 18, 2), np.float32)
    score = np.zeros((M, T, 18), np.float32)
    for i, ps in zip(idx, people):
        ps = sorted(ps, key=lambda p: -float(p[1].sum()))[:M]  # stable: ties keep file order
        for m, (pose, sc) in enumerate(ps):
            kp[m, i - t0], score[m, i - t0] = pose, sc
    if img_shape is not None:
        h, w = img_shape
        kp *= np.array([w, h], np.float32)
    shape = tuple(int(s) for s in img_shape) if img_shape is not None else (1, 1)
    anno = dict(frame_dir=path.stem, total_frames=T, img_shape=shape, original_shape=shape,
                keypoint=kp, keypoint_score=score, layout="openpose18")
    if d.get("label_index") is not None and int(d["label_index"]) >= 0:
        anno["label"] = int(d["label_index"])  # st-gcn marks unlabelled test clips with -1
    return anno, (str(d["label"]) if "label" in d else None)


def read_kinetics(src: str | Path, max_person: int = 2, img_shape: tuple[int, int] | None = None,
                  split: str = "all", classes: list[str] | None = None) -> dict:
    """Read a Kinetics-skeleton JSON file or a directory of them into a dataset dict.

    A directory with ``kinetics_train/`` and ``kinetics_val/`` (st-gcn's layout) gives splits
    ``train`` and ``val``; otherwise every clip goes to the split named ``split``. ``classes``
    (e.g. the 400 Kinetics names) sets the class list; without it the list is built from the
    ``label`` names in the files, ``class_<k>`` where an index never occurs.
    """
    src = Path(src)
    parts = {"train": src / "kinetics_train", "val": src / "kinetics_val"}
    if src.is_dir() and all(p.is_dir() for p in parts.values()):
        groups = {name: sorted(p.glob("*.json")) for name, p in parts.items()}
    else:
        groups = {split: sorted(src.glob("*.json")) if src.is_dir() else [src]}
    if not any(groups.values()):
        raise PosrecError(f"{src}: no Kinetics-skeleton .json files found")
    annos, out_split, names = [], {}, {}
    for name, files in groups.items():
        out_split[name] = []
        for f in files:
            anno, cname = read_kinetics_json(f, max_person, img_shape)
            annos.append(anno)
            out_split[name].append(anno["frame_dir"])
            if "label" in anno and cname is not None:
                names.setdefault(anno["label"], cname)
    if classes is None:
        n = max(names, default=-1) + 1
        classes = [names.get(k, f"class_{k}") for k in range(n)]
    return {"split": out_split, "annotations": annos, "classes": list(classes)}
