"""Normalisation: pixels or camera coordinates -> the model's coordinate frame."""

from __future__ import annotations

import numpy as np

from posrec.data._common import _f32, _layout_name, _norm3d_anchors, _present
from posrec.errors import PosrecError


class PreNormalize2D:
    """Pixels -> [-1, 1]: ``x' = (x - w/2) / (w/2)``, ``y' = (y - h/2) / (h/2)`` with (h, w) the
    clip's ``img_shape`` (or ``img_shape`` given here as a fallback). Joints with score <=
    ``threshold`` become missing (0, 0), as in PYSKL."""

    def __init__(self, img_shape: tuple[int, int] | None = None, threshold: float = 0.01):
        self.img_shape, self.threshold = img_shape, threshold

    def __call__(self, results: dict) -> dict:
        shape = results.get("img_shape", self.img_shape)
        if shape is None:
            raise PosrecError(f"clip {results.get('frame_dir')}: 2D normalisation needs img_shape")
        h, w = (float(s) for s in shape)
        kp = _f32(results["keypoint"])
        half = np.array([w / 2, h / 2], np.float32)
        kp = np.where(_present(kp)[..., None], (kp - half) / half, 0)
        if "keypoint_score" in results:
            kp = np.where((results["keypoint_score"] > self.threshold)[..., None], kp, 0)
        return {**results, "keypoint": _f32(kp), "normalized": True}


