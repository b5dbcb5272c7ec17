"""Temporal sampling: which frames of a sequence make a clip."""

from __future__ import annotations

import numpy as np

from posrec.data._common import _rng
from posrec.errors import PosrecError


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


PAD_SHORT = ("edge", "loop", "absent")


def window_indices(num_frames: int, step: float, clip_len: int, num_clips: int = 1,
                   test_mode: bool = False, speed: tuple[float, float] = (1.0, 1.0),
                   rng: np.random.Generator | None = None, pad: str = "edge",
                   return_real: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Frame indices (num_clips * clip_len,) of windows of ``clip_len`` frames taken every
    ``step`` source frames (``step`` = source fps / model fps).

    Training draws a start and a speed factor in ``speed`` per window (1.25 plays 25 % faster);
    ``test_mode`` spreads ``num_clips`` windows evenly at speed 1. A sequence shorter than a
    window fills it the same way in training, test and the labeller's short tracks: ``pad``
    "edge" repeats its first and last frames (training: a random split of the padding; test:
    centred); "loop" plays it again from its start (training: from a random frame of it; test:
    from its first), so a short run stays a run for the whole window instead of becoming mostly
    a still body; "absent" takes the frames "edge" takes, and ``return_real`` tells which
    window frames are the sequence's own, (num_clips * clip_len,) bool, so the padding can be
    marked missing instead of showing a still body.
    """
    if pad not in PAD_SHORT:
        raise PosrecError(f"pad must be one of {', '.join(PAD_SHORT)}, got {pad!r}")
    if num_frames < 1:
        raise PosrecError("cannot sample frames from an empty sequence")
    r = None if test_mode else _rng(rng)
    out, real = [], []
    for i in range(num_clips):
        s = step if test_mode else step * float(r.uniform(*speed))
        span = (clip_len - 1) * s
        if span <= num_frames - 1:
            room = num_frames - 1 - span
            start = room * (i / (num_clips - 1) if num_clips > 1 else 0.5) if test_mode \
                else float(r.uniform(0, room))
            idx = np.rint(start + np.arange(clip_len) * s)
            own = np.ones(clip_len, bool)
        else:
            core = np.rint(np.arange(int((num_frames - 1) // s) + 1) * s)
            if pad == "loop":
                first = 0 if test_mode else int(r.integers(len(core)))
                idx = core[(first + np.arange(clip_len)) % len(core)]
                own = np.ones(clip_len, bool)
            else:
                room = clip_len - len(core)
                left = room // 2 if test_mode else int(r.integers(room + 1))
                idx = np.concatenate([np.full(left, core[0]), core, np.full(room - left, core[-1])])
                own = np.arange(clip_len) - left
                own = (own >= 0) & (own < len(core))
        out.append(np.clip(idx, 0, num_frames - 1).astype(np.int64))
        real.append(own)
    return (np.concatenate(out), np.concatenate(real)) if return_real else np.concatenate(out)


class WindowSample:
    """Clips of ``clip_len`` frames at ``fps`` frames per second: windows of a fixed duration
    (``clip_len / fps`` seconds), as the labeller cuts them from a video, instead of the whole
    sequence squeezed into ``clip_len`` frames (:class:`UniformSample`). The sequence's own rate
    is its ``fps`` key, else ``default_fps``. See :func:`window_indices`; ``speed`` (training
    only) is the range of the random speed factor, ``pad`` how a short sequence fills a window."""

    def __init__(self, clip_len: int, fps: float, num_clips: int = 1, test_mode: bool = False,
                 speed: tuple[float, float] = (1.0, 1.0), default_fps: float = 30.0,
                 rng: np.random.Generator | None = None, pad: str = "edge"):
        self.clip_len, self.fps, self.num_clips, self.test_mode = clip_len, fps, num_clips, test_mode
        self.speed, self.default_fps, self.rng, self.pad = speed, default_fps, rng, pad

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        test = self.test_mode or bool(results.get("test_mode", False))
        step = float(results.get("fps") or self.default_fps) / self.fps
        inds, real = window_indices(kp.shape[1], step, self.clip_len, self.num_clips, test,
                                    self.speed, self.rng, self.pad, return_real=True)
        out = {**results, "keypoint": kp[:, inds], "frame_inds": inds, "clip_len": self.clip_len,
               "num_clips": self.num_clips}
        if "keypoint_score" in results:
            out["keypoint_score"] = results["keypoint_score"][:, inds]
        if self.pad == "absent" and not real.all():  # the padding: missing joints (0, score 0)
            out["keypoint"] = np.where(real[None, :, None, None], out["keypoint"], 0)
            if "keypoint_score" in out:
                out["keypoint_score"] = np.where(real[None, :, None], out["keypoint_score"], 0)
        return out
