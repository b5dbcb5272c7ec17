"""Frozen keypoint estimators behind one contract: ``estimator(frames) -> list[FramePoses]``.

Frames are RGB uint8 (H, W, 3); outputs are in the frames' pixel coordinates. Passing several
frames at once is the fast path (one batched forward pass), except for single-pose models that
follow the person from frame to frame, which are sequential by nature.
"""

from __future__ import annotations

import errno
import socket
import ssl
import urllib.error
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from posrec.errors import PosrecError
from posrec.estimate.movenet import load_movenet
from posrec.estimate.preprocess import Window, crop_and_resize, resize_pad_to_32, resize_with_pad
from posrec.estimate.types import FramePoses

ESTIMATORS = ("lightning", "thunder", "multipose", "keypointrcnn")
# COCO-17 indices used by the reference crop algorithm.
L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 5, 6, 11, 12
MIN_CROP_KEYPOINT_SCORE = 0.2


def _keypoint_boxes(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.2) -> np.ndarray:
    """Boxes (P, 4) x1 y1 x2 y2 around each person's confident keypoints (all if none is)."""
    boxes = np.zeros((len(keypoints), 4), np.float32)
    for i, (kp, sc) in enumerate(zip(keypoints, scores)):
        pts = kp[sc >= min_score] if (sc >= min_score).any() else kp
        boxes[i] = [*pts.min(0), *pts.max(0)]
    return boxes


def _init_crop_region(h: int, w: int) -> np.ndarray:
    """The whole frame as a square box (y1, x1, y2, x2), normalised: the reference's start."""
    if w > h:
        y_min = (h / 2 - w / 2) / h
        return np.array([y_min, 0.0, y_min + w / h, 1.0])
    x_min = (w / 2 - h / 2) / w
    return np.array([0.0, x_min, 1.0, x_min + h / w])


def _next_crop_region(yxs: np.ndarray, h: int, w: int) -> np.ndarray:
    """The reference tutorial's ``determine_crop_region``: a square around the body, from the
    previous frame's keypoints (17, 3) as normalised (y, x, score) of the frame."""
    score = yxs[:, 2]
    if not ((score[L_HIP] > MIN_CROP_KEYPOINT_SCORE or score[R_HIP] > MIN_CROP_KEYPOINT_SCORE)
            and (score[L_SHOULDER] > MIN_CROP_KEYPOINT_SCORE
                 or score[R_SHOULDER] > MIN_CROP_KEYPOINT_SCORE)):
        return _init_crop_region(h, w)
    ty, tx = yxs[:, 0] * h, yxs[:, 1] * w
    cy, cx = (ty[L_HIP] + ty[R_HIP]) / 2, (tx[L_HIP] + tx[R_HIP]) / 2
    torso = [L_SHOULDER, R_SHOULDER, L_HIP, R_HIP]
    torso_y, torso_x = np.abs(cy - ty[torso]).max(), np.abs(cx - tx[torso]).max()
    body = score >= MIN_CROP_KEYPOINT_SCORE
    body_y = np.abs(cy - ty[body]).max(initial=0.0)
    body_x = np.abs(cx - tx[body]).max(initial=0.0)
    half = max(torso_x * 1.9, torso_y * 1.9, body_y * 1.2, body_x * 1.2)
    half = min(half, max(cx, w - cx, cy, h - cy))
    if half > max(w, h) / 2:
        return _init_crop_region(h, w)
    y0, x0 = cy - half, cx - half
    return np.array([y0 / h, x0 / w, (y0 + 2 * half) / h, (x0 + 2 * half) / w])


class MoveNetEstimator:
    """MoveNet Lightning/Thunder (one person) or MultiPose (up to 6 people).

    Args:
        variant: "lightning", "thunder" or "multipose".
        follow_person: single-pose only; crop each frame around the person found in the previous
            one, as the reference does for video (call :meth:`reset` between videos).
        min_person_score: people scoring below this are dropped (single-pose: mean keypoint
            score; multipose: the model's person score).
        multipose_long_side: MultiPose input long side in pixels (multiple of 32).
    """

    def __init__(self, variant: str = "lightning", follow_person: bool = False,
                 min_person_score: float | None = None, multipose_long_side: int = 256,
                 device: str = "cpu"):
        self.model = load_movenet(variant).to(device)
        self.variant, self.device = variant, device
        self.multipose = self.model.multipose
        self.follow_person = follow_person and not self.multipose
        self.min_person_score = (0.2 if self.multipose else 0.1) if min_person_score is None \
            else min_person_score
        if multipose_long_side % 32:
            raise PosrecError(f"multipose input size must be a multiple of 32, got {multipose_long_side}")
        self.long_side = multipose_long_side
        self._crop: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the person being followed (start of a new video)."""
        self._crop = None

    @torch.inference_mode()
    def raw(self, inputs: np.ndarray) -> np.ndarray:
        """Model on prepared uint8 inputs (N, h, w, 3) -> reference outputs (see MoveNet)."""
        return self.model(torch.from_numpy(inputs).to(self.device)).float().cpu().numpy()

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FramePoses]:
        if self.follow_person:
            return [self._follow(frame) for frame in frames]
        prepared = [self._prepare(f) for f in frames]
        outputs: list = [None] * len(prepared)
        for shape in {p[0].shape for p in prepared}:  # one forward pass per input size
            idx = [i for i, p in enumerate(prepared) if p[0].shape == shape]
            for i, out in zip(idx, self.raw(np.stack([prepared[i][0] for i in idx]))):
                outputs[i] = self._to_poses(out, prepared[i][1])
        return outputs

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Window]:
        if self.multipose:
            return resize_pad_to_32(frame, self.long_side)
        return resize_with_pad(frame, self.model.input_size, self.model.input_size)

    def _follow(self, frame: np.ndarray) -> FramePoses:
        h, w = frame.shape[:2]
        if self._crop is None:
            self._crop = _init_crop_region(h, w)
        image, window = crop_and_resize(frame, self._crop, self.model.input_size)
        out = self.raw(image[None])[0]
        poses = self._to_poses(out, window)
        yx = out[0].copy()  # keypoints in normalised frame coordinates for the next crop
        yx[:, 0] = (window.y0 + yx[:, 0] * window.height) / h
        yx[:, 1] = (window.x0 + yx[:, 1] * window.width) / w
        self._crop = _next_crop_region(yx, h, w)
        return poses

    def _to_poses(self, out: np.ndarray, window: Window) -> FramePoses:
        """One image's model output ((1, 17, 3) or (6, 56)) -> FramePoses in frame pixels."""
        if self.multipose:
            kpts = out[:, :51].reshape(-1, 17, 3)
            person = out[:, 55]
            yx_box = out[:, 51:55]
            boxes = np.concatenate([window.to_pixels(yx_box[:, :2]), window.to_pixels(yx_box[:, 2:])], 1)
        else:
            kpts = out[:, :, :]
            person = kpts[..., 2].mean(-1)
            boxes = None
        keep = person >= self.min_person_score
        kpts, person = kpts[keep], person[keep]
        keypoints = window.to_pixels(kpts[..., :2])
        scores = kpts[..., 2]
        boxes = _keypoint_boxes(keypoints, scores) if boxes is None else boxes[keep]
        return FramePoses(keypoints, scores, boxes, person)


