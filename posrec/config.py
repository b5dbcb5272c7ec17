"""Training configs: YAML files validated into nested dataclasses.

A config file has four sections, ``model``, ``data``, ``train`` and ``out_dir``; every key is
optional and takes the default below. Unknown keys and values of the wrong type are a
:class:`PosrecError` that names the file and the dotted key, e.g.
``configs/x.yaml: unknown key 'train.lrr'``. Command-line overrides ``key=value`` (``--set``)
are parsed as YAML scalars (``train.lr=0.05``, ``train.amp=false``, ``data.feats=[j,b]``) and
validated the same way.

Paths (``data.source``, ``data.cache``, ``train.init_from``, ``out_dir``) may use
``$POSREC_SHARED_DATA`` (the real data, see :func:`posrec.paths.shared_data_dir`) and other
environment variables; relative paths are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from posrec.errors import PosrecError
from posrec.data.sampling import PAD_SHORT
from posrec.data.streams import FEATS
from posrec.io.datasets import FORMATS
from posrec.models import ARCHS
from posrec.paths import shared_data_dir

# YAML 1.2 core-schema floats, which YAML 1.1 (PyYAML) reads as strings when they lack a dot
_YAML12_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


@dataclass
class ModelConfig:
    arch: str = "stgcn++"          # stgcn | stgcn++ | ctrgcn
    flags: dict[str, Any] = field(default_factory=dict)  # extra build_model keyword arguments
    in_channels: int | None = None  # C of the input; default: what the data and feats give
                                   # (3 per stream: x, y, score in 2D or x, y, z in 3D)
    num_person: int = 2            # M: people per clip fed to the model (padded / cut)
    num_classes: int | None = None  # default: the number of class names in the dataset


@dataclass
class AugmentConfig:
    """Training-time augmentation; 0 switches a transform off."""
    rotate: float = 0.0   # max rotation angle, radians (3D: about each axis; 2D: in plane)
    scale: float = 0.0    # max relative scale change per axis, e.g. 0.1 -> x0.9..1.1
    shift: float = 0.0    # max translation, in normalised coordinates
    noise: float = 0.0    # estimator-like joint jitter: std as a fraction of the person's size
    noise_per_clip: bool = False  # draw each clip's jitter std uniform in [0, noise] (real jitter
                                  # depends on the person's size at the estimator input)
    drop: float = 0.0     # probability that a joint is dropped (missing) in a frame
    flip: float = 0.0     # probability of a left/right flip
    speed: float = 0.0    # window sampling: speed factor uniform in [1 / (1 + speed), 1 + speed]
    truncate: float = 0.0  # probability that a clip loses its lower body (legs out of frame)
    swap: float = 0.0     # per-frame probability that a left/right limb confusion run starts
    frame_drop: float = 0.0  # per-frame probability that the person is lost (all joints missing)


@dataclass
class DataConfig:
    source: str = ""               # dataset pickle, or the raw dataset for `format`
    format: str = "pickle"         # pickle | penn | nwucla | kinetics | ntu | jhmdb
    cache: str | None = None       # raw formats: where the converted pickle is kept and reused
    layout: str = ""               # joint layout of the data and the model, e.g. penn13
    train_split: str = "train"
    test_split: str = "test"
    val_split: str | None = None   # a split of the dataset validated each epoch (never the
                                   # test split); default: carved from train_split (posrec.splits)
    val_fraction: float = 0.1      # the carved part of train_split; 0: no validation
    val_seed: int = 0              # seeds the carve (apart from train.seed, so that warm restarts
                                   # with another seed keep the same validation clips)
    clip_len: int = 100            # T frames sampled per clip
    sampling: str = "uniform"      # uniform: the whole sequence squeezed into clip_len frames;
                                   # window: clip_len frames at `fps` (a fixed duration)
    fps: float | None = None       # window sampling: the frame rate the model sees
    source_fps: float = 30.0       # frame rate of clips that carry no `fps` of their own
    normalize: str = "auto"        # image (2D pixels by frame size) | body3d | person (centre and
                                   # scale by the body); auto: image for 2D, body3d for 3D
    min_score: float = 0.01        # joints scoring at most this are missing
    score: str = "raw"             # score channel: raw (the data's scores) | presence (1 / 0)
    num_clips: int = 10            # clips per sample at test time (softmax scores averaged)
    val_clips: int = 1             # clips per sample for the per-epoch validation
    minmax: bool = False           # after augmenting, scale each axis of a clip to [-1, 1]
    remove_drift: bool = False     # person normalisation: take out each clip's horizontal drift
                                   # of the body (a pan, a walk across a fixed frame)
    pad_short: str = "edge"        # window sampling, a clip or track shorter than a window:
                                   # edge (repeat its first and last frames) | loop (play it
                                   # again) | absent (edge's frames, marked missing)
    mask_motion: bool = False      # jm / bm are 0 where the joint (bone) is missing in either
                                   # frame, not a jump to the (0, 0) missing marker
    test_flip: bool = False        # also score the left/right mirror of every test/val clip
    feats: list[str] = field(default_factory=lambda: ["j"])  # input stream(s): j, b, jm, bm
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train_per_class: int | None = None  # keep the first n training clips of each class
    test_per_class: int | None = None   # same for the test and validation splits


@dataclass
class TrainConfig:
    epochs: int = 16
    batch_size: int = 16           # per process
    test_batch_size: int | None = None  # default: batch_size
    lr: float = 0.1                # peak learning rate (PYSKL: 0.1 for a total batch of 128)
    min_lr: float = 0.0            # end of the cosine schedule
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    warmup_epochs: float = 0.0     # linear warm-up, updated per iteration
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max global gradient norm; None: off
    repeat: int = 1                # passes over the training split per epoch (PYSKL RepeatDataset)
    val_interval: int = 1          # validate every n epochs (and always after the last)
    final_test: bool = True        # after training, evaluate on the test split (num_clips)
    test_checkpoint: str = "best"  # ... with best.pt (chosen on validation; last.pt without
                                   # validation), or last
    seed: int = 0
    init_from: str | None = None   # start from this checkpoint's weights (fresh optimiser and
                                   # schedule): fine-tuning, or a warm restart of a finished run
    num_workers: int = 0
    threads: int | None = None     # torch CPU threads per process; default: see posrec.train
    amp: bool = True               # bfloat16 autocast, CUDA only (ignored on CPU)
    device: str = "auto"           # auto | cpu | cuda


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs/run"      # the run directory
    name: str = "run"              # default: the config file's stem


def _describe(v: Any) -> str:
    return f"{v!r} ({type(v).__name__})"


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _convert(value, rest[0], key, where)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise PosrecError(f"{where}: '{key}' must be a mapping, got {_describe(value)}")
        return _build(tp, value, where, key + ".")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise PosrecError(f"{where}: '{key}' must be true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PosrecError(f"{where}: '{key}' must be an integer, got {_describe(value)}")
    if tp is float:
        if isinstance(value, str) and _YAML12_FLOAT.match(value.strip()):
            value = float(value)  # PyYAML (YAML 1.1) reads 5e-4 as a string; YAML 1.2 a number
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise PosrecError(f"{where}: '{key}' must be a number, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise PosrecError(f"{where}: '{key}' must be a string, got {_describe(value)}")
    if origin is list:
        if isinstance(value, str):  # `feats: j` is the one-element list
            value = [value]
        if not isinstance(value, list):
            raise PosrecError(f"{where}: '{key}' must be a list, got {_describe(value)}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise PosrecError(f"{where}: '{key}' must be a mapping, got {_describe(value)}")
        return dict(value)
    raise TypeError(f"unsupported config annotation {tp!r}")  # a bug in this file


def _build(cls: type, raw: dict, where: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in names:
            raise PosrecError(f"{where}: unknown key '{prefix}{k}'")
    return cls(**{k: _convert(v, hints[k], prefix + k, where) for k, v in raw.items()})


def _check(cfg: Config, where: str) -> None:
    """Value checks that a type annotation cannot express."""
    def bad(key: str, msg: str) -> PosrecError:
        return PosrecError(f"{where}: '{key}' {msg}")

    if cfg.model.arch not in ARCHS:
        raise bad("model.arch", f"must be one of {', '.join(ARCHS)}, got {cfg.model.arch!r}")
    if cfg.data.format not in FORMATS:
        raise bad("data.format", f"must be one of {', '.join(FORMATS)}, got {cfg.data.format!r}")
    for i, f in enumerate(cfg.data.feats):
        if f not in FEATS:
            raise bad(f"data.feats[{i}]", f"must be one of {', '.join(FEATS)}, got {f!r}")
    for key, allowed in (("sampling", ("uniform", "window")),
                         ("normalize", ("auto", "image", "body3d", "person")),
                         ("score", ("raw", "presence")),
                         ("pad_short", PAD_SHORT)):
        if getattr(cfg.data, key) not in allowed:
            raise bad(f"data.{key}", f"must be one of {', '.join(allowed)}, "
                                     f"got {getattr(cfg.data, key)!r}")
    if cfg.data.sampling == "window" and not cfg.data.fps:
        raise bad("data.fps", "must be set for data.sampling: window")
    if not cfg.data.feats:
        raise bad("data.feats", "must name at least one stream")
    _check_validation(cfg.data, bad)
    if cfg.train.test_checkpoint not in ("last", "best"):
        raise bad("train.test_checkpoint",
                  f"must be last or best, got {cfg.train.test_checkpoint!r}")
    if cfg.train.device not in ("auto", "cpu", "cuda"):
        raise bad("train.device", f"must be auto, cpu or cuda, got {cfg.train.device!r}")
    positive = {"model.num_person": cfg.model.num_person, "train.epochs": cfg.train.epochs,
                "data.clip_len": cfg.data.clip_len, "data.num_clips": cfg.data.num_clips,
                "data.val_clips": cfg.data.val_clips, "train.batch_size": cfg.train.batch_size,
                "train.repeat": cfg.train.repeat, "train.val_interval": cfg.train.val_interval}
    optional_positive = {"model.in_channels": cfg.model.in_channels,
                         "model.num_classes": cfg.model.num_classes,
                         "train.test_batch_size": cfg.train.test_batch_size,
                         "data.train_per_class": cfg.data.train_per_class,
                         "data.test_per_class": cfg.data.test_per_class,
                         "train.threads": cfg.train.threads}
    positive.update({k: v for k, v in optional_positive.items() if v is not None})
    for k, v in positive.items():
        if v < 1:
            raise bad(k, f"must be at least 1, got {v}")
    nonneg = {"train.lr": cfg.train.lr,
              "train.min_lr": cfg.train.min_lr, "train.momentum": cfg.train.momentum,
              "train.weight_decay": cfg.train.weight_decay,
              "train.warmup_epochs": cfg.train.warmup_epochs,
              "train.num_workers": cfg.train.num_workers}
    nonneg.update({f"data.augment.{f.name}": getattr(cfg.data.augment, f.name)
                   for f in dataclasses.fields(AugmentConfig)})
    for k, v in nonneg.items():
        if v < 0:
            raise bad(k, f"must not be negative, got {v}")
    if cfg.train.grad_clip is not None and cfg.train.grad_clip <= 0:
        raise bad("train.grad_clip", f"must be positive or null, got {cfg.train.grad_clip}")
    if not 0 <= cfg.train.label_smoothing < 1:
        raise bad("train.label_smoothing", f"must be in [0, 1), got {cfg.train.label_smoothing}")
    for k in ("drop", "flip", "truncate", "swap", "frame_drop"):
        if getattr(cfg.data.augment, k) > 1:
            raise bad(f"data.augment.{k}", "is a probability and must be at most 1")


def _check_validation(d: DataConfig, bad) -> None:
    """Validation is never the test split (nor the training split)."""
    if d.val_split is not None and d.val_split in (d.test_split, d.train_split):
        which = "test" if d.val_split == d.test_split else "training"
        raise bad("data.val_split", f"is the {which} split '{d.val_split}': validation must be "
                                    f"apart from it (leave val_split unset to carve it from the "
                                    f"training split)")
    if not 0 <= d.val_fraction < 1:
        raise bad("data.val_fraction", f"must be in [0, 1), got {d.val_fraction}")


def apply_overrides(raw: dict, overrides: Sequence[str], where: str = "--set") -> dict:
    """Set ``key.sub=value`` items (values parsed as YAML) into a copy of the raw config dict.

    Keys are checked against the schema later, by :func:`config_from_dict`; an override of a
    key inside a section that is not a mapping is refused here.
    """
    out = _deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PosrecError(f"{where}: expected key=value, got {item!r}")
        try:
            value = yaml.load(text, Loader=_Loader) if text.strip() else ""
        except yaml.YAMLError as e:
            raise PosrecError(f"{where}: cannot parse the value of {key!r}: "
                              f"{str(e).splitlines()[0]}") from None
        node = out
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise PosrecError(f"{where}: '{'.'.join(parts[:i + 1])}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def config_from_dict(raw: dict | None, where: str = "<config>", name: str | None = None,
                     overrides: Sequence[str] = ()) -> Config:
    """Validate a plain dict (e.g. a checkpoint's ``config``) into a :class:`Config`."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise PosrecError(f"{where}: a config must be a mapping, got {type(raw).__name__}")
    if overrides:
        # Check each override on its own first, so that its error names the override.
        for item in overrides:
            _build(Config, apply_overrides({}, [item]), f"--set {item}")
        raw = apply_overrides(raw, overrides)
    raw = dict(raw)
    if name is not None and "name" not in raw:
        raw["name"] = name
    cfg = _build(Config, raw, where)
    if "out_dir" not in raw:
        cfg.out_dir = f"runs/{cfg.name}"
    _check(cfg, where)
    return cfg


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """Read and validate a YAML config; ``overrides`` are ``key=value`` strings (``--set``).

    A config may start from another: ``base: other.yaml`` (relative to the config's own folder)
    reads that file first and the config's keys override its keys, section by section (a list
    or a value replaces the base's). Bases may have bases; a loop is an error.
    """
    path = Path(path)
    return config_from_dict(_read_with_bases(path, ()), str(path), name=path.stem,
                            overrides=overrides)


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> dict:
    """The raw dict of the YAML file ``path`` merged over its ``base`` (recursively)."""
    key = path.resolve()
    if key in chain:
        raise PosrecError(f"{path}: 'base' includes loop back to {path.name} "
                          f"({' -> '.join(p.name for p in (*chain, key))})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        where = f"{chain[-1]}: base file {path}" if chain else str(path)
        raise PosrecError(f"{where}: cannot read config ({e.strerror or e})") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise PosrecError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PosrecError(f"{path}: a config must be a mapping, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise PosrecError(f"{path}: 'base' must be the path of another config, got {base!r}")
    return _merge(_read_with_bases(path.parent / base, (*chain, key)), raw)


def _merge(base: dict, over: dict) -> dict:
    out = _deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else _deepcopy(v)
    return out


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does (``5e-4`` is a float)."""


_Loader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def config_to_dict(cfg: Config) -> dict:
    """The config as plain containers (what run directories and checkpoints store)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically)."""
    from posrec.io.atomic import atomic_write

    with atomic_write(path, "w") as f:
        yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False)


def resolve_path(p: str) -> Path:
    """Expand ``$POSREC_SHARED_DATA`` (even when unset), other variables and ``~``."""
    for var in ("${POSREC_SHARED_DATA}", "$POSREC_SHARED_DATA"):
        p = p.replace(var, str(shared_data_dir()))
    return Path(os.path.expanduser(os.path.expandvars(p)))
