"""The input pipeline, built in one place: what turns a skeleton sequence into model input.

:class:`InputSpec` holds every setting that fixes the input a trained model expects (layout,
streams, clip length, frame rate, normalisation, score channel, people). A checkpoint stores it
(``InputSpec.to_dict``) and whoever scores or labels with the checkpoint rebuilds the same
pipeline from it with :func:`build_transform`; training adds its augmentations on top.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from posrec.errors import PosrecError

SPEC_VERSION = 1


@dataclass(frozen=True)
class InputSpec:
    """The model's input contract. See :class:`posrec.config.DataConfig` for each field."""

    layout: str
    feats: tuple[str, ...] = ("j",)
    clip_len: int = 100
    num_person: int = 2
    dim: int = 2                   # 2: x, y (+ score); 3: x, y, z
    normalize: str = "image"       # image | body3d | person
    sampling: str = "uniform"      # uniform | window
    fps: float | None = None       # window: the frame rate windows are cut at
    source_fps: float = 30.0       # rate of clips without an `fps` key
    min_score: float = 0.01
    score: str = "raw"             # raw | presence
    minmax: bool = False
    remove_drift: bool = False
    pad_short: str = "edge"        # window sampling: edge | loop | absent (see DataConfig)
    mask_motion: bool = False      # motion streams 0 where a joint is missing (see DataConfig)

    @property
    def window_seconds(self) -> float | None:
        """Duration of one model clip in seconds (window sampling), else None."""
        return self.clip_len / self.fps if self.sampling == "window" and self.fps else None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["feats"] = list(self.feats)
        d["version"] = SPEC_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "checkpoint") -> "InputSpec":
        if not isinstance(d, dict):
            raise PosrecError(f"{where}: input pipeline is not a mapping")
        d = dict(d)
        version = d.pop("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise PosrecError(f"{where}: input pipeline version {version}; this posrec reads "
                              f"version {SPEC_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise PosrecError(f"{where}: unknown input pipeline keys {', '.join(unknown)}")
        if "layout" not in d:
            raise PosrecError(f"{where}: input pipeline has no layout")
        d["feats"] = tuple(d.get("feats", ("j",)))
        return cls(**d)

    def differences(self, other: "InputSpec") -> list[str]:
        """``field: mine != theirs`` for every field that differs."""
        return [f"{f.name} {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
                for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]


def spec_from_config(cfg: Any, dim: int) -> InputSpec:
    """The :class:`InputSpec` of a :class:`posrec.config.Config` for ``dim``-D data."""
    d = cfg.data
    normalize = d.normalize if d.normalize != "auto" else ("image" if dim == 2 else "body3d")
    if dim == 3 and normalize != "body3d":
        raise PosrecError(f"data.normalize: {normalize} is for 2D data; 3D data uses body3d")
    return InputSpec(layout=d.layout, feats=tuple(d.feats), clip_len=d.clip_len,
                     num_person=cfg.model.num_person, dim=dim, normalize=normalize,
                     sampling=d.sampling, fps=d.fps, source_fps=d.source_fps,
                     min_score=d.min_score, score=d.score, minmax=d.minmax,
                     remove_drift=d.remove_drift, pad_short=d.pad_short,
                     mask_motion=d.mask_motion)


def build_transform(spec: InputSpec, train: bool = False, num_clips: int = 1,
                    augment: Any = None, test_flip: bool = False, noisy: bool = False):
    """The transform chain of ``spec``: annotation dict -> ``keypoint`` float32 tensor
    (num_clips, M, clip_len, V, C), C = 3 * len(feats) in 2D.

    ``train`` samples at random and applies ``augment`` (a
    :class:`posrec.config.AugmentConfig`; 0 switches each off); otherwise ``num_clips`` clips are
    taken deterministically and ``test_flip`` adds each clip's mirror; ``noisy`` keeps
    ``augment``'s estimator-noise transforms at test time too (jitter, drops, frame drops,
    truncation, left/right swaps; not the geometric ones), to score a model under the
    estimator noise model. Image and body
    normalisation run on the whole sequence before sampling (PYSKL's order); person
    normalisation runs per clip after sampling and after the estimator-noise augmentations,
    as the labeller sees one window of a track at a time.
    """
    from posrec.data import augment as A
    from posrec.data import normalize as N
    from posrec.data import sampling as S
    from posrec.data import streams as F
    from posrec.data.transforms import Compose

    a = augment if train else None
    noise = augment if (train or noisy) else None
    ops: list = []
    if spec.normalize == "image":
        ops.append(N.PreNormalize2D(threshold=spec.min_score))
    elif spec.normalize == "body3d":
        ops.append(N.PreNormalize3D(layout=spec.layout))
    if spec.sampling == "window":
        speed = (1 / (1 + a.speed), 1 + a.speed) if a is not None and a.speed else (1.0, 1.0)
        ops.append(S.WindowSample(spec.clip_len, spec.fps, num_clips, not train, speed,
                                  spec.source_fps, pad=spec.pad_short))
    else:
        ops.append(S.UniformSample(clip_len=spec.clip_len, num_clips=num_clips,
                                   test_mode=not train))
    if noise is not None:
        ops += _estimator_noise_ops(noise, spec.layout)
    if a is not None and a.flip:
        ops.append(A.RandomFlip(p=a.flip, layout=spec.layout))
    if spec.normalize == "person":
        ops.append(N.PersonNormalize(min_score=spec.min_score, remove_drift=spec.remove_drift))
    if a is not None:
        ops += _geometric_ops(a)
    if spec.minmax:
        ops.append(N.MinMaxNormalize())
    if test_flip and not train:
        ops.append(A.AddFlipped(layout=spec.layout))
    if spec.score == "presence":
        ops.append(F.PresenceScore())
    ops += [F.PadPersons(num_person=spec.num_person),
            F.GenSkeFeat(layout=spec.layout, feats=spec.feats,
                          mask_motion=spec.mask_motion), F.ToTensor()]
    return Compose(ops)


def _estimator_noise_ops(noise, layout: str) -> list:
    """The estimator-noise augmentations that ``noise`` (an AugmentConfig) switches on."""
    from posrec.data import augment as A

    ops = []
    if noise.noise or noise.drop:
        ops.append(A.EstimatorNoise(sigma=noise.noise, drop_prob=noise.drop,
                                    per_clip=noise.noise_per_clip))
    if noise.frame_drop:
        ops.append(A.FrameDrop(p=noise.frame_drop))
    if noise.truncate:
        ops.append(A.RandomTruncate(layout, p=noise.truncate))
    if noise.swap:
        ops.append(A.RandomSwapLR(layout, p=noise.swap))
    return ops


def _geometric_ops(a) -> list:
    """Rotation, scale and shift of the normalised skeleton, as ``a`` switches them on."""
    from posrec.data import augment as A

    ops = []
    if a.rotate:
        ops.append(A.RandomRotate(theta=a.rotate))
    if a.scale:
        ops.append(A.RandomScale(scale=a.scale))
    if a.shift:
        ops.append(A.RandomShift(shift=a.shift))
    return ops