# errno values of a machine that cannot reach the network (no route, no interface, DNS).
_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.ECONNREFUSED,
                   errno.ECONNRESET, errno.ETIMEDOUT}


def _is_network_failure(err: BaseException) -> bool:
    """True for "cannot reach the server" (DNS, no route, refused, timeout, TLS), not for an
    HTTP error answer, a damaged cache file or a wrong state dict."""
    if isinstance(err, urllib.error.HTTPError):
        return False
    if isinstance(err, urllib.error.URLError):  # urllib's "could not open the connection"
        return True
    if isinstance(err, (ConnectionError, TimeoutError, socket.gaierror, socket.timeout, ssl.SSLError)):
        return True
    return isinstance(err, OSError) and err.errno in _NETWORK_ERRNOS


class KeypointRCNNEstimator:
    """torchvision's Keypoint R-CNN (ResNet-50 FPN, COCO_V1 weights): heavier, more people.

    The weights come through torchvision's download cache; offline, without the file in the
    cache, construction stops with a :class:`PosrecError` saying what to do.

    Args:
        weights: "COCO_V1" (download or cache) or None for uninitialised weights (tests).
        min_person_score: detections below this box score are dropped.
    """

    def __init__(self, weights: str | None = "COCO_V1", min_person_score: float = 0.5,
                 device: str = "cpu"):
        from torchvision.models.detection import (KeypointRCNN_ResNet50_FPN_Weights,
                                                  keypointrcnn_resnet50_fpn)

        self.model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                               box_score_thresh=min_person_score)
        if weights is not None:
            self._load(KeypointRCNN_ResNet50_FPN_Weights[weights].url)
        self.model.eval().requires_grad_(False).to(device)
        self.device = device

    def _load(self, url: str) -> None:
        """Weights from torchvision's cache or the network; every failure is one PosrecError
        line, and only a failure to reach the network is called "offline"."""
        cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        try:
            state = torch.hub.load_state_dict_from_url(url, progress=True, map_location="cpu",
                                                       weights_only=True)
            self.model.load_state_dict(state)
        except Exception as err:
            if _is_network_failure(err):
                raise PosrecError(
                    f"Keypoint R-CNN weights are not available offline ({type(err).__name__}): use "
                    f"--model lightning/thunder/multipose, or put {cache.name} in {cache.parent}") from None
            first_line = (str(err).strip().splitlines() or [""])[0][:200]
            hint = f"; delete {cache} if it is damaged" if cache.exists() else ""
            raise PosrecError(f"Keypoint R-CNN weights could not be loaded ({type(err).__name__}: "
                              f"{first_line}){hint}") from None

    @torch.inference_mode()
    def __call__(self, frames: Sequence[np.ndarray]) -> list[FramePoses]:
        if not frames:
            return []
        images = [torch.from_numpy(np.ascontiguousarray(f)).to(self.device).permute(2, 0, 1).float() / 255
                  for f in frames]
        return [self._to_poses(d) for d in self.model(images)]

    @staticmethod
    def _to_poses(det: dict) -> FramePoses:
        """torchvision detections -> FramePoses. Keypoint scores are heatmap logits there; a
        sigmoid puts them on the 0..1 scale the rest of posrec uses."""
        kp = det["keypoints"].cpu().numpy()
        return FramePoses(kp[..., :2], torch.sigmoid(det["keypoints_scores"]).cpu().numpy(),
                          det["boxes"].cpu().numpy(), det["scores"].cpu().numpy())


def load_estimator(name: str = "lightning", follow_person: bool = False, device: str = "cpu", **kw):
    """An estimator by CLI name: lightning, thunder, multipose or keypointrcnn."""
    if name == "keypointrcnn":
        return KeypointRCNNEstimator(device=device, **kw)
    if name not in ESTIMATORS:
        raise PosrecError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
    return MoveNetEstimator(name, follow_person=follow_person, device=device, **kw)
