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

import numpy as np

from posrec.errors import PosrecError

Transform = Callable[[dict], dict]

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


def sample_indices(num_frames: int, clip_len: int, num_clips: int = 1, test_mode: bool = False,
                   seed: int = 255, p_interval: tuple[float, float] = (1.0, 1.0),
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices (num_clips * clip_len,) in [0, num_frames), PYSKL's UniformSampleFrames.

    Each clip takes a random fraction ``p_interval`` of the sequence, cuts it into ``clip_len``
    equal segments and picks one random frame from each (so indices are sorted). A sequence
    shorter than ``clip_len`` is looped from a random start (from evenly spread starts at test
    time). In ``test_mode`` the draws come from ``seed``, so every epoch sees the same frames.
    """
    if num_frames < 1:
        raise PosrecError("cannot sample frames from an empty sequence")
    r = np.random.default_rng(seed) if test_mode else _rng(rng)
    out = []
    for i in range(num_clips):
        n = max(1, int(r.uniform(*p_interval) * num_frames))
        off = int(r.integers(num_frames - n + 1))
        if n < clip_len:
            if test_mode:
                start = i if n < num_clips else i * n // num_clips
            else:
                start = int(r.integers(n))
            inds = np.arange(start, start + clip_len) % n  # loop the short sequence
        elif n < 2 * clip_len:
            # every frame but n - clip_len of them: skip (insert a gap) at random positions
            gaps = np.zeros(clip_len + 1, np.int64)
            gaps[r.choice(clip_len + 1, n - clip_len, replace=False)] = 1
            inds = np.arange(clip_len) + np.cumsum(gaps)[:-1]
        else:
            bounds = np.arange(clip_len + 1) * n // clip_len
            inds = bounds[:-1] + r.integers(np.diff(bounds))
        out.append(inds + off)
    return np.concatenate(out) % num_frames


class UniformSample:
    """Sample ``num_clips`` clips of ``clip_len`` frames (see :func:`sample_indices`) and cut the
    arrays to them: ``keypoint`` (M, num_clips * clip_len, V, C). Sets ``frame_inds``,
    ``clip_len``, ``num_clips``; ``test_mode`` (or the clip's own ``test_mode`` key) makes the
    choice deterministic."""

    def __init__(self, clip_len: int, num_clips: int = 1, test_mode: bool = False,
                 seed: int = 255, p_interval: float | tuple[float, float] = 1.0,
                 rng: np.random.Generator | None = None):
        self.clip_len, self.num_clips = clip_len, num_clips
        self.test_mode, self.seed = test_mode, seed
        self.p_interval = p_interval if isinstance(p_interval, tuple) else (p_interval, p_interval)
        self.rng = rng

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        test = self.test_mode or bool(results.get("test_mode", False))
        inds = sample_indices(kp.shape[1], self.clip_len, self.num_clips, test, self.seed,
                              self.p_interval, self.rng)
        out = {**results, "keypoint": kp[:, inds], "frame_inds": inds, "clip_len": self.clip_len,
               "num_clips": self.num_clips}
        if "keypoint_score" in results:
            out["keypoint_score"] = results["keypoint_score"][:, inds]
        return out


class RandomRotate:
    """Rotate about the origin by angles uniform in [-theta, theta] radians: in the image plane
    for 2D, about x, y and z (in that order) for 3D. Bone lengths are preserved."""

    def __init__(self, theta: float = 0.3, rng: np.random.Generator | None = None):
        self.theta, self.rng = theta, rng

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        a = _rng(self.rng).uniform(-self.theta, self.theta, size=3)
        c, s = np.cos(a), np.sin(a)
        if kp.shape[-1] == 2:
            rot = np.array([[c[0], -s[0]], [s[0], c[0]]])
        else:
            rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
            ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
            rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
            rot = rz @ ry @ rx
        return {**results, "keypoint": _f32(kp @ _f32(rot.T))}


class RandomScale:
    """Multiply each coordinate axis by its own factor uniform in [1 - scale, 1 + scale]."""

    def __init__(self, scale: float = 0.1, rng: np.random.Generator | None = None):
        self.scale, self.rng = scale, rng

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        f = 1 + _rng(self.rng).uniform(-self.scale, self.scale, size=kp.shape[-1])
        return {**results, "keypoint": _f32(kp * _f32(f))}


class RandomShift:
    """Translate every present joint by one offset, uniform in [-shift, shift] per axis."""

    def __init__(self, shift: float = 0.1, rng: np.random.Generator | None = None):
        self.shift, self.rng = shift, rng

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        d = _f32(_rng(self.rng).uniform(-self.shift, self.shift, size=kp.shape[-1]))
        return {**results, "keypoint": _f32(np.where(_present(kp)[..., None], kp + d, 0))}


class MinMaxNormalize:
    """Scale each coordinate axis of the clip (all people, frames, joints present) to [-1, 1],
    as CTR-GCN's NW-UCLA input: it takes out the body's size and, once a view has been rotated
    (the augmentations come first), its extent along each axis. Missing joints stay 0."""

    def __call__(self, results: dict) -> dict:
        kp = _f32(results["keypoint"])
        present = _present(kp)
        if not present.any():
            return results
        pts = kp[present]  # (P, C)
        lo, hi = pts.min(0), pts.max(0)
        out = (kp - lo) / np.maximum(hi - lo, 1e-6) * 2 - 1
        return {**results, "keypoint": _f32(np.where(present[..., None], out, 0))}


class EstimatorNoise:
    """Make annotated joints look like keypoint-estimator output.

    * jitter: Gaussian noise with std ``sigma`` x the person's size in that frame (diagonal of
      the box around its present joints), so it is the same relative error at any scale;
    * drops: each present joint is lost with probability ``drop_prob`` (coordinates 0, score 0);
    * scores (2D): each kept joint's score is multiplied by a factor uniform in ``score_range``.
    """

    def __init__(self, sigma: float = 0.02, drop_prob: float = 0.05,
                 score_range: tuple[float, float] = (0.6, 1.0),
                 rng: np.random.Generator | None = None):
        self.sigma, self.drop_prob, self.score_range, self.rng = sigma, drop_prob, score_range, rng

    def __call__(self, results: dict) -> dict:
        r = _rng(self.rng)
        kp = _f32(results["keypoint"])
        present = _present(kp)  # (M, T, V)
        lo = np.where(present[..., None], kp, np.inf).min(axis=2)
        hi = np.where(present[..., None], kp, -np.inf).max(axis=2)
        extent = np.where(present.any(-1)[..., None], hi - lo, 0)  # (M, T, C); 0 if nobody
        size = np.linalg.norm(extent, axis=-1)
        noise = _f32(r.standard_normal(kp.shape)) * (self.sigma * size)[..., None, None]
        keep = present & (r.random(present.shape) >= self.drop_prob)
        out = {**results, "keypoint": _f32(np.where(keep[..., None], kp + noise, 0))}
        if "keypoint_score" in results:
            f = r.uniform(*self.score_range, size=keep.shape)
            out["keypoint_score"] = _f32(np.where(keep, results["keypoint_score"] * f, 0))
        return out


class RandomFlip:
    """With probability ``p``, mirror left/right: x -> -x (about 0 once normalised, about the
    image width ``w - x`` for 2D pixels) and swap the layout's left/right joints, so a left
    wrist stays a left wrist. Applying it twice gives back the input."""

    def __init__(self, layout: str | None = None, p: float = 0.5,
                 rng: np.random.Generator | None = None):
        self.layout, self.p, self.rng = layout, p, rng

    def __call__(self, results: dict) -> dict:
        if self.p < 1 and _rng(self.rng).random() >= self.p:
            return results
        return flip(results, self.layout)


def flip(results: dict, layout: str | None = None) -> dict:
    """The deterministic left/right mirror of :class:`RandomFlip`."""
    perm = layout_flip_perm(_layout_name(results, layout))
    kp = results["keypoint"]
    present = _present(kp)[..., None]
    centre = 0.0
    if kp.shape[-1] == 2 and not results.get("normalized") and "img_shape" in results:
        centre = float(results["img_shape"][1]) / 2
    x = np.where(present[..., 0], 2 * centre - kp[..., 0], 0)
    kp = np.concatenate([x[..., None], kp[..., 1:]], axis=-1)[:, :, perm]
    out = {**results, "keypoint": _f32(kp)}
    if "keypoint_score" in results:
        out["keypoint_score"] = results["keypoint_score"][:, :, perm]
    return out


class PadPersons:
    """Exactly M people: keep the first M (readers order people by importance) or pad with
    zeros (``mode="zero"``) or copies of a lone person (``mode="loop"``, PYSKL's option)."""

    def __init__(self, num_person: int = 2, mode: str = "zero"):
        if mode not in ("zero", "loop"):
            raise ValueError(f"mode must be 'zero' or 'loop', not {mode!r}")
        self.num_person, self.mode = num_person, mode

    def _pad(self, a: np.ndarray) -> np.ndarray:
        m = a.shape[0]
        if m >= self.num_person:
            return a[:self.num_person]
        if self.mode == "loop" and m == 1:
            return np.repeat(a, self.num_person, axis=0)
        return np.concatenate([a, np.zeros((self.num_person - m,) + a.shape[1:], a.dtype)])

    def __call__(self, results: dict) -> dict:
        out = {**results, "keypoint": self._pad(results["keypoint"])}
        if "keypoint_score" in results:
            out["keypoint_score"] = self._pad(results["keypoint_score"])
        return out


class AddFlipped:
    """Test-time flip: append the left/right mirror (:func:`flip`) of every clip, doubling
    ``num_clips``; the model's scores over all clips are averaged as usual. Goes after
    :class:`UniformSample` and before :class:`GenSkeFeat` (streams are computed per clip)."""

    def __init__(self, layout: str | None = None):
        self.layout = layout

    def __call__(self, results: dict) -> dict:
        mirrored = flip(results, self.layout)
        out = {**results, "num_clips": 2 * int(results.get("num_clips", 1)),
               "keypoint": np.concatenate([_f32(results["keypoint"]), mirrored["keypoint"]], 1)}
        if "keypoint_score" in results:
            out["keypoint_score"] = np.concatenate(
                [results["keypoint_score"], mirrored["keypoint_score"]], 1)
        return out


def _with_score(results: dict) -> np.ndarray:
    kp = np.asarray(results["keypoint"], dtype=np.float32)
    if "keypoint_score" in results:
        kp = np.concatenate([kp, _f32(results["keypoint_score"][..., None])], -1)
    return kp


def _motion(x: np.ndarray, num_clips: int, has_score: bool) -> np.ndarray:
    """Frame-to-frame difference within each clip (last frame 0); a score channel becomes the
    mean of the two frames' scores, as in PYSKL."""
    m, t, v, c = x.shape
    xs = x.reshape(m, num_clips, t // num_clips, v, c)
    mo = np.zeros_like(xs)
    mo[:, :, :-1] = xs[:, :, 1:] - xs[:, :, :-1]
    if has_score:
        mo[:, :, :-1, :, -1] = (xs[:, :, 1:, :, -1] + xs[:, :, :-1, :, -1]) / 2
    return mo.reshape(m, t, v, c)


class GenSkeFeat:
    """The input streams, concatenated on the channel axis in the order of ``feats``:

    * ``j`` joint: the coordinates (+ score for 2D);
    * ``b`` bone: joint minus its parent towards the centre joint (zero at the centre; the score
      channel is the mean of the two joints' scores);
    * ``jm`` / ``bm``: joint / bone motion, the difference to the next frame (within each clip).

    Output ``keypoint`` (M, T, V, C * len(feats)); ``keypoint_score`` is consumed.
    """

    def __init__(self, layout: str | None = None, feats: Sequence[str] = ("j",)):
        bad = [f for f in feats if f not in ("j", "b", "jm", "bm")]
        if bad or not feats:
            raise PosrecError(f"unknown input stream(s) {bad or list(feats)}; use j, b, jm, bm")
        self.feats, self.layout = tuple(feats), layout

    def __call__(self, results: dict) -> dict:
        j = _with_score(results)
        has_score = "keypoint_score" in results
        nc = int(results.get("num_clips", 1))
        streams = {"j": j}
        if "b" in self.feats or "bm" in self.feats:
            parent = layout_parents(_layout_name(results, self.layout))
            jp = np.take(j, parent, axis=2)  # np.take: 3x faster than fancy indexing here
            b = j - jp
            if has_score:
                b[..., -1] = (j[..., -1] + jp[..., -1]) / 2
            ok = _present(results["keypoint"])
            b[~(ok & np.take(ok, parent, axis=2))] = 0  # a bone with a missing end is missing
            streams["b"] = b
        if "jm" in self.feats:
            streams["jm"] = _motion(j, nc, has_score)
        if "bm" in self.feats:
            streams["bm"] = _motion(streams["b"], nc, has_score)
        out = {k: v for k, v in results.items() if k != "keypoint_score"}
        parts = [streams[f] for f in self.feats]
        out["keypoint"] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        out["feats"] = self.feats
        return out


Streams = GenSkeFeat


class ConvertLayout:
    """Map the joints to another layout (e.g. coco17 -> penn13) with posrec.skeleton's maps."""

    def __init__(self, dst: str):
        self.dst = dst

    def __call__(self, results: dict) -> dict:
        from posrec.skeleton import convert_layout

        src = _layout_name(results, None)
        if src == self.dst:
            return results
        kp, score = convert_layout(results["keypoint"], results.get("keypoint_score"), src,
                                   self.dst)
        out = {**results, "keypoint": kp, "layout": self.dst}
        if score is not None:
            out["keypoint_score"] = score
        return out


class ToTensor:
    """``keypoint`` (M, num_clips * T, V, C) (+ any remaining score as the last channel) ->
    torch.float32 (num_clips, M, T, V, C), stored back under ``keypoint``."""

    def __call__(self, results: dict) -> dict:
        import torch

        kp = _with_score(results)
        m, t, v, c = kp.shape
        nc = int(results.get("num_clips", 1))
        if t % nc:
            raise PosrecError(f"{t} frames do not split into {nc} clips")
        kp = kp.reshape(m, nc, t // nc, v, c).transpose(1, 0, 2, 3, 4)
        out = {k: val for k, val in results.items() if k != "keypoint_score"}
        out["keypoint"] = torch.from_numpy(np.ascontiguousarray(kp, dtype=np.float32))
        return out


def default_pipeline(dim: int, layout: str | None = None, clip_len: int = 100, num_clips: int = 1,
                     test_mode: bool = False, feats: Sequence[str] = ("j",), num_person: int = 2,
                     rotate: float = 0.0, scale: float = 0.0, shift: float = 0.0,
                     noise: float = 0.0, drop: float = 0.0, flip: float = 0.0) -> Compose:
    """The usual chain: normalise (2D by image size, 3D by body), augment (training only; 0
    switches each off), sample clips, pad people, streams, tensor. ``dim`` is 2 or 3."""
    ts: list[Transform] = [PreNormalize2D() if dim == 2 else PreNormalize3D(layout)]
    if not test_mode:
        if noise or drop:
            ts.append(EstimatorNoise(sigma=noise, drop_prob=drop))
        if flip:
            ts.append(RandomFlip(layout, flip))
        if rotate:
            ts.append(RandomRotate(rotate))
        if scale:
            ts.append(RandomScale(scale))
        if shift:
            ts.append(RandomShift(shift))
    ts += [UniformSample(clip_len, num_clips, test_mode), PadPersons(num_person),
           GenSkeFeat(layout, feats), ToTensor()]
    return Compose(ts)
