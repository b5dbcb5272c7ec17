"""Action models for the labeller: the shipped ones, posrec checkpoints, PYSKL/MMAction2 files.

:func:`load_action_model` takes what ``posrec label --model`` accepts:

* a shipped model's name (``posrec models`` lists them): weights in
  ``posrec/weights/actions/<name>.safetensors`` with a model card ``<name>.json`` beside them
  (classes, input pipeline, calibration temperature, "no action" threshold, window and stride,
  accuracy, training data and terms, the command that trained it), checked against the card's
  sha256 when loaded;
* any posrec checkpoint (``.pt`` from ``posrec train``): it carries its input pipeline;
* a PYSKL or MMAction2 GCN checkpoint (``.pth``) through posrec's importer, for their
  COCO-17 models (``pyskl:PATH``; their input pipeline: frame-size normalisation, 100 frames
  sampled uniformly over each window, two people, x/y/score).

Each gives an :class:`ActionModel`: the network in eval mode, its :class:`InputSpec`, class
names and the calibration that turns logits into probabilities.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from posrec.data.pipeline import InputSpec
from posrec.errors import PosrecError
from posrec.estimate.types import BACKENDS
from posrec.io.atomic import file_sha256

SHIPPED_DIR = Path(__file__).resolve().parent / "weights" / "actions"
DEFAULT_MODEL = "posrec-actions-27"
CARD_KEYS = ("name", "arch", "flags", "num_classes", "in_channels", "class_names", "pipeline",
             "temperature", "threshold", "window_seconds", "stride_seconds", "sha256")


@dataclass
class ActionModel:
    """A recogniser ready to label windows.

    ``probabilities(x)`` maps model input (N, M, T, V, C) float32 to calibrated class
    probabilities (N, K): softmax of the logits divided by ``temperature``. A window whose top
    probability is under ``threshold`` is "no action". ``min_pose_fps``: the sparsest pose rate
    the labeller may estimate at (validated on the card; None: the model's own frame rate).
    ``runner``: what computes the logits instead of ``net`` (ONNX Runtime; see
    :func:`load_action_model`'s ``backend``), None for ``net`` itself.
    """

    name: str
    net: nn.Module
    spec: InputSpec
    class_names: list[str]
    temperature: float = 1.0
    threshold: float = 0.5
    window_seconds: float = 2.0
    stride_seconds: float = 0.5
    card: dict = field(default_factory=dict)
    min_pose_fps: float | None = None
    runner: Callable | None = field(default=None, repr=False, compare=False)
    may_fall_back: bool = field(default=False, repr=False, compare=False)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> np.ndarray:
        x = x.float()
        if self.runner is not None:
            try:
                logits = self.runner(x)
            except PosrecError as err:
                if not self.may_fall_back:
                    raise
                warnings.warn(f"{err}: falling back to PyTorch", stacklevel=2)
                self.runner = None
        if self.runner is None:
            logits = self.net(x)
        return torch.softmax(logits / self.temperature, -1).numpy().astype(np.float32)

    @property
    def backend(self) -> str:
        return "torch" if self.runner is None else "onnxruntime"


def shipped_models() -> dict[str, dict]:
    """{name: model card} of the models shipped in the package."""
    out = {}
    for card in sorted(SHIPPED_DIR.glob("*.json")):
        with open(card, encoding="utf-8") as f:
            out[card.stem] = json.load(f)
    return out


def _build(arch: str, flags: dict, num_classes: int, spec: InputSpec, in_channels: int):
    from posrec.models import build_model

    return build_model(arch, int(num_classes), spec.layout, in_channels=int(in_channels),
                       num_person=spec.num_person, **dict(flags or {}))


def _from_card(card: dict, weights: Path, where: str) -> ActionModel:
    from safetensors.torch import load_file

    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise PosrecError(f"{where}: model card lacks {', '.join(missing)}")
    if not weights.is_file():
        raise PosrecError(f"{where}: weights {weights.name} are missing")
    if file_sha256(weights) != card["sha256"]:
        raise PosrecError(f"{weights}: sha256 differs from the model card (a corrupt or foreign "
                          f"file); reinstall posrec or regenerate the weights")
    spec = InputSpec.from_dict(card["pipeline"], where)
    if len(card["class_names"]) != card["num_classes"]:
        raise PosrecError(f"{where}: card names {len(card['class_names'])} classes but the model "
                          f"has {card['num_classes']}")
    net = _build(card["arch"], card["flags"], card["num_classes"], spec, card["in_channels"])
    try:
        net.load_state_dict(load_file(str(weights)))
    except (RuntimeError, OSError) as e:
        first = [s.strip() for s in str(e).splitlines() if s.strip()][:2]
        raise PosrecError(f"{weights}: weights do not fit the model card "
                          f"({' '.join(first)[:200]})") from None
    return ActionModel(card["name"], net.eval(), spec, list(card["class_names"]),
                       float(card["temperature"]), float(card["threshold"]),
                       float(card["window_seconds"]), float(card["stride_seconds"]), card,
                       card.get("min_pose_fps"))


def _from_checkpoint(path: Path) -> ActionModel:
    from posrec.checkpoint import load_model

    net, ck = load_model(path)
    if "pipeline" not in ck:
        raise PosrecError(f"{path}: checkpoint has no input pipeline (made by an older posrec); "
                          f"retrain or re-save it")
    spec = InputSpec.from_dict(ck["pipeline"], str(path))
    calib = ck.get("calibration") or {}
    window = spec.window_seconds or 2.0
    return ActionModel(path.stem, net.eval(), spec, list(ck["class_names"]),
                       float(calib.get("temperature", 1.0)), float(calib.get("threshold", 0.5)),
                       window, window / 4, {"source": str(path)})


# PYSKL's COCO-17 skeleton pipeline (configs/stgcn++/stgcn++_ntu60_xsub_hrnet/j.py): image-size
# normalisation, 100 frames uniformly over the clip, two people, x/y/score joints.
PYSKL_SPEC = InputSpec("coco17", ("j",), clip_len=100, num_person=2, normalize="image")


def _from_pyskl(path: Path, arch: str = "stgcn++", num_classes: int | None = None,
                class_names: list[str] | None = None) -> ActionModel:
    from posrec.models.pyskl_import import _read, load_pyskl_checkpoint

    sd = _read(str(path))
    fc = next((v for k, v in sd.items() if k.endswith(("fc_cls.weight", "cls_head.fc.weight"))),
              None)
    if fc is None:
        raise PosrecError(f"{path}: no classifier weights (cls_head.fc_cls / cls_head.fc) found")
    k = int(num_classes or fc.shape[0])
    net = _build(arch, {}, k, PYSKL_SPEC, 3)
    load_pyskl_checkpoint(sd, net)
    names = class_names or [str(i) for i in range(k)]
    return ActionModel(path.stem, net.eval(), PYSKL_SPEC, names, 1.0, 0.5, 100 / 30, 0.5,
                       {"source": str(path), "format": "pyskl"})


def load_action_model(model: str | Path = DEFAULT_MODEL, backend: str = "auto") -> ActionModel:
    """The model named by ``model``: a shipped name, a posrec ``.pt`` checkpoint, or
    ``pyskl:PATH`` / a ``.pth`` file from PYSKL or MMAction2. PosrecError (one line) for an
    unknown name, a missing, truncated or foreign file, or a card that does not fit its weights.

    ``backend``: where the network runs: "onnxruntime" (exported once and cached, checked
    against PyTorch on its first input), "torch", or "auto" (ONNX Runtime where it is
    installed, falling back to PyTorch with a warning if the export fails).
    """
    from posrec.estimate import onnx_backend

    if backend not in BACKENDS:
        raise PosrecError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    am = _load(model)
    if backend == "onnxruntime" and not onnx_backend.available():
        raise PosrecError("backend 'onnxruntime' needs the onnxruntime and onnx packages: "
                          "pip install onnxruntime onnx, or use --backend torch")
    if backend != "torch" and onnx_backend.available():
        am.runner = onnx_backend.OnnxModule(am.net, f"action model {am.name}")
        am.may_fall_back = backend == "auto"
    return am


def _load(model: str | Path) -> ActionModel:
    text = str(model)
    if text.startswith("pyskl:") or text.endswith(".pth"):
        path = Path(text.removeprefix("pyskl:"))
        if not path.is_file():
            raise PosrecError(f"model file {path} does not exist")
        return _from_pyskl(path)
    path = Path(text)
    if path.suffix in (".pt", ".ckpt") or path.is_file():
        if not path.is_file():
            raise PosrecError(f"model file {path} does not exist")
        return _from_checkpoint(path)
    card_path = SHIPPED_DIR / f"{text}.json"
    if not card_path.is_file():
        names = ", ".join(shipped_models()) or "none"
        raise PosrecError(f"unknown model {text!r}: give a shipped name ({names}), a posrec "
                          f"checkpoint (.pt) or pyskl:FILE.pth")
    with open(card_path, encoding="utf-8") as f:
        card = json.load(f)
    return _from_card(card, card_path.with_suffix(".safetensors"), str(card_path))
