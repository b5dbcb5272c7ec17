"""The one checkpoint schema: what ``posrec train`` writes and everything else reads.

A checkpoint is a plain dict (saved with ``torch.save``, loaded with ``weights_only=True``):

| key | meaning |
|---|---|
| ``format_version`` | :data:`FORMAT_VERSION` (files without one are version 1 and are upgraded on load) |
| ``state_dict`` | the model's weights |
| ``arch``, ``flags`` | ``posrec.models.build_model`` arch and keyword flags |
| ``num_classes``, ``class_names`` | the classes, in label order |
| ``in_channels``, ``layout``, ``num_person`` | what the model's input has: C, the joints, M |
| ``pipeline`` | the input pipeline (``posrec.data.pipeline.InputSpec.to_dict``): streams, clip length, frame rate, normalisation, ... |
| ``selected_on`` | how this file was chosen: ``{"rule": "best val_top1", "split": "val", "metric": "val_top1", "epoch", "value", ...}`` for ``best.pt``, ``{"rule": "last epoch", "split": None, "epoch"}`` for ``last.pt`` |
| ``config`` | the resolved training config (``posrec.config.config_to_dict``) |
| ``metrics``, ``epoch`` | the metrics.csv row of its epoch, epochs trained (from 1) |
| ``optimizer``, ``scheduler``, ``rng``, ``history``, ``best_epoch``, ``best_val_top1`` | resume state |

:func:`load_model` rebuilds the model from a checkpoint alone; whoever scores or labels with a
checkpoint builds its input with ``InputSpec.from_dict(ck["pipeline"])``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write

FORMAT_VERSION = 2
MODEL_KEYS = ("arch", "flags", "num_classes", "class_names", "in_channels", "layout",
              "num_person", "pipeline")
LAST_EPOCH = {"rule": "last epoch", "split": None}


def best_selection(validation: dict, epoch: int, value: float) -> dict:
    """``selected_on`` of a checkpoint chosen as the best validation top-1 of ``validation``
    (a ``posrec.splits.prepare_splits`` ``validation`` dict)."""
    return {"rule": "best val_top1", **validation, "metric": "val_top1", "epoch": int(epoch),
            "value": float(value)}


def save_checkpoint(ck: dict, path: str | os.PathLike) -> None:
    """``torch.save`` into a temporary file, then rename: a kill never leaves half a file."""
    with atomic_write(path, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **ck}, f)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A posrec checkpoint, loaded with ``weights_only=True`` (no code runs), in the current
    schema (older files upgraded; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise PosrecError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0]
        raise PosrecError(f"{path}: not a readable posrec checkpoint "
                          f"({type(e).__name__}: {first})") from None
    return upgrade(ck, path)


def upgrade(ck: Any, path: str | os.PathLike | None = None) -> dict:
    """``ck`` with every key of the current schema. Version 1 (before ``format_version``) gets
    ``flags`` and ``num_person`` from its config and ``selected_on`` from its file name: a
    version-1 ``best.pt`` was chosen on ``data.val_split``, which then defaulted to the test
    split; without a path, a version-1 checkpoint counts as chosen that way."""
    where = str(path) if path is not None else "checkpoint"
    if not isinstance(ck, dict) or "state_dict" not in ck or "config" not in ck:
        raise PosrecError(f"{where}: not a posrec checkpoint (no state_dict/config)")
    version = ck.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PosrecError(f"{where}: checkpoint format {version!r}; this posrec reads up to "
                          f"{FORMAT_VERSION} (a newer posrec wrote it)")
    if version == FORMAT_VERSION:
        return ck
    cfg = ck["config"]
    ck = {**ck, "format_version": version}
    ck.setdefault("flags", dict(cfg["model"].get("flags") or {}))
    ck.setdefault("num_person", int(cfg["model"].get("num_person", 2)))
    if "selected_on" not in ck:
        if path is not None and Path(path).stem != "best":
            ck["selected_on"] = {**LAST_EPOCH, "epoch": ck.get("epoch")}
        else:
            val = cfg["data"].get("val_split") or cfg["data"]["test_split"]
            ck["selected_on"] = {"rule": "best val_top1", "split": val, "metric": "val_top1",
                                 "epoch": ck.get("best_epoch"), "value": ck.get("best_val_top1")}
    return ck


def check_same_model(ck: dict, arch: str, num_classes: int, layout: str, path) -> None:
    """PosrecError unless ``ck`` holds a model of this arch, class count and layout."""
    want, have = (arch, num_classes, layout), (ck.get("arch"), ck.get("num_classes"),
                                               ck.get("layout"))
    if have != want:
        raise PosrecError(
            f"{path}: checkpoint is from another model: {have[0]}, {have[1]} classes, layout "
            f"{have[2]}; the config builds {want[0]}, {want[1]} classes, layout {want[2]}")


def check_pipeline(ck: dict, spec, path) -> None:
    """PosrecError unless the config's input pipeline ``spec`` (an InputSpec) is the one the
    checkpoint was trained with (versions without a record of it pass)."""
    if ck.get("pipeline") is None:
        return
    from posrec.data.pipeline import InputSpec

    diff = spec.differences(InputSpec.from_dict(ck["pipeline"], str(path)))
    if diff:
        raise PosrecError(f"{path}: the config's input differs from the one the checkpoint was "
                          f"trained on ({'; '.join(diff)}; config != checkpoint): drop those "
                          f"settings, the checkpoint fixes them")


def check_not_selected_on(ck: dict, split: str, path) -> None:
    """PosrecError if ``ck`` was chosen by its score on ``split``: a figure on that split would
    be chosen on it."""
    sel = ck.get("selected_on") or {}
    if sel.get("split") == split:
        raise PosrecError(f"{path} was selected on split '{split}' ({sel.get('rule')} at epoch "
                          f"{sel.get('epoch')}): its score there is not a test result; score "
                          f"last.pt, or a checkpoint selected on a validation split")


def load_state(model: nn.Module, ck: dict, path) -> None:
    """Copy the checkpoint's weights into ``model``; a mismatch is one line."""
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        first = [s.strip() for s in str(e).splitlines() if s.strip()][1:2]
        raise PosrecError(f"{path}: checkpoint weights do not fit the model "
                          f"({first[0] if first else 'shape or key mismatch'})") from None


def build_from(ck: dict) -> nn.Module:
    """The (untrained) model a checkpoint describes."""
    from posrec.models import build_model

    return build_model(ck["arch"], int(ck["num_classes"]), ck["layout"],
                       in_channels=int(ck["in_channels"]), num_person=int(ck["num_person"]),
                       **dict(ck.get("flags") or {}))


def load_model(path_or_dict: str | os.PathLike | dict, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict]:
    """The trained model of a checkpoint (a path or a loaded dict), in eval mode on ``device``,
    and the checkpoint dict. Needs no config: arch, flags, classes, layout and input size come
    from the checkpoint. Its input is built with
    ``posrec.data.pipeline.InputSpec.from_dict(ck["pipeline"])``; it maps (N, M, T, V, C)
    float32 to logits (N, num_classes) over ``ck["class_names"]``."""
    if isinstance(path_or_dict, dict):
        where, ck = "checkpoint", upgrade(path_or_dict)
    else:
        where, ck = str(path_or_dict), load_checkpoint(path_or_dict)
    missing = [k for k in MODEL_KEYS if k not in ck and k != "pipeline"]  # pipeline: optional
    if missing:
        raise PosrecError(f"{where}: checkpoint has no {', '.join(missing)}")
    model = build_from(ck)
    load_state(model, ck, where)
    return model.to(device).eval(), ck
