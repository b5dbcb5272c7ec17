"""Helpers shared by the transform modules (see :mod:`posrec.data.transforms`)."""

from __future__ import annotations

import numpy as np

# 3D normalisation anchors for the Kinect layouts (PYSKL's PreNormalize3D for NTU): body centre =
# spine middle (joint 1); spine = hip centre (0) -> spine (1) to +z; shoulders right (8) -> left
# (4) to +x. Kinect v1 (NW-UCLA) and v2 (NTU) share these indices.
NORM3D = {"ntu25": dict(centre=1, zaxis=(0, 1), xaxis=(8, 4)),
          "nwucla20": dict(centre=1, zaxis=(0, 1), xaxis=(8, 4))}


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _present(kp: np.ndarray) -> np.ndarray:
    """(..., V, C) -> (..., V) bool: the joint is not the all-zero 'missing' marker."""
    out = kp[..., 0] != 0
    for c in range(1, kp.shape[-1]):  # 6x faster than np.any over a length-3 last axis
        out |= kp[..., c] != 0
    return out


def _layout_name(results: dict, layout: str | None) -> str:
    name = layout or results.get("layout")
    if not name:
        from posrec.io.datasets import infer_layout
        name = infer_layout(results)
    return str(name)


def _layout(name: str):
    from posrec.skeleton import get_layout
    return get_layout(name)


def layout_parents(name: str) -> np.ndarray:
    """(V,) int: each joint's bone-stream parent (``Layout.parents``, PYSKL's JointToBone pairs
    where they exist); the root is its own parent, so its bone is zero."""
    return _layout(name).parents


def layout_flip_perm(name: str) -> np.ndarray:
    """(V,) int: joint order after a left/right mirror (each left joint takes its right twin)."""
    return _layout(name).flip_index


def _norm3d_anchors(name: str) -> dict:
    """PreNormalize3D anchors: the Kinect table, else the layout's centre, spine and shoulders."""
    if name in NORM3D:
        return dict(NORM3D[name])
    lay = _layout(name)
    if lay.spine is None or "left_shoulder" not in lay.joints or "right_shoulder" not in lay.joints:
        return {}
    return dict(centre=lay.center, zaxis=lay.spine,
                xaxis=(lay.index("right_shoulder"), lay.index("left_shoulder")))
