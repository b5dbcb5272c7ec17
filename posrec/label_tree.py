"""Labelling a folder tree of videos: one run directory per video, a summary, resumable, sharded.

``label_tree(root, out)`` labels every video under ``root`` into ``out/<relative path>/`` with
:func:`posrec.label.label_video` and writes ``out/summary.csv`` (one row per finished video).
A video whose run directory holds ``label.json`` (written last) is finished and never redone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from posrec.action_model import DEFAULT_MODEL, ActionModel, load_action_model
from posrec.errors import PosrecError
from posrec.label import as_estimator, check_settings, label_video


@dataclass
class TreeResult:
    """What :func:`label_tree` did: videos labelled now, skipped (finished before), failed."""

    done: list[Path]
    skipped: list[Path]
    failed: list[str]
    summary: Path


def label_tree(root: str | os.PathLike, out: str | os.PathLike, shard: str | None = None,
               progress: bool = True, **options) -> TreeResult:
    """Label every video under ``root`` into ``out/<relative path without suffix>/`` and write
    ``out/summary.csv`` (one row per finished video, from every shard's results).

    Resumable: a video whose run directory holds ``label.json`` is finished and skipped, so a
    killed run restarts where it stopped. ``shard`` "I/N" (or "auto": torchrun's RANK /
    WORLD_SIZE, Slurm's array task) labels every N-th video from the I-th. ``options`` go to
    :func:`label_video`; the model and estimator are loaded once.
    """
    from posrec.extract import parse_shard
    from posrec.io.video import iter_video_files
    from posrec.progress import progress_bar

    check_settings(options.get("window"), options.get("stride"), options.get("threshold"))
    root, out = Path(root), Path(out)
    own = out.resolve()  # OUT inside the tree (`posrec label .`): its overlays are no input
    videos = [v for v in iter_video_files([root], recursive=True) if own not in v.resolve().parents]
    rank, world = parse_shard(shard)
    mine = videos[rank::world]
    options = dict(options)
    options["model"] = _model_of(options.get("model", DEFAULT_MODEL))
    options["estimator"] = as_estimator(options.get("estimator", "multipose"))
    done, skipped, failed = [], [], []
    with progress_bar(len(mine), f"label {rank}/{world}" if world > 1 else "label",
                      unit="video", enabled=progress) as bar:
        for video in mine:
            run = out / video.relative_to(root).with_suffix("")
            if (run / "label.json").is_file():
                skipped.append(video)
            else:
                try:
                    label_video(video, out_dir=run, progress=False, **options)
                    done.append(video)
                except PosrecError as err:
                    failed.append(f"{video}: {err}")
            bar.update(1)
    return TreeResult(done, skipped, failed, write_tree_summary(root, out, videos))


def _model_of(model):
    return model if isinstance(model, ActionModel) else load_action_model(model)


def write_tree_summary(root: Path, out: Path, videos: list[Path]) -> Path:
    """``out/summary.csv`` from the ``label.json`` of every finished video of the tree."""
    from posrec.timeline import write_summary_csv

    rows = []
    for video in videos:
        info = out / video.relative_to(root).with_suffix("") / "label.json"
        if info.is_file():
            with open(info, encoding="utf-8") as f:
                row = json.load(f)["summary"]
            rows.append({**row, "video": str(video.relative_to(root))})
    path = out / "summary.csv"
    write_summary_csv(rows, path)
    return path
