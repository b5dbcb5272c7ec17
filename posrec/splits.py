"""The data a run trains, validates and tests on: the dataset of a config, checked, with its
validation split carved from the training split when the dataset has none.

Validation is never the test split. ``data.val_split`` names a split of the dataset to validate
on; left unset, a fraction ``data.val_fraction`` of the training split is held out instead,
seeded by ``data.val_seed``, stratified by class and, where every clip records its ``subject``
(NW-UCLA: the ``sYY`` of ``aXX_sYY_eZZ_vNN``), grouped by subject so that no person is in both
parts. Datasets without subjects (Penn Action, JHMDB) are split clip by clip within each class.
``val_fraction: 0`` trains on the whole training split without validation (only ``last.pt``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from posrec.config import Config, resolve_path
from posrec.errors import PosrecError

CARVED = "val"  # the name of a validation split carved from the training split


def load_data(cfg: Config, extra: tuple[str, ...] = ()) -> dict:
    """The dataset dict of ``cfg.data`` (converted from a raw source and cached if asked) with
    its splits (and the ``extra`` ones) prepared by :func:`prepare_splits`."""
    from posrec.io.pickle import load_dataset, save_dataset

    d = cfg.data
    if not d.source:
        raise PosrecError(f"{cfg.name}: 'data.source' is not set")
    src = resolve_path(d.source)
    if not src.exists():
        raise PosrecError(f"data.source {src} does not exist")
    if d.format == "pickle":
        data = load_dataset(src)
    else:
        cache = resolve_path(d.cache) if d.cache else None
        if cache is not None and cache.exists():
            data = load_dataset(cache)
        else:
            from posrec.io.datasets import convert

            data = convert(src, d.format)
            if cache is not None:
                save_dataset(data, cache)
    return prepare_splits(to_layout(data, d.layout), cfg, extra)


def to_layout(data: dict, layout: str) -> dict:
    """``data`` with every clip in ``layout``: clips of another layout go through posrec's joint
    map where one exists (an extracted coco17 file for a penn13 model); clips without a map are
    left for the layout check to refuse."""
    from posrec.io.datasets import infer_layout
    from posrec.skeleton import can_convert, convert_layout

    annos = []
    for a in data["annotations"]:
        src = infer_layout(a)
        if layout and src != layout and can_convert(src, layout):
            kp, sc = convert_layout(a["keypoint"], a.get("keypoint_score"), src, layout)
            a = {**a, "keypoint": kp, "layout": layout,
                 **({"keypoint_score": sc} if sc is not None else {})}
        annos.append(a)
    return {**data, "annotations": annos}


def class_names(data: dict, num_classes: int | None = None) -> list[str]:
    """The dataset's class names (``classes`` or ``class_names``), else "0", "1", ..."""
    names = data.get("classes") or data.get("class_names")
    labels = [a["label"] for a in data["annotations"] if "label" in a]
    k = num_classes or (len(names) if names else (max(labels) + 1 if labels else 0))
    if names and len(names) != k:
        raise PosrecError(f"model.num_classes is {k} but the dataset names {len(names)} classes")
    return [str(n) for n in names] if names else [str(i) for i in range(k)]


