"""The PyTorch dataset over one split of a dataset dict (DESIGN.md), and layout checks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from posrec.errors import PosrecError
from posrec.io.datasets import infer_layout


class SkeletonDataset(torch.utils.data.Dataset):
    """One split of a skeleton dataset; item ``i`` is ``(x, label)``.

    ``x`` is what ``transform`` leaves under ``keypoint``: with the usual pipeline ending in
    :class:`~posrec.data.transforms.ToTensor`, float32 (num_clips, M, T, V, C); without a
    transform, or one that stops before ToTensor, the whole sequence as
    (1, M, total_frames, V, C) with 2D scores as the last channel.

    ``data`` is a dataset dict or the path of a dataset pickle (read with posrec's restricted
    unpickler). ``split=None`` takes every annotation. Class names come from the dataset's
    ``classes``, else ``class_names``, else ``num_classes`` gives "0", "1", ...; else the largest
    label + 1. Every label is checked against the class count up front.
    """

    def __init__(self, data: dict | str | Path, split: str | None = "train",
                 transform: Callable[[dict], dict] | None = None,
                 class_names: Sequence[str] | None = None, num_classes: int | None = None):
        where = "dataset"
        if isinstance(data, (str, Path)):
            from posrec.io.pickle import load_dataset
            where, data = str(data), load_dataset(data)
        annos = data.get("annotations") or []
        if split is None:
            self.annotations = list(annos)
        else:
            splits = data.get("split") or {}
            if split not in splits:
                raise PosrecError(f"{where}: no split '{split}'; it has "
                                  f"{', '.join(map(str, splits)) or 'no splits'}")
            by_id = {a["frame_dir"]: a for a in annos}
            missing = [i for i in splits[split] if i not in by_id]
            if missing:
                raise PosrecError(f"{where}: split '{split}' lists {len(missing)} clips without "
                                  f"annotations, e.g. {missing[0]}")
            self.annotations = [by_id[i] for i in splits[split]]
        if not self.annotations:
            raise PosrecError(f"{where}: split '{split}' is empty")
        unlabelled = [a.get("frame_dir") for a in self.annotations if "label" not in a]
        if unlabelled:
            raise PosrecError(f"{where}: clip {unlabelled[0]} has no label "
                              f"({len(unlabelled)} unlabelled clips in split '{split}')")
        names = data.get("classes") or class_names
        if names:
            self.class_names = [str(c) for c in names]
        else:
            n = num_classes or max(int(a["label"]) for a in self.annotations) + 1
            self.class_names = [str(k) for k in range(n)]
        n = len(self.class_names)
        for a in self.annotations:
            lab = int(a["label"])
            if not 0 <= lab < n:
                raise PosrecError(f"{where}: label {lab} out of range for {n} classes in clip "
                                  f"{a.get('frame_dir')}")
        self.split, self.transform, self.where = split, transform, where

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> list[int]:
        """Label of each item, in order (for samplers and per-class statistics)."""
        return [int(a["label"]) for a in self.annotations]

    @property
    def layout(self) -> str:
        """The layout shared by all clips (PosrecError if they mix layouts)."""
        layouts = {infer_layout(a, self.where) for a in self.annotations}
        if len(layouts) > 1:
            raise PosrecError(f"{self.where}: clips mix layouts {', '.join(sorted(layouts))}")
        return layouts.pop()

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        anno = self.annotations[i]
        results = dict(anno)  # transforms build new arrays; the stored ones stay untouched
        if self.transform is not None:
            results = self.transform(results)
        x = results["keypoint"]
        if not isinstance(x, torch.Tensor):
            from posrec.data.transforms import ToTensor
            x = ToTensor()(results)["keypoint"]
        return x, int(anno["label"])


def check_layout(dataset: dict | SkeletonDataset | Sequence[dict], expected: str,
                 where: str = "dataset") -> str:
    """Raise PosrecError unless every clip's layout (or, without one, the layout its joint count
    implies) is ``expected``; returns it. Use before feeding a dataset to a model."""
    if isinstance(dataset, SkeletonDataset):
        annos, where = dataset.annotations, dataset.where
    elif isinstance(dataset, dict):
        annos = dataset.get("annotations") or []
    else:
        annos = list(dataset)
    found = sorted({infer_layout(a, where) for a in annos})
    if found != [expected]:
        v = {int(np.shape(a["keypoint"])[-2]) for a in annos}
        raise PosrecError(f"{where}: layout {', '.join(found) or 'none'} ({'/'.join(map(str, sorted(v)))}"
                          f" joints) does not match the model's layout '{expected}'")
    return expected
