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


def _clip_key(anno: dict) -> bytes:
    return np.ascontiguousarray(anno["keypoint"]).tobytes()


def jhmdb_grouped_validation(data: dict, jhmdb_dir: str | Path, other_split: int
                             ) -> tuple[list[str], list[str]]:
    """Carve validation from a JHMDB split's training clips along another official split:
    ``(train ids, val ids)``, val = the clips that ``other_split`` puts in its test part.

    JHMDB's splits keep each source video's clips on one side, and the files name no clips or
    videos, so a random carve puts clips of one video on both sides and flatters every model
    (92-94 % on validation against 64-77 % on test, RESULTS.md). The same clip has the same
    joints in every split's file, which is how the clips are matched."""
    from posrec.io.jhmdb import read_jhmdb

    other = read_jhmdb(jhmdb_dir, other_split)
    tested = set(other["split"]["test"])
    held = {_clip_key(a) for a in other["annotations"] if a["frame_dir"] in tested}
    is_held = {a["frame_dir"]: _clip_key(a) in held for a in data["annotations"]}
    ids = data["split"]["train"]
    return [i for i in ids if not is_held[i]], [i for i in ids if is_held[i]]


def build_action_dataset(penn_dir: str | Path, jhmdb_dir: str | Path, jhmdb_split: int = 1,
                         val_fraction: float = 0.1, seed: int = 0, penn_only: bool = False,
                         jhmdb_val_split: int | None = None) -> dict:
    """Penn Action (official split) + one JHMDB split as one dataset dict over
    :data:`ACTION_CLASSES`, with splits ``train``, ``val``, ``test_penn``, ``test_jhmdb`` and
    ``test`` (see tools/make_action_dataset.py). ``penn_only`` leaves JHMDB out (same class
    list, same Penn carve: the reference that measures what the merge costs Penn's classes).
    ``jhmdb_val_split`` carves JHMDB's validation along that other official split
    (:func:`jhmdb_grouped_validation`) instead of ``val_fraction`` of its clips at random."""
    from posrec.io.jhmdb import read_jhmdb
    from posrec.io.penn import read_penn

    parts = {"penn": (read_penn(penn_dir), {})}
    if not penn_only:
        if jhmdb_val_split == jhmdb_split:
            raise ValueError(f"JHMDB validation must come from another split than {jhmdb_split}")
        parts["jhmdb"] = (read_jhmdb(jhmdb_dir, jhmdb_split), JHMDB_TO_ACTION)
    annos = [a for data, rename in parts.values() for a in _relabel(data, rename)]
    label = {a["frame_dir"]: a["label"] for a in annos}
    split: dict[str, list[str]] = {"train": [], "val": []}
    for name, (data, _) in parts.items():
        ids = data["split"]["train"]
        if name == "jhmdb" and jhmdb_val_split is not None:
            tr, va = jhmdb_grouped_validation(data, jhmdb_dir, jhmdb_val_split)
        else:
            tr, va = carve_validation(ids, [label[i] for i in ids], val_fraction, seed)
        split["train"] += tr
        split["val"] += va
        split[f"val_{name}"] = va  # each set's part of val, scored apart
    for name in ("penn", "jhmdb"):
        split[f"test_{name}"] = list(parts[name][0]["split"]["test"]) if name in parts else []
    split["test"] = split["test_penn"] + split["test_jhmdb"]
    return {"split": split, "annotations": annos, "classes": list(ACTION_CLASSES)}
