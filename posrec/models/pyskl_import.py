"""Load PYSKL and MMAction2 (1.x) GCN checkpoints into posrec's models by renaming keys.

posrec's modules carry PYSKL's names below the block level, so the whole mapping is a table of
prefix renames:

================================  ===========================================
PYSKL / MMAction2 key prefix       posrec key prefix
================================  ===========================================
``backbone.data_bn.``              ``data_bn.``
``backbone.gcn.``  (ST-GCN/++)     ``blocks.``
``backbone.net.``  (CTR-GCN)       ``blocks.``
``cls_head.fc_cls.`` (PYSKL)       ``fc.``
``cls_head.fc.``   (MMAction2 1.x) ``fc.``
================================  ===========================================

A leading ``module.`` (DataParallel) is dropped, and so are PYSKL CTR-GCN's unused
``backbone.A`` and MMAction2's ``data_preprocessor.*``. Every tensor must find its key with the same
shape, and every parameter or buffer of the model must be filled: otherwise the load fails with a
PosrecError that lists the unmatched and mismatched keys, and the model is left untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

from posrec.errors import PosrecError

PREFIX_RENAMES: tuple[tuple[str, str], ...] = (
    ("backbone.data_bn.", "data_bn."),
    ("backbone.gcn.", "blocks."),
    ("backbone.net.", "blocks."),
    ("cls_head.fc_cls.", "fc."),
    ("cls_head.fc.", "fc."),
)

# Keys a checkpoint may hold that carry no weights: BatchNorm's step counter (recreated when
# absent), PYSKL CTR-GCN's backbone-level copy of the graph, which its forward never uses (every
# block holds its own learned A), and MMAction2's data preprocessor (normalisation constants).
_IGNORED_SUFFIXES = ("num_batches_tracked",)
DROPPED_KEYS = frozenset({"backbone.A"})
DROPPED_PREFIXES = ("data_preprocessor.",)


def rename_key(key: str) -> str | None:
    """posrec's name for a PYSKL/MMAction2 key, or None if no prefix in the table matches."""
    if key.startswith("module."):
        key = key[len("module."):]
    for old, new in PREFIX_RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _read(path_or_state_dict) -> Mapping[str, torch.Tensor]:
    if isinstance(path_or_state_dict, Mapping):
        sd = path_or_state_dict
    else:
        path = os.fspath(path_or_state_dict)
        if not os.path.isfile(path):
            raise PosrecError(f"checkpoint not found: {path}")
        try:  # weights_only: a checkpoint must not run code when it is loaded
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PosrecError(
                f"cannot read checkpoint {path}: {first} (posrec loads weights only; if the file is "
                "trusted and holds other objects, pass its state dict instead)") from None
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    return sd


def load_pyskl_checkpoint(path_or_state_dict, model: nn.Module) -> dict[str, str]:
    """Copy the weights of a PYSKL/MMAction2 checkpoint into ``model`` (in place).

    Args:
        path_or_state_dict: a ``.pth`` file (a dict with ``state_dict``, or a bare state dict)
            or the state dict itself, with PYSKL keys (``backbone.gcn.0.gcn.A``,
            ``backbone.data_bn.weight``, ``cls_head.fc_cls.weight``, ...) or MMAction2 1.x
            keys (``cls_head.fc.weight``).
        model: a posrec STGCN or CTRGCN built with the checkpoint's setting (layout, channels,
            classes, ST-GCN vs ST-GCN++ flags).

    Returns:
        the mapping {checkpoint key: posrec key} that was applied.

    Raises:
        PosrecError (one line) listing checkpoint keys with no counterpart, model keys the checkpoint does
        not fill and shape mismatches; nothing is copied then.
    """
    sd = _read(path_or_state_dict)
    target = model.state_dict()
    mapping, unmatched, mismatched = {}, [], []
    for key, value in sd.items():
        bare = key.removeprefix("module.")
        if bare in DROPPED_KEYS or bare.startswith(DROPPED_PREFIXES):
            continue
        if not isinstance(value, torch.Tensor):
            raise PosrecError(f"checkpoint entry {key!r} is not a tensor")
        new = rename_key(key)
        if new is None or new not in target:
            if not key.endswith(_IGNORED_SUFFIXES):
                unmatched.append(key if new is None else f"{key} (-> {new})")
            continue
        if tuple(value.shape) != tuple(target[new].shape):
            mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target[new].shape)}")
            continue
        mapping[key] = new
    filled = set(mapping.values())
    missing = [k for k in target if k not in filled and not k.endswith(_IGNORED_SUFFIXES)]
    if unmatched or mismatched or missing:
        lines = ["the checkpoint does not fit this model (is it the same architecture, layout, "
                 "input channels and number of classes?)"]
        for title, keys in (("checkpoint keys with no place in the model", unmatched),
                            ("shape mismatches", mismatched),
                            ("model keys the checkpoint does not fill", missing)):
            if keys:
                shown = keys[:20] + ([f"... and {len(keys) - 20} more"] if len(keys) > 20 else [])
                lines.append(f"{title} ({len(keys)}): " + "; ".join(shown))
        raise PosrecError(" | ".join(lines))
    with torch.no_grad():
        for key, new in mapping.items():
            target[new].copy_(sd[key])
    return mapping
