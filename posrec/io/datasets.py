"""Dataset readers in one place: ``convert`` any supported source into the dataset dict of
DESIGN.md, and ``dataset_info`` to summarise one (for ``posrec data convert`` / ``data info``).

A dataset dict is ``{"split": {name: [frame_dir, ...]}, "annotations": [anno, ...],
"classes": [name, ...]}``; every annotation carries ``layout``. Convert once and save the result
as a pickle (``posrec.io.pickle.save_dataset``): training then reads one file instead of
thousands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from posrec.errors import PosrecError

FORMATS = ("pickle", "penn", "nwucla", "kinetics", "ntu", "jhmdb")
# A layout is identified by its joint count; every layout posrec knows has a distinct one.
LAYOUT_BY_JOINTS = {13: "penn13", 17: "coco17", 18: "openpose18", 20: "nwucla20", 25: "ntu25"}


def detect_format(src: str | Path) -> str:
    """Guess the format of a file or directory from extensions and, for JSON, its keys."""
    src = Path(src)
    if not src.exists():
        raise PosrecError(f"{src}: no such file or directory")
    if src.is_dir():
        sub = src / "all_sqe" if (src / "all_sqe").is_dir() else src
        for pattern, fmt in (("*.mat", "penn"), ("*.skeleton", "ntu")):
            if next(sub.glob(pattern), None) is not None:
                return fmt
        if next(src.glob("GT_train_[123].pkl"), None) is not None:
            return "jhmdb"
        first = next(sub.glob("*.json"), None) or next(src.glob("kinetics_*/*.json"), None)
        if first is None:
            raise PosrecError(f"{src}: no .mat, .skeleton or .json files to read; use --format")
        return _json_format(first)
    ext = src.suffix.lower()
    if ext in (".pkl", ".pickle"):
        return "jhmdb" if src.name.startswith("GT_") else "pickle"
    if ext == ".mat":
        return "penn"
    if ext == ".skeleton":
        return "ntu"
    if ext == ".json":
        return _json_format(src)
    raise PosrecError(f"{src}: cannot tell the dataset format from '{ext}'; use --format")


def _json_format(path: Path) -> str:
    try:
        keys = json.loads(path.read_text())
    except ValueError as e:
        raise PosrecError(f"{path}: not valid JSON ({e})") from None
    if isinstance(keys, dict) and "skeletons" in keys and "file_name" in keys:
        return "nwucla"
    if isinstance(keys, dict) and "data" in keys:
        return "kinetics"
    raise PosrecError(f"{path}: JSON is neither NW-UCLA nor Kinetics-skeleton; use --format")


def convert(src: str | Path, fmt: str = "auto", **opts: Any) -> dict:
    """Read ``src`` in format ``fmt`` (one of :data:`FORMATS` or ``"auto"``) into a dataset dict.

    ``opts`` go to the reader: ``penn`` (``invisible_score``), ``nwucla`` (``test_views``),
    ``kinetics`` (``max_person``, ``img_shape``, ``split``, ``classes``), ``ntu`` (``mode`` "3d" or
    "2d", ``version`` 60/120, ``max_person``), ``jhmdb`` (``split`` 1, 2 or 3). ``pickle`` reads a PYSKL/MMAction2 dataset or one
    written by posrec (``posrec extract`` included) and fills in ``layout`` from the joint count
    where it is missing.
    """
    fmt = detect_format(src) if fmt == "auto" else fmt
    if fmt in ("pyskl", "mmaction", "extract"):
        fmt = "pickle"
    if fmt not in FORMATS:
        raise PosrecError(f"unknown dataset format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if not Path(src).exists():
        raise PosrecError(f"{src}: no such file or directory")
    try:
        if fmt == "penn":
            from posrec.io.penn import read_penn as reader
        elif fmt == "nwucla":
            from posrec.io.nwucla import read_nwucla as reader
        elif fmt == "kinetics":
            from posrec.io.kinetics import read_kinetics as reader
        elif fmt == "ntu":
            from posrec.io.ntu import read_ntu as reader
        elif fmt == "jhmdb":
            from posrec.io.jhmdb import read_jhmdb as reader
        else:
            reader = _read_pickle
        return reader(src, **opts)
    except TypeError as e:
        if "unexpected keyword" in str(e):  # an option this format does not take
            raise PosrecError(f"format '{fmt}': {e}") from None
        raise


def _read_pickle(src: str | Path) -> dict:
    from posrec.io.pickle import load_dataset

    data = load_dataset(src)
    annos = []
    for a in data["annotations"]:
        if "layout" not in a:
            a = {**a, "layout": infer_layout(a, src)}
        annos.append(a)
    return {**data, "annotations": annos}


def infer_layout(anno: dict, where: Any = "") -> str:
    """The annotation's ``layout``, or the one its joint count implies (PYSKL files have none)."""
    if anno.get("layout"):
        return str(anno["layout"])
    v = int(np.shape(anno["keypoint"])[-2])
    if v not in LAYOUT_BY_JOINTS:
        raise PosrecError(f"{where}: clip {anno.get('frame_dir')} has {v} joints, which matches no "
                          f"known layout ({', '.join(f'{n} ({k})' for k, n in LAYOUT_BY_JOINTS.items())})")
    return LAYOUT_BY_JOINTS[v]


