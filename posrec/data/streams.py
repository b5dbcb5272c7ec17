"""Model input: people padded to M, the joint/bone/motion streams, the tensor."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from posrec.data._common import _f32, _layout_name, _present, layout_parents
from posrec.errors import PosrecError

FEATS = ("j", "b", "jm", "bm")  # the input streams (configs check data.feats against this)


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


class PresenceScore:
    """Replace the score channel by presence: 1 for a joint that is there, 0 for a missing one.
    A model trained on annotated joints (scores 0/1 or a fixed value for occluded ones) then sees
    the same kind of input from an estimator, whose scores have another distribution; the
    estimator's confidence enters through ``min_score``, which makes weak joints missing."""

    def __call__(self, results: dict) -> dict:
        return {**results, "keypoint_score": _present(_f32(results["keypoint"])).astype(np.float32)}


def _with_score(results: dict) -> np.ndarray:
    kp = np.asarray(results["keypoint"], dtype=np.float32)
    if "keypoint_score" in results:
        kp = np.concatenate([kp, _f32(results["keypoint_score"][..., None])], -1)
    return kp


def _motion(x: np.ndarray, num_clips: int, has_score: bool,
            seen: np.ndarray | None = None) -> np.ndarray:
    """Frame-to-frame difference within each clip (last frame 0); a score channel becomes the
    mean of the two frames' scores, as in PYSKL. ``seen`` (M, T, V) bool: where given, the
    motion (score channel included) is 0 unless the joint is seen in both frames, so a missing
    joint is no motion rather than a jump to the (0, 0) marker and back."""
    m, t, v, c = x.shape
    xs = x.reshape(m, num_clips, t // num_clips, v, c)
    mo = np.zeros_like(xs)
    mo[:, :, :-1] = xs[:, :, 1:] - xs[:, :, :-1]
    if has_score:
        mo[:, :, :-1, :, -1] = (xs[:, :, 1:, :, -1] + xs[:, :, :-1, :, -1]) / 2
    if seen is not None:
        ss = seen.reshape(m, num_clips, t // num_clips, v)
        both = np.zeros_like(ss)
        both[:, :, :-1] = ss[:, :, 1:] & ss[:, :, :-1]
        mo[~both] = 0
    return mo.reshape(m, t, v, c)


class GenSkeFeat:
    """The input streams, concatenated on the channel axis in the order of ``feats``:

    * ``j`` joint: the coordinates (+ score for 2D);
    * ``b`` bone: joint minus its parent towards the centre joint (zero at the centre; the score
      channel is the mean of the two joints' scores);
    * ``jm`` / ``bm``: joint / bone motion, the difference to the next frame (within each clip).

    ``mask_motion``: motion is 0 where the joint (bone) is missing in this frame or the next.
    Without it a dropped joint is a jump to (0, 0) and back: under the training augmentations'
    drops those jumps dominate the motion stream (JHMDB's runs then move no faster than its
    walks, RESULTS.md), and an estimator's weak joints do the same at inference.

    Output ``keypoint`` (M, T, V, C * len(feats)); ``keypoint_score`` is consumed.
    """

    def __init__(self, layout: str | None = None, feats: Sequence[str] = ("j",),
                 mask_motion: bool = False):
        bad = [f for f in feats if f not in FEATS]
        if bad or not feats:
            raise PosrecError(f"unknown input stream(s) {bad or list(feats)}; use j, b, jm, bm")
        self.feats, self.layout, self.mask_motion = tuple(feats), layout, mask_motion

    def __call__(self, results: dict) -> dict:
        j = _with_score(results)
        has_score = "keypoint_score" in results
        nc = int(results.get("num_clips", 1))
        streams = {"j": j}
        bones, mask = "b" in self.feats or "bm" in self.feats, self.mask_motion
        ok = _present(results["keypoint"]) if bones or mask else None
        if bones:
            parent = layout_parents(_layout_name(results, self.layout))
            jp = np.take(j, parent, axis=2)  # np.take: 3x faster than fancy indexing here
            b = j - jp
            if has_score:
                b[..., -1] = (j[..., -1] + jp[..., -1]) / 2
            bone_ok = ok & np.take(ok, parent, axis=2)
            b[~bone_ok] = 0  # a bone with a missing end is missing
            streams["b"] = b
        if "jm" in self.feats:
            streams["jm"] = _motion(j, nc, has_score, ok if mask else None)
        if "bm" in self.feats:
            streams["bm"] = _motion(streams["b"], nc, has_score, bone_ok if mask else None)
        out = {k: v for k, v in results.items() if k != "keypoint_score"}
        parts = [streams[f] for f in self.feats]
        out["keypoint"] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        out["feats"] = self.feats
        return out


Streams = GenSkeFeat


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
