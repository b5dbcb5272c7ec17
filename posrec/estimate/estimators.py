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
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from posrec.errors import PosrecError
from posrec.estimate import onnx_backend
from posrec.estimate.movenet import load_movenet
from posrec.estimate.preprocess import Window, crop_and_resize, resize_pad_to_32, resize_with_pad
from posrec.estimate.tracker import box_iou
from posrec.estimate.types import BACKENDS, ESTIMATORS, FramePoses
from posrec.io.atomic import file_sha256
from posrec.paths import WEIGHTS_DIR

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


def body_square(x: np.ndarray, y: np.ndarray, score: np.ndarray) -> tuple[float, float, float] | None:
    """The reference tutorial's square around a body from its keypoints (17,) x, y in pixels
    and scores: centre (cx, cy) between the hips, half-side the larger of 1.9 torso and 1.2 body
    half-extents; None where no hip or no shoulder is seen (score over 0.2)."""
    if not ((score[L_HIP] > MIN_CROP_KEYPOINT_SCORE or score[R_HIP] > MIN_CROP_KEYPOINT_SCORE)
            and (score[L_SHOULDER] > MIN_CROP_KEYPOINT_SCORE
                 or score[R_SHOULDER] > MIN_CROP_KEYPOINT_SCORE)):
        return None
    cy, cx = (y[L_HIP] + y[R_HIP]) / 2, (x[L_HIP] + x[R_HIP]) / 2
    torso = [L_SHOULDER, R_SHOULDER, L_HIP, R_HIP]
    torso_y, torso_x = np.abs(cy - y[torso]).max(), np.abs(cx - x[torso]).max()
    body = score >= MIN_CROP_KEYPOINT_SCORE
    body_y = np.abs(cy - y[body]).max(initial=0.0)
    body_x = np.abs(cx - x[body]).max(initial=0.0)
    return cx, cy, max(torso_x * 1.9, torso_y * 1.9, body_y * 1.2, body_x * 1.2)


def _next_crop_region(yxs: np.ndarray, h: int, w: int) -> np.ndarray:
    """The reference tutorial's ``determine_crop_region``: a square around the body, from the
    previous frame's keypoints (17, 3) as normalised (y, x, score) of the frame."""
    square = body_square(yxs[:, 1] * w, yxs[:, 0] * h, yxs[:, 2])
    if square is None:
        return _init_crop_region(h, w)
    cx, cy, half = square
    half = min(half, max(cx, w - cx, cy, h - cy))
    if half > max(w, h) / 2:
        return _init_crop_region(h, w)
    y0, x0 = cy - half, cx - half
    return np.array([y0 / h, x0 / w, (y0 + 2 * half) / h, (x0 + 2 * half) / w])


def check_frames(frames: Sequence[np.ndarray]) -> None:
    """Refuse what is not a sequence of (H, W, 3) images with a message that says so: a bare
    frame would otherwise be read as a batch of H images and fail deep in preprocessing."""
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise PosrecError(f"an estimator takes a list of frames, got one {frames.shape} array: "
                          "call it with [frame]")
    for f in frames:
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3:
            shape = getattr(f, "shape", type(f).__name__)
            raise PosrecError(f"frames must be (H, W, 3) RGB arrays, got {shape}")


