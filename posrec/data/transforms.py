"""Transforms that turn an annotation dict into model input, PYSKL style.

Each transform is a small callable ``t(results: dict) -> dict`` on an annotation dict (see
DESIGN.md): ``keypoint`` float (M, T, V, C) with C = 2 (x, y) or 3 (x, y, z) and, for 2D,
``keypoint_score`` (M, T, V). Chain them with :class:`Compose`. Transforms never modify the
arrays they are given in place (the dataset's stored annotations stay intact); they return a
new dict with new arrays.

Conventions shared by all of them:

* A joint whose coordinates are all exactly 0 is missing (PYSKL's convention); rotation and
  scaling keep it at 0, shift, noise and flip leave it there.
* The score stays a separate array through the geometric transforms and becomes the last
  channel in :class:`GenSkeFeat` or :class:`ToTensor`, so 2D input has C = 3 (x, y, score).
* :class:`UniformSample` sets ``num_clips``; the time axis then holds ``num_clips`` clips of
  ``clip_len`` frames back to back, and :class:`ToTensor` splits it into
  (num_clips, M, clip_len, V, C).
* Random transforms draw from ``rng`` when given (a ``np.random.Generator``), else from a
  generator seeded from the global numpy state, which PyTorch reseeds in each DataLoader
  worker, so workers do not repeat each other's augmentations.
* Geometric augmentations act about the origin: put them after :class:`PreNormalize2D` /
  :class:`PreNormalize3D`.
"""

from __future__ import annotations

from typing import Callable, Sequence

from posrec.data._common import NORM3D, layout_flip_perm, layout_parents  # noqa: F401
from posrec.data.augment import (AddFlipped, EstimatorNoise, RandomFlip, RandomRotate,  # noqa: F401
                                 RandomScale, RandomShift, flip)
from posrec.data.normalize import MinMaxNormalize, PreNormalize2D, PreNormalize3D  # noqa: F401
from posrec.data.sampling import UniformSample, sample_indices  # noqa: F401
from posrec.data.streams import GenSkeFeat, PadPersons, Streams, ToTensor  # noqa: F401

Transform = Callable[[dict], dict]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, results: dict) -> dict:
        for t in self.transforms:
            results = t(results)
        return results

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