def _rotation_onto(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) rotation R with R @ v parallel to ``target`` (Rodrigues); identity for a zero v."""
    nv = np.linalg.norm(v)
    if nv < 1e-6:
        return np.eye(3)
    a, b = v / nv, target / np.linalg.norm(target)
    axis, cos = np.cross(a, b), float(np.clip(a @ b, -1, 1))
    sin = np.linalg.norm(axis)
    if sin < 1e-8:
        if cos > 0:
            return np.eye(3)
        # opposite: half a turn about any axis perpendicular to v
        perp = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        perp /= np.linalg.norm(perp)
        return 2 * np.outer(perp, perp) - np.eye(3)
    k = axis / sin
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * kx + (1 - cos) * (kx @ kx)


class PreNormalize3D:
    """Camera-space skeleton -> body frame, as PYSKL's PreNormalize3D (from 2s-AGCN).

    1. The person present in the most frames becomes person 0; frames where it is absent are
       dropped (``total_frames`` shrinks accordingly).
    2. ``align_center``: subtract person 0's ``centre`` joint in the first frame from every
       present joint (missing joints stay 0).
    3. ``align_spine``: rotate so that person 0's first-frame spine (``zaxis`` bottom -> top) points
       along +z, then so that its shoulders (``xaxis`` right -> left) point along +x.

    Anchors default to :data:`NORM3D` for the clip's layout. Units are unchanged (metres).
    """

    def __init__(self, layout: str | None = None, centre: int | None = None,
                 zaxis: tuple[int, int] | None = None, xaxis: tuple[int, int] | None = None,
                 align_center: bool = True, align_spine: bool = True):
        self.layout, self.centre, self.zaxis, self.xaxis = layout, centre, zaxis, xaxis
        self.align_center, self.align_spine = align_center, align_spine

    def __call__(self, results: dict) -> dict:
        kp = _f32(results["keypoint"])
        if kp.shape[-1] != 3:
            raise PosrecError(f"clip {results.get('frame_dir')}: PreNormalize3D needs 3D "
                              f"keypoints, got C={kp.shape[-1]}")
        name = _layout_name(results, self.layout)
        anchors = {**_norm3d_anchors(name),
                   **{k: v for k, v in dict(centre=self.centre, zaxis=self.zaxis,
                                            xaxis=self.xaxis).items() if v is not None}}
        if len(anchors) < 3:
            raise PosrecError(f"PreNormalize3D: no centre/spine/shoulder joints known for layout "
                              f"'{name}'; pass centre=, zaxis=, xaxis=")
        if not kp.any():
            return {**results, "keypoint": kp}
        frames_present = np.any(kp != 0, axis=(2, 3))  # (M, T)
        main = int(np.argmax(frames_present.sum(1)))
        order = [main] + [m for m in range(len(kp)) if m != main]
        kp = kp[order][:, frames_present[main]]
        present = _present(kp)[..., None]
        if self.align_center:
            kp = (kp - kp[0, 0, anchors["centre"]]) * present
        if self.align_spine:
            bottom, top = anchors["zaxis"]
            rz = _rotation_onto(kp[0, 0, top] - kp[0, 0, bottom], np.array([0.0, 0, 1]))
            kp = kp @ _f32(rz.T)
            right, left = anchors["xaxis"]
            rx = _rotation_onto(kp[0, 0, left] - kp[0, 0, right], np.array([1.0, 0, 0]))
            kp = kp @ _f32(rx.T)
        out = {**results, "keypoint": _f32(kp), "total_frames": kp.shape[1],
               "normalized": True}
        if "keypoint_score" in results:
            out["keypoint_score"] = results["keypoint_score"][order][:, frames_present[main]]
        return out


def _per_clip(results: dict, kp: np.ndarray) -> np.ndarray:
    """(M, num_clips * t, V, C) -> (M, num_clips, t, V, C): each clip of the time axis apart."""
    m, t, v, c = kp.shape
    nc = int(results.get("num_clips", 1))
    if t % nc:
        raise PosrecError(f"{t} frames do not split into {nc} clips")
    return kp.reshape(m, nc, t // nc, v, c)


class MinMaxNormalize:
    """Scale each coordinate axis of each clip (all its people, frames and present joints) to
    [-1, 1], as CTR-GCN's NW-UCLA input: it takes out the body's size and, once a view has been
    rotated (the augmentations come first), its extent along each axis. Clips are scaled one by
    one, in training and test alike. Missing joints stay 0."""

    def __call__(self, results: dict) -> dict:
        kp = _f32(results["keypoint"])
        x = _per_clip(results, kp)  # (M, nc, t, V, C)
        present = _present(x)[..., None]
        axes = (0, 2, 3)
        lo = np.where(present, x, np.inf).min(axis=axes, keepdims=True)
        hi = np.where(present, x, -np.inf).max(axis=axes, keepdims=True)
        ok = np.isfinite(lo) & np.isfinite(hi)
        lo, span = np.where(ok, lo, 0), np.where(ok, np.maximum(hi - lo, 1e-6), 1)
        out = np.where(present, (x - lo) / span * 2 - 1, 0).reshape(kp.shape)
        return {**results, "keypoint": _f32(out)}


class PersonNormalize:
    """Centre and scale each person of each clip by their own body: ``x' = (x - c) / s`` with
    ``c`` the mean of the person's present joints over the clip and ``s`` the median over its
    frames of the longer side of the box around the joints (about the body height when
    standing). One ``c`` and ``s`` per clip keep the motion within it (a walk still crosses, a
    squat still sinks), and the input no longer depends on the frame size, the camera distance or
    the dataset's units, so pixel datasets (Penn Action), normalised ones (JHMDB) and an
    estimator's tracks on any video look alike. Joints scoring at most ``min_score`` become
    missing (0, 0). Works on the clips :class:`UniformSample` / :class:`WindowSample` made.

    ``remove_drift``: first subtract the clip's horizontal linear drift of the body centre (the
    least-squares line through the per-frame mean of present joints' x), so a person walking
    across a fixed camera looks as JHMDB's camera-following clips show walkers; vertical motion
    (jumping, sitting down) is kept.
    """

    def __init__(self, min_score: float = 0.01, remove_drift: bool = False):
        self.min_score, self.remove_drift = min_score, remove_drift

    def __call__(self, results: dict) -> dict:
        kp = _f32(results["keypoint"])
        if "keypoint_score" in results:
            kp = np.where((results["keypoint_score"] > self.min_score)[..., None], kp, 0)
        x = _per_clip(results, kp)  # (M, nc, t, V, C)
        present = _present(x)
        p = present[..., None]
        if self.remove_drift:
            x = _without_drift(x, present)
        count = present.sum((2, 3))[..., None]  # (M, nc, 1)
        centre = (x * p).sum((2, 3)) / np.maximum(count, 1)  # (M, nc, C)
        lo = np.where(p, x, np.inf).min(3)
        hi = np.where(p, x, -np.inf).max(3)  # (M, nc, t, C)
        side = np.where(present.sum(3) >= 2, (hi - lo).max(-1), np.nan)  # (M, nc, t)
        with np.errstate(all="ignore"):
            size = np.nanmedian(np.where(np.isfinite(side), side, np.nan), axis=2) \
                if np.isfinite(side).any() else np.full(side.shape[:2], np.nan)
        size = np.where(np.isfinite(size) & (size > 0), size, 1.0)[:, :, None, None, None]
        out = np.where(p, (x - centre[:, :, None, None]) / size, 0).reshape(kp.shape)
        return {**results, "keypoint": _f32(out), "normalized": True}


def _without_drift(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """x (M, nc, t, V, C) with each clip's least-squares line through its per-frame mean joint
    x taken out of the x of every present joint (frames without joints do not count)."""
    n = present.sum(3)  # (M, nc, t)
    seen = n > 0
    cx = np.where(seen, (x[..., 0] * present).sum(3) / np.maximum(n, 1), 0.0)
    t = np.arange(x.shape[2], dtype=np.float64)
    w = seen.astype(np.float64)
    k = np.maximum(w.sum(2, keepdims=True), 1)
    t_mean = (w * t).sum(2, keepdims=True) / k
    c_mean = (w * cx).sum(2, keepdims=True) / k
    var = (w * (t - t_mean) ** 2).sum(2, keepdims=True)
    # (M, nc, 1): x per frame; a clip seen in one frame has var 0 and covariance 0
    slope = (w * (t - t_mean) * (cx - c_mean)).sum(2, keepdims=True) / np.maximum(var, 1e-12)
    out = x.copy()
    out[..., 0] = np.where(present, x[..., 0] - (slope * (t - t_mean))[..., None], 0)
    return out