def prepare_splits(data: dict, cfg: Config, extra: tuple[str, ...] = ()) -> dict:
    """Check layout, splits and labels; carve the validation split; apply the per-class cuts.

    Returns a new dataset dict whose ``split`` holds the training split (without the carved
    clips), the validation split and the test split (and the ``extra`` splits), cut to
    ``data.train_per_class`` / ``data.test_per_class``, plus ``classes`` and ``validation``:
    ``{"split", "carved_from", "fraction", "seed", "grouped_by"}`` (the last four only for a
    carved split), or None without validation.
    """
    d = cfg.data
    if not d.layout:
        raise PosrecError(f"{cfg.name}: 'data.layout' is not set")
    classes = class_names(data, cfg.model.num_classes)
    by_dir = {a["frame_dir"]: a for a in data["annotations"]}
    split = dict(data.get("split", {}))
    names = list(dict.fromkeys((d.train_split, d.test_split, *extra)))
    if d.val_split is not None:
        names.append(d.val_split)
    for name in names:
        split[name] = _checked(split, name, by_dir, d.layout, len(classes))
    validation: dict[str, Any] | None = None
    if d.val_split is not None:
        validation = {"split": d.val_split}
    elif d.val_fraction > 0:
        if CARVED in split:
            raise PosrecError(f"the dataset has a '{CARVED}' split: set data.val_split: {CARVED} "
                              f"to validate on it")
        annos = [by_dir[fd] for fd in split[d.train_split]]
        train, val, grouped = carve_validation(annos, d.val_fraction, d.val_seed)
        split[d.train_split], split[CARVED] = train, val
        validation = {"split": CARVED, "carved_from": d.train_split,
                      "fraction": d.val_fraction, "seed": d.val_seed, "grouped_by": grouped}
    if validation is not None:
        leak = set(split[validation["split"]]) & set(split[d.test_split])
        if leak:
            raise PosrecError(f"validation split '{validation['split']}' shares {len(leak)} clips "
                              f"with the test split '{d.test_split}', e.g. {sorted(leak)[0]}")
        names.append(validation["split"])
    for name in dict.fromkeys(names):
        per_class = d.train_per_class if name == d.train_split else d.test_per_class
        split[name] = _per_class(split[name], by_dir, per_class)
    return {**data, "split": split, "classes": classes, "validation": validation}


def _checked(split: dict, name: str, by_dir: dict, layout: str, num_classes: int) -> list[str]:
    """The clip ids of split ``name``, each checked for an annotation, the layout and a label."""
    from posrec import skeleton

    num_joints = skeleton.get_layout(layout).num_joints
    dirs = split.get(name)
    if not dirs:
        have = ", ".join(f"{k} ({len(v)})" for k, v in split.items()) or "none"
        raise PosrecError(f"dataset split '{name}' is empty or missing (splits: {have})")
    for fd in dirs:
        a = by_dir.get(fd)
        if a is None:
            raise PosrecError(f"split '{name}' lists clip '{fd}' that has no annotation")
        lay = a.get("layout")
        if lay is not None and lay != layout:
            raise PosrecError(f"dataset layout '{lay}' (clip '{fd}') does not match the "
                              f"model layout '{layout}' (data.layout)")
        if a["keypoint"].shape[-2] != num_joints:
            raise PosrecError(f"clip '{fd}' has {a['keypoint'].shape[-2]} joints but layout "
                              f"'{layout}' has {num_joints}")
        y = a.get("label")
        if y is None or not 0 <= int(y) < num_classes:
            raise PosrecError(f"clip '{fd}' has label {y}, outside 0..{num_classes - 1} "
                              f"({num_classes} classes)")
    return list(dirs)


def _per_class(dirs: list[str], by_dir: dict, per_class: int | None) -> list[str]:
    """The first ``per_class`` clips of each class, in order (all with None)."""
    if per_class is None:
        return list(dirs)
    kept, count = [], {}
    for fd in dirs:
        y = int(by_dir[fd]["label"])
        count[y] = count.get(y, 0) + 1
        if count[y] <= per_class:
            kept.append(fd)
    return kept


