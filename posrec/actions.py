"""The action vocabulary of posrec's shipped model: Penn Action's sports and exercise classes
and JHMDB's everyday ones, merged into one class list over the ``penn13`` layout.

Where the two sets name the same action the classes merge: JHMDB ``golf`` (golf swings) is
Penn ``golf_swing``, and both have ``pullup``. JHMDB ``push`` (pushing an object or a person)
is not Penn ``pushup``, ``jump`` is not ``jump_rope`` or ``jumping_jacks``, and ``throw`` is
not ``baseball_pitch`` (the pitch is one specific throw that Penn annotates as its own class):
they stay apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posrec.io.jhmdb import JHMDB_CLASSES
from posrec.io.penn import PENN_CLASSES

JHMDB_TO_ACTION = {"golf": "golf_swing"}
ACTION_CLASSES = tuple(sorted(set(PENN_CLASSES) | {JHMDB_TO_ACTION.get(c, c)
                                                   for c in JHMDB_CLASSES}))


def _relabel(data: dict, rename: dict[str, str]) -> list[dict]:
    names = data["classes"]
    return [{**a, "label": ACTION_CLASSES.index(rename.get(names[a["label"]], names[a["label"]]))}
            for a in data["annotations"]]


def carve_validation(ids: list[str], labels: list[int], fraction: float,
                     seed: int) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (train, val), ``fraction`` of each class to val (at least one clip of
    every class with two or more), seeded."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    val: set[str] = set()
    for c in np.unique(labels_arr):
        members = [ids[i] for i in np.flatnonzero(labels_arr == c)]
        if len(members) < 2:
            continue
        k = max(1, int(round(fraction * len(members))))
        val.update(rng.choice(members, size=k, replace=False).tolist())
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def build_action_dataset(penn_dir: str | Path, jhmdb_dir: str | Path, jhmdb_split: int = 1,
                         val_fraction: float = 0.1, seed: int = 0, penn_only: bool = False) -> dict:
    """Penn Action (official split) + one JHMDB split as one dataset dict over
    :data:`ACTION_CLASSES`, with splits ``train``, ``val``, ``test_penn``, ``test_jhmdb`` and
    ``test`` (see tools/make_action_dataset.py). ``penn_only`` leaves JHMDB out (same class
    list, same Penn carve: the reference that measures what the merge costs Penn's classes)."""
    from posrec.io.jhmdb import read_jhmdb
    from posrec.io.penn import read_penn

    parts = {"penn": (read_penn(penn_dir), {})}
    if not penn_only:
        parts["jhmdb"] = (read_jhmdb(jhmdb_dir, jhmdb_split), JHMDB_TO_ACTION)
    annos = [a for data, rename in parts.values() for a in _relabel(data, rename)]
    label = {a["frame_dir"]: a["label"] for a in annos}
    split: dict[str, list[str]] = {"train": [], "val": []}
    for data, _ in parts.values():
        ids = data["split"]["train"]
        tr, va = carve_validation(ids, [label[i] for i in ids], val_fraction, seed)
        split["train"] += tr
        split["val"] += va
    for name in ("penn", "jhmdb"):
        split[f"test_{name}"] = list(parts[name][0]["split"]["test"]) if name in parts else []
    split["test"] = split["test_penn"] + split["test_jhmdb"]
    return {"split": split, "annotations": annos, "classes": list(ACTION_CLASSES)}