class MultiPoseSize:
    """MultiPose input size (long side, px) and people per image, chosen per video.

    At 256 px, its training size, MultiPose misses people under about a fifth of the frame
    height (benchmarks/bench_multipose_size.py); larger inputs find them but cost time with
    the square of the size, and lose very large people. So the size is measured, not guessed:
    on the first frame of a video, when the frame size changes, and every ``reprobe_frames``
    frames after, one frame is run at every size of :attr:`LADDER` up to ``max_size`` and the
    frame's own long side (a *probe*). The people found at any size are pooled (boxes of one
    person overlap by IoU >= 0.3) and the size becomes the smallest that finds 90 % of them.
    Within a video the size only grows: a camera that once showed small people shows them
    again. Frames with a long side under 384 px (only 256 fits) are never probed. Up to
    12 people are decoded per image once a probe pooled 5 or more (the reference decodes 6).
    """

    LADDER = (256, 384, 512, 640, 768, 1024)
    RECALL, SAME_PERSON_IOU = 0.9, 0.3
    PROBE_PEOPLE, CROWD = 12, 5

    def __init__(self, max_size: int = 640, reprobe_frames: int = 150):
        if max_size % 32 or max_size < self.LADDER[0]:
            raise PosrecError(f"multipose max input size must be a multiple of 32 and >= "
                              f"{self.LADDER[0]}, got {max_size}")
        self.max_size, self.reprobe_frames = max_size, reprobe_frames
        self.reset()

    def reset(self) -> None:
        self.shape: tuple | None = None
        self.size, self.max_people, self.since_probe = self.LADDER[0], 6, 0

    def ladder(self, shape: tuple) -> list[int]:
        """Sizes a probe tries for frames of ``shape``: up to max_size and the frame's long side."""
        cap = min(self.max_size, max(shape[:2]))
        return [s for s in self.LADDER if s <= cap] or [self.LADDER[0]]

    def due(self, shape: tuple) -> bool:
        """Count one frame; True where this frame should be probed."""
        if len(self.ladder(shape)) < 2:
            return False
        if shape != self.shape or self.since_probe >= self.reprobe_frames:
            self.shape, self.since_probe = shape, 0
            return True
        self.since_probe += 1
        return False

    def choose(self, sizes: list[int], found: list[FramePoses]) -> int:
        """Update the choice from one probe: ``found[i]`` are the people at ``sizes[i]``.
        Returns the index of the size now chosen if it was probed, else -1."""
        pooled = np.zeros((0, 4), np.float32)
        for poses in found:
            for box in poses.boxes:
                if not len(pooled) or box_iou(pooled, box[None]).max() < self.SAME_PERSON_IOU:
                    pooled = np.vstack([pooled, box[None]])
        if not len(pooled):
            return sizes.index(self.size) if self.size in sizes else -1
        counts = [int((box_iou(pooled, p.boxes) >= self.SAME_PERSON_IOU).any(1).sum()) if len(p) else 0
                  for p in found]
        # no size finds RECALL of the people pooled over all sizes: the one that finds most
        best = next((s for s, c in zip(sizes, counts) if c >= self.RECALL * len(pooled)),
                    sizes[int(np.argmax(counts))])
        self.size = max(self.size, best)
        if len(pooled) >= self.CROWD:
            self.max_people = self.PROBE_PEOPLE
        return sizes.index(self.size) if self.size in sizes else -1