def carve_validation(annos: list[dict], fraction: float, seed: int = 0
                     ) -> tuple[list[str], list[str], str]:
    """Hold out about ``fraction`` of labelled clips: ``(train ids, val ids, grouping)``.

    With a ``subject`` on every clip, whole subjects are held out (sklearn's
    StratifiedGroupKFold with ``round(1 / fraction)`` folds, at most one per subject, shuffled
    by ``seed``; its first non-empty fold), keeping the class mix close to the whole; grouping
    is ``"subject"``. Otherwise each class gives ``round(fraction * n)`` of its n clips (at least
    one from a class of two or more) chosen at random by ``seed``; grouping is ``"clip"``. Both
    keep the clips' order within each part.
    """
    if not 0 < fraction < 1:
        raise PosrecError(f"data.val_fraction must be in (0, 1), got {fraction}")
    labels = np.array([int(a["label"]) for a in annos])
    subjects = [a.get("subject") for a in annos]
    if annos and all(s is not None for s in subjects):
        held, grouped = _by_subject(labels, np.array([str(s) for s in subjects]), fraction,
                                    seed), "subject"
    else:
        held, grouped = _by_clip(labels, fraction, seed), "clip"
    if not held.any() or held.all():
        raise PosrecError(f"cannot carve a validation split of {fraction:g} from {len(annos)} "
                          f"training clips (split by {grouped})")
    ids = [a["frame_dir"] for a in annos]
    return ([fd for fd, h in zip(ids, held) if not h], [fd for fd, h in zip(ids, held) if h],
            grouped)


def _by_clip(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if len(idx) > 1 else 0
        held[rng.permutation(idx)[:n]] = True
    return held


def _by_subject(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise PosrecError("cannot carve a validation split by subject: the training split has "
                          "one subject")
    folds = StratifiedGroupKFold(n_splits=min(n_groups, max(2, round(1 / fraction))),
                                 shuffle=True, random_state=seed)
    held = np.zeros(len(labels), bool)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
        warnings.simplefilter("ignore", UserWarning)
        for _, val in folds.split(np.zeros(len(labels)), labels, groups):
            if len(val):
                held[val] = True
                break
    return held


def input_spec(cfg: Config, data: dict):
    """The input pipeline (InputSpec) of ``cfg`` for ``data`` (2D or 3D from its first clip)."""
    from posrec.data.pipeline import spec_from_config

    return spec_from_config(cfg, int(data["annotations"][0]["keypoint"].shape[-1]))


def split_dataset(spec, data: dict, split: str, num_clips: int = 1, augment: Any = None,
                  test_flip: bool = False):
    """A SkeletonDataset of one split, its clips turned into model input by ``spec``'s pipeline;
    ``augment`` (an AugmentConfig) makes it a training set (random clips, augmented)."""
    from posrec.data.dataset import SkeletonDataset
    from posrec.data.pipeline import build_transform

    transform = build_transform(spec, augment is not None, num_clips, augment, test_flip)
    return SkeletonDataset(data, split, transform)


def make_splits(data: dict, source: str = "all", val: float = 0.15, test: float = 0.15,
                seed: int = 0) -> dict:
    """A copy of ``data`` whose ``source`` split (``posrec extract`` writes one called ``all``)
    is cut into ``train``, ``val`` and ``test``: ``test`` and then ``val`` of the clips held out
    by :func:`carve_validation` (stratified by class, by subject where clips record one,
    seeded). For a user's own labelled clips: ``posrec data split clips.pkl -o split.pkl``."""
    ids = (data.get("split") or {}).get(source)
    if not ids:
        have = ", ".join(data.get("split") or {}) or "none"
        raise PosrecError(f"dataset has no split '{source}' to cut (splits: {have})")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise PosrecError(f"--val and --test must be fractions with val + test < 1, got {val}, {test}")
    by_dir = {a["frame_dir"]: a for a in data["annotations"]}
    unlabelled = [i for i in ids if by_dir[i].get("label") is None]
    if unlabelled:
        raise PosrecError(f"clip {unlabelled[0]} has no label: extract with --labels-from-dirs")
    rest, held_test, _ = carve_validation([by_dir[i] for i in ids], test, seed)
    train, held_val, _ = carve_validation([by_dir[i] for i in rest], val / (1 - test), seed + 1)
    return {**data, "split": {"train": train, "val": held_val, "test": held_test}}
