"""Training augmentations (geometric, estimator noise, mirroring) and the test-time flip."""

from __future__ import annotations

import numpy as np

from posrec.data._common import _f32, _layout, _layout_name, _present, _rng, layout_flip_perm


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


class EstimatorNoise:
    """Make annotated joints look like keypoint-estimator output.

    * jitter: Gaussian noise with std ``sigma`` x the person's size in that frame (diagonal of
      the box around its present joints), so it is the same relative error at any scale; with
      ``per_clip`` each person of each call gets its own std, uniform in [0, ``sigma``]: an
      estimator's jitter depends on how large the person is at its input (RESULTS.md), and the
      clips with little of it keep how fast the joints move readable;
    * drops: each present joint is lost with probability ``drop_prob`` (coordinates 0, score 0);
    * scores (2D): each kept joint's score is multiplied by a factor uniform in ``score_range``.
    """

    def __init__(self, sigma: float = 0.02, drop_prob: float = 0.05,
                 score_range: tuple[float, float] = (0.6, 1.0), per_clip: bool = False,
                 rng: np.random.Generator | None = None):
        self.sigma, self.drop_prob, self.score_range = sigma, drop_prob, score_range
        self.per_clip, self.rng = per_clip, rng

    def __call__(self, results: dict) -> dict:
        r = _rng(self.rng)
        kp = _f32(results["keypoint"])
        present = _present(kp)  # (M, T, V)
        lo = np.where(present[..., None], kp, np.inf).min(axis=2)
        hi = np.where(present[..., None], kp, -np.inf).max(axis=2)
        extent = np.where(present.any(-1)[..., None], hi - lo, 0)  # (M, T, C); 0 if nobody
        size = np.linalg.norm(extent, axis=-1)
        sigma = r.uniform(0, self.sigma, size=(len(kp), 1)) if self.per_clip else self.sigma
        noise = _f32(r.standard_normal(kp.shape)) * (sigma * size)[..., None, None]
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


def _joints(layout: str, words: tuple[str, ...]) -> np.ndarray:
    """Indices of the layout's joints whose names contain one of ``words``."""
    names = _layout(layout).joints
    return np.array([i for i, n in enumerate(names) if any(w in n for w in words)], np.int64)


class RandomTruncate:
    """Partial bodies: with probability ``p`` a clip loses its lower body for every frame, as
    when the legs are out of the frame: the ankles (half of the cases), knees and ankles (a
    third), or hips, knees and ankles (the rest)."""

    CUTS = ((("ankle",), 0.5), (("knee", "ankle"), 0.35), (("hip", "knee", "ankle"), 0.15))

    def __init__(self, layout: str, p: float = 0.1, rng: np.random.Generator | None = None):
        self.layout, self.p, self.rng = layout, p, rng
        self.cuts = [_joints(layout, words) for words, _ in self.CUTS]
        self.weights = np.array([w for _, w in self.CUTS])

    def __call__(self, results: dict) -> dict:
        r = _rng(self.rng)
        if r.random() >= self.p:
            return results
        gone = self.cuts[int(r.choice(len(self.cuts), p=self.weights))]
        kp = _f32(results["keypoint"]).copy()
        kp[:, :, gone] = 0
        out = {**results, "keypoint": kp}
        if "keypoint_score" in results:
            sc = _f32(results["keypoint_score"]).copy()
            sc[:, :, gone] = 0
            out["keypoint_score"] = sc
        return out


class RandomSwapLR:
    """Left/right confusion of an estimator on side views and lying bodies: runs of frames in
    which the left and right joints of the arms or of the legs (chosen per run) trade places, so
    the limbs cross into an X. A run starts at each frame with probability ``p`` and lasts a
    geometric number of frames with mean ``mean_run``."""

    def __init__(self, layout: str, p: float = 0.02, mean_run: float = 3.0,
                 rng: np.random.Generator | None = None):
        self.p, self.mean_run, self.rng = p, mean_run, rng
        lay = _layout(layout)
        perm = lay.flip_index
        self.groups = [_joints(layout, ("shoulder", "elbow", "wrist")),
                       _joints(layout, ("hip", "knee", "ankle"))]
        self.perms = []
        for g in self.groups:  # swap only the pairs inside the group
            q = np.arange(lay.num_joints)
            q[g] = perm[g]
            self.perms.append(q)

    def __call__(self, results: dict) -> dict:
        r = _rng(self.rng)
        kp = _f32(results["keypoint"])
        t = kp.shape[1]
        starts = np.flatnonzero(r.random(t) < self.p)
        if not len(starts):
            return results
        kp = kp.copy()
        sc = _f32(results["keypoint_score"]).copy() if "keypoint_score" in results else None
        for s in starts:
            e = min(t, s + int(r.geometric(1 / max(self.mean_run, 1))))
            q = self.perms[int(r.integers(len(self.perms)))]
            kp[:, s:e] = kp[:, s:e][:, :, q]
            if sc is not None:
                sc[:, s:e] = sc[:, s:e][:, :, q]
        out = {**results, "keypoint": kp}
        if sc is not None:
            out["keypoint_score"] = sc
        return out


class FrameDrop:
    """Frames in which the estimator lost the person: each frame of each person is all-missing
    (coordinates and scores 0) with probability ``p``."""

    def __init__(self, p: float = 0.02, rng: np.random.Generator | None = None):
        self.p, self.rng = p, rng

    def __call__(self, results: dict) -> dict:
        kp = _f32(results["keypoint"])
        lost = _rng(self.rng).random(kp.shape[:2]) < self.p  # (M, T)
        if not lost.any():
            return results
        out = {**results, "keypoint": np.where(lost[..., None, None], 0, kp).astype(np.float32)}
        if "keypoint_score" in results:
            out["keypoint_score"] = np.where(lost[..., None], 0,
                                             results["keypoint_score"]).astype(np.float32)
        return out