class MoveNetEstimator:
    """MoveNet Lightning/Thunder (one person) or MultiPose (6 people, 12 in crowds).

    Args:
        variant: "lightning", "thunder" or "multipose".
        follow_person: single-pose only; crop each frame around the person found in the previous
            one, as the reference does for video (call :meth:`reset` between videos).
        min_person_score: people scoring below this are dropped (single-pose: mean keypoint
            score; multipose: the model's person score).
        input_size: multipose only: the input's long side in pixels (a multiple of 32; 256 is
            the reference's and the fastest), or "auto" (default) to choose it per video from
            the frame and the people in it (:class:`MultiPoseSize`): 256 where people are large,
            up to ``max_input_size`` where they are small. Call :meth:`reset` between videos.
        max_input_size: the largest size "auto" may choose (multiple of 32). Time per frame
            grows with its square: 640 costs about 10x 256 (benchmarks/RESULTS.md).
        max_people: multipose people decoded per image (default: 6 at a fixed size, as the
            reference; with "auto", 6 or 12 as the probe finds a crowd).
        weights: the weight file (default: the shipped one, checked against its sha256).
        backend: where the network runs: "onnxruntime" (about twice as fast on a CPU; the
            decoding stays in PyTorch), "torch", or "auto" (default): ONNX Runtime on the CPU
            where it is installed, else PyTorch.
    """

    def __init__(self, variant: str = "lightning", follow_person: bool = False,
                 min_person_score: float | None = None, input_size: int | str = "auto",
                 max_input_size: int = 640, max_people: int | None = None,
                 weights: str | Path | None = None, device: str = "cpu", backend: str = "auto"):
        self.model = load_movenet(variant, path=weights).to(device)
        self.variant, self.device = variant, device
        self.network = self._network(backend, device, weights)
        self._may_fall_back = backend == "auto"  # to PyTorch if ONNX Runtime fails (not a setting)
        self.backend = "torch" if self.network is None else "onnxruntime"  # what runs (resume keys)
        self.multipose = self.model.multipose
        self.follow_person = follow_person and not self.multipose
        self.min_person_score = (0.2 if self.multipose else 0.1) if min_person_score is None \
            else min_person_score
        self.auto = self.multipose and input_size == "auto"
        self.sizer = MultiPoseSize(max_input_size) if self.auto else None
        if self.multipose and not self.auto:
            if not isinstance(input_size, int) or input_size % 32 or input_size < 32:
                raise PosrecError(f"multipose input size must be 'auto' or a multiple of 32, "
                                  f"got {input_size!r}")
            self.long_side = input_size
        self.max_people = max_people
        self._crop: np.ndarray | None = None

    def reset(self) -> None:
        """Start of a new video: forget the person followed and the chosen input size."""
        self._crop = None
        if self.sizer is not None:
            self.sizer.reset()

    def _network(self, backend: str, device: str, weights: str | Path | None):
        """The ONNX Runtime network for ``backend``, or None where PyTorch runs it."""
        if backend not in BACKENDS:
            raise PosrecError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if backend == "torch" or (backend == "auto" and (device != "cpu" or not onnx_backend.available())):
            return None
        if not onnx_backend.available():
            raise PosrecError("backend 'onnxruntime' needs the onnxruntime and onnx packages: "
                              "pip install onnxruntime onnx")
        path = weights or WEIGHTS_DIR / f"movenet_{self.variant}.safetensors"
        return onnx_backend.OnnxNetwork(self.model, file_sha256(path))

    @torch.inference_mode()
    def raw(self, inputs: np.ndarray, max_people: int | None = None) -> np.ndarray:
        """Model on prepared uint8 inputs (N, h, w, 3) -> reference outputs (see MoveNet)."""
        h, w = inputs.shape[1:3]
        if self.network is not None and h % 32 == 0 and w % 32 == 0:
            try:
                return self.model.decode(self.network(inputs), max_people).numpy()
            except PosrecError as err:
                if not self._may_fall_back:
                    raise
                warnings.warn(f"{err}: falling back to PyTorch", stacklevel=2)
                self.network, self.backend = None, "torch"
        x = torch.from_numpy(inputs).to(self.device)
        return self.model(x, max_people).float().cpu().numpy()

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FramePoses]:
        check_frames(frames)
        if self.follow_person:
            return [self._follow(frame) for frame in frames]
        outputs: list = [None] * len(frames)
        sizes = [self._size_for(frame, i, outputs) for i, frame in enumerate(frames)]
        people = self.max_people or (self.sizer.max_people if self.auto else None)
        prepared = {i: self._prepare(f, sizes[i]) for i, f in enumerate(frames) if outputs[i] is None}
        for shape in {p[0].shape for p in prepared.values()}:  # one forward pass per input size
            idx = [i for i, p in prepared.items() if p[0].shape == shape]
            for i, out in zip(idx, self.raw(np.stack([prepared[i][0] for i in idx]), people)):
                outputs[i] = self._to_poses(out, prepared[i][1])
        return outputs

    def _size_for(self, frame: np.ndarray, i: int, outputs: list) -> int | None:
        """The input size for frame ``i``; a probed frame gets its poses into ``outputs``."""
        if not self.auto:
            return None
        if self.sizer.due(frame.shape):
            sizes = self.sizer.ladder(frame.shape)
            found = []
            for size in sizes:
                image, window = self._prepare(frame, size)
                found.append(self._to_poses(self.raw(image[None], self.sizer.PROBE_PEOPLE)[0], window))
            chosen = self.sizer.choose(sizes, found)
            if chosen >= 0:
                outputs[i] = found[chosen]
        return self.sizer.size

    def _prepare(self, frame: np.ndarray, size: int | None = None) -> tuple[np.ndarray, Window]:
        """Model input and window; ``size``: multipose long side (default: the fixed one)."""
        if self.multipose:
            return resize_pad_to_32(frame, size or (self.sizer.size if self.auto else self.long_side))
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
        """One image's model output ((1, 17, 3) or (P, 56)) -> FramePoses in frame pixels."""
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
        check_frames(frames)
        if not len(frames):
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


def load_estimator(name: str = "lightning", follow_person: bool = False, device: str = "cpu",
                   backend: str = "auto", **kw):
    """An estimator by CLI name: lightning, thunder, multipose, multipose-follow (MultiPose
    finds people, Lightning follows each: :mod:`posrec.estimate.follow`) or keypointrcnn.

    ``backend`` (MoveNet only; Keypoint R-CNN always runs in PyTorch): see MoveNetEstimator."""
    if name == "keypointrcnn":
        return KeypointRCNNEstimator(device=device, **kw)
    if name == "multipose-follow":
        from posrec.estimate.follow import FollowingMultiPose

        return FollowingMultiPose(device=device, backend=backend, **kw)
    if name not in ESTIMATORS:
        raise PosrecError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
    return MoveNetEstimator(name, follow_person=follow_person, device=device, backend=backend, **kw)