def dataset_info(dataset: dict | str | Path) -> dict:
    """Summary of a dataset dict (or of any source :func:`convert` reads): classes, clips per
    split and per class, sequence lengths (frames), people per clip, layout(s) and whether it is
    2D or 3D. JSON-serialisable."""
    if isinstance(dataset, (str, Path)):
        dataset = convert(dataset)
    annos = dataset.get("annotations", [])
    classes = list(dataset.get("classes") or [])
    lengths = np.array([int(a.get("total_frames", np.shape(a["keypoint"])[1])) for a in annos])
    labels = [a["label"] for a in annos if "label" in a]
    dims = sorted({int(np.shape(a["keypoint"])[-1]) for a in annos})
    per_class = np.bincount(labels, minlength=len(classes)).tolist() if labels else []
    return {
        "num_clips": len(annos),
        "splits": {k: len(v) for k, v in dataset.get("split", {}).items()},
        "num_classes": len(classes) if classes else (max(labels) + 1 if labels else 0),
        "classes": classes,
        "clips_per_class": per_class,
        "unlabelled": len(annos) - len(labels),
        "layouts": sorted({infer_layout(a) for a in annos}),
        "dims": "/".join("3D" if c == 3 else "2D" for c in dims),
        "has_score": any("keypoint_score" in a for a in annos),
        "max_persons": max((int(np.shape(a["keypoint"])[0]) for a in annos), default=0),
        "frames": {"total": int(lengths.sum()), "min": int(lengths.min()),
                   "median": float(np.median(lengths)), "mean": round(float(lengths.mean()), 1),
                   "max": int(lengths.max())} if len(lengths) else {},
    }


def format_dataset_info(info: dict) -> str:
    """Human-readable text for :func:`dataset_info`'s dict (what ``posrec data info`` prints)."""
    f = info["frames"]
    lines = [
        f"clips      {info['num_clips']}"
        + (f" ({info['unlabelled']} unlabelled)" if info["unlabelled"] else ""),
        "splits     " + (", ".join(f"{k} {n}" for k, n in info["splits"].items()) or "none"),
        f"layout     {', '.join(info['layouts'])}, {info['dims']}"
        + (" + score" if info["has_score"] else "") + f", up to {info['max_persons']} people",
    ]
    if f:
        lines.append(f"frames     {f['total']} total; per clip min {f['min']}, median "
                     f"{f['median']:g}, mean {f['mean']:g}, max {f['max']}")
    lines.append(f"classes    {info['num_classes']}")
    counts = info["clips_per_class"]
    empty = 0
    for k, name in enumerate(info["classes"]):
        n = counts[k] if k < len(counts) else 0
        if n == 0 and info["num_clips"]:
            empty += 1  # e.g. a few Kinetics clips against a 400-class list: list only used ones
            continue
        lines.append(f"  {k:4d}  {name}  ({n})")
    if empty:
        lines.append(f"  ({empty} classes without clips not listed)")
    return "\n".join(lines)
