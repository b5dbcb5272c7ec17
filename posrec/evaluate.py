"""Scoring: a checkpoint on a split of its dataset, the metrics, the result files, ensembles.

``evaluate(cfg, checkpoint)`` averages softmax scores over ``cfg.data.num_clips`` clips per
sample (and their mirrors with ``cfg.data.test_flip``) with the input pipeline the checkpoint
records, and writes top-1/top-5/mean class accuracy, a per-class CSV, the confusion matrix and
raw scores. ``ensemble(score_files, weights)`` fuses the scores of several streams. Result
folders are never written over: an earlier result or an input in the way is an error.
"""

from __future__ import annotations

import csv
import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from posrec.checkpoint import (build_from, check_not_selected_on, check_pipeline,
                               check_same_model, load_checkpoint, load_state)
from posrec.config import Config
from posrec.distributed import Dist, ShardSampler, make_loader, progress, say
from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write, check_not_input

RESULT_FILES = ("per_class.csv", "confusion.csv", "confusion.png", "scores.npy", "scores.pkl",
                "metrics.json")  # metrics.json last: its presence marks a complete result


# --------------------------------------------------------------------------------------------
# Metrics


def topk(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores; equal scores rank the
    lower class index first (as ``argmax`` does). scores (N, K), labels (N,) int; NaN for N = 0."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(1).mean())


def confusion(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, pred, labels=np.arange(num_classes)).astype(np.int64)


def score_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """top1, top5, mean class accuracy (the mean over classes that have samples; classes
    without any are left out) and num_samples of (N, K) scores."""
    cm = confusion(labels, scores.argmax(1), scores.shape[1])
    support = cm.sum(1)
    present = support > 0
    mca = float((np.diag(cm)[present] / support[present]).mean()) if present.any() else \
        float("nan")
    return {"top1": topk(scores, labels, 1), "top5": topk(scores, labels, 5),
            "mean_class_acc": mca, "num_samples": int(len(labels))}


# --------------------------------------------------------------------------------------------
# Prediction


def autocast(amp: bool, dev: Dist):
    """bfloat16 autocast on CUDA when ``amp``; nothing on CPU."""
    if amp and dev.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict(model, loader, dev: Dist, n_total: int, k: int, desc: str, amp: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores averaged over clips, gathered from all processes.

    Returns ``(scores (N, K) float32, labels (N,) int64)`` in dataset order.
    """
    model.eval()
    idx, scores, labels = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, k)], \
        [torch.zeros(0, dtype=torch.long)]
    for x, y, i in progress(loader, dev, len(loader), desc):
        n, nc = x.shape[:2]
        x = x.flatten(0, 1).to(dev.device, non_blocking=True)  # (N * clips, M, T, V, C)
        with autocast(amp, dev):
            logits = model(x)
        scores.append(logits.float().softmax(-1).view(n, nc, k).mean(1).cpu())
        labels.append(y.long())
        idx.append(i.long())
    out_s = np.zeros((n_total, k), np.float32)
    out_y = np.zeros(n_total, np.int64)
    for i, s, y in dev.gather((torch.cat(idx), torch.cat(scores), torch.cat(labels))):
        out_s[i.numpy()] = s.numpy()
        out_y[i.numpy()] = y.numpy()
    return out_s, out_y


def eval_loader(ds, cfg: Config, dev: Dist):
    """Batches of one evaluation shard per process, in dataset order."""
    return make_loader(ds, ShardSampler(len(ds), dev.rank, dev.world),
                       cfg.train.test_batch_size or cfg.train.batch_size, cfg.train.num_workers,
                       dev)


# --------------------------------------------------------------------------------------------
# Evaluation of a checkpoint


def default_out_dir(checkpoint: str | os.PathLike, split: str) -> Path:
    """Where ``posrec test`` writes by default: ``<split>_<checkpoint stem>/`` beside it, e.g.
    ``test_best/``, ``test_last/``, ``test_penn_best/``."""
    path = Path(checkpoint)
    return path.parent / f"{split}_{path.stem}"


def evaluate(cfg: Config, checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
             *, split: str | None = None, _dev: Dist | None = None,
             _data: dict | None = None) -> dict:
    """Score ``checkpoint`` on ``split`` (default ``cfg.data.test_split``) with
    ``cfg.data.num_clips`` clips per sample (and their mirrors with ``cfg.data.test_flip``).

    The checkpoint fixes the model and its input pipeline; ``cfg`` adds only the data source,
    split names, clips, test_flip, batch size and device, and a config whose streams, clip
    length, layout or other input settings differ from the checkpoint's is an error. So is
    scoring on the split that selected the checkpoint (``selected_on``), and an ``out_dir``
    (default :func:`default_out_dir`) that holds an earlier result.

    Writes to ``out_dir``: ``metrics.json`` (the metrics, the checkpoint, its epoch and
    ``selected_on``, the split, clips), ``per_class.csv`` (class, support, correct, accuracy),
    ``confusion.csv`` and ``confusion.png`` (rows = true class), ``scores.npy`` (N, K float32
    softmax averaged over clips) and ``scores.pkl`` (``scores``, ``labels``, ``frame_dirs``,
    ``class_names``: plain containers and arrays, readable by posrec's restricted unpickler and
    by PYSKL tools). Returns ``top1``, ``top5``, ``mean_class_acc``, ``num_samples``.
    """
    from posrec.splits import load_data

    dev = _dev or Dist(cfg.train.device)
    threads = torch.get_num_threads()
    try:
        if _dev is None:  # called on its own: the thread rule of training (posrec.train)
            from posrec.train import choose_threads

            torch.set_num_threads(choose_threads(cfg.train.threads, dev.world))
        path = Path(checkpoint)
        split = split or cfg.data.test_split
        ck = dev.on_main(lambda: load_checkpoint(path))
        check_not_selected_on(ck, split, path)
        out = Path(out_dir) if out_dir is not None else default_out_dir(path, split)
        dev.on_main(lambda: check_free(out))  # before the work; its error reaches every rank
        data = load_data(cfg, extra=(split,)) if _data is None else _data
        ds, spec = _checked_dataset(ck, cfg, data, split, path)
        model = build_from(ck)
        load_state(model, ck, path)
        model.to(dev.device)
        scores, labels = predict(model, eval_loader(ds, cfg, dev), dev, len(ds),
                                 len(data["classes"]), split, cfg.train.amp)
        metrics = score_metrics(scores, labels)
        if dev.main:
            about = {"checkpoint": str(path), "epoch": ck.get("epoch"),
                     "selected_on": ck.get("selected_on"), "split": split,
                     "num_clips": cfg.data.num_clips, "test_flip": cfg.data.test_flip}
            write_results(out, scores, labels, [str(a["frame_dir"]) for a in ds.annotations],
                          data["classes"], metrics, about=about,
                          title=f"{path.name} on {split}")
            say(dev, f"test {path} on {split}: top1 {metrics['top1']:.4f} top5 "
                     f"{metrics['top5']:.4f} mean class acc {metrics['mean_class_acc']:.4f} "
                     f"({metrics['num_samples']} clips, {cfg.data.num_clips} crops"
                     f"{' + mirrored' if cfg.data.test_flip else ''}) -> {out}")
        return metrics
    finally:
        if _dev is None:
            torch.set_num_threads(threads)
            dev.close()


def _checked_dataset(ck: dict, cfg: Config, data: dict, split: str, path: Path):
    """The split's dataset built with the checkpoint's pipeline, after checking that the
    checkpoint, the config and the data agree."""
    from posrec.data.pipeline import InputSpec
    from posrec.splits import input_spec, split_dataset

    classes = data["classes"]
    check_same_model(ck, cfg.model.arch, len(classes), cfg.data.layout, path)
    if list(ck.get("class_names", classes)) != list(classes):
        raise PosrecError(f"{path}: checkpoint class names differ from the dataset's")
    if dict(ck.get("flags") or {}) != dict(cfg.model.flags):
        raise PosrecError(f"{path}: checkpoint model flags {ck.get('flags')} differ from the "
                          f"config's model.flags {cfg.model.flags}")
    spec = input_spec(cfg, data)
    check_pipeline(ck, spec, path)
    if ck.get("pipeline") is not None:
        spec = InputSpec.from_dict(ck["pipeline"], str(path))
    ds = split_dataset(spec, data, split, cfg.data.num_clips, test_flip=cfg.data.test_flip)
    c = int(ds[0][0].shape[-1])
    if c != int(ck["in_channels"]):
        raise PosrecError(f"{path}: the model takes {ck['in_channels']} input channels, the "
                          f"data gives {c}")
    return ds, spec


# --------------------------------------------------------------------------------------------
# Result files


def check_free(out: Path, inputs: Sequence[str | os.PathLike] = ()) -> None:
    """PosrecError if writing the result files into ``out`` would overwrite one of ``inputs``
    (score files or result folders) or an earlier result."""
    files = [Path(p) / "scores.pkl" if Path(p).is_dir() else Path(p) for p in inputs]
    for name in RESULT_FILES:
        check_not_input(out / name, *files)
    earlier = [n for n in ("metrics.json", "scores.pkl") if (out / n).exists()]
    if earlier:
        raise PosrecError(f"{out} already holds a result ({earlier[0]}): choose another output "
                          f"folder (-o) or move it away")


def write_results(out: str | os.PathLike, scores: np.ndarray, labels: np.ndarray,
                  frame_dirs: Sequence[str], classes: Sequence[str], metrics: dict, *,
                  about: dict | None = None, title: str = "",
                  inputs: Sequence[str | os.PathLike] = ()) -> None:
    """The files of :func:`evaluate` (see there) for (N, K) ``scores`` and (N,) ``labels``;
    ``about`` joins the metrics in metrics.json and ``title`` (what was scored on what) heads the
    confusion plot. Refuses (PosrecError) to overwrite ``inputs`` or an earlier result."""
    from posrec import viz
    from posrec.io.pickle import save_pickle

    out = Path(out)
    check_free(out, inputs)
    out.mkdir(parents=True, exist_ok=True)
    cm = confusion(labels, scores.argmax(1), len(classes))
    with atomic_write(out / "per_class.csv", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["class_index", "class_name", "support", "correct", "accuracy"])
        for i, name in enumerate(classes):
            n = int(cm[i].sum())
            w.writerow([i, name, n, int(cm[i, i]), f"{cm[i, i] / n:.6f}" if n else ""])
    with atomic_write(out / "confusion.csv", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["true\\pred", *classes])
        for i, name in enumerate(classes):
            w.writerow([name, *cm[i].tolist()])
    viz.plot_confusion(cm, classes, out / "confusion.png", title=title)
    with atomic_write(out / "scores.npy", "wb") as f:
        np.save(f, scores.astype(np.float32))
    save_pickle({"scores": scores.astype(np.float32), "labels": labels.astype(np.int64),
                 "frame_dirs": list(frame_dirs), "class_names": list(classes)}, out / "scores.pkl")
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump({**metrics, **(about or {})}, f, indent=2)


def load_scores(path: str | os.PathLike) -> dict:
    """A ``scores.pkl`` of :func:`evaluate` (or a directory holding one), read without running
    code: ``scores`` (N, K), ``labels`` (N,), ``frame_dirs``, ``class_names``."""
    from posrec.io.pickle import load_pickle

    path = Path(path)
    if path.is_dir():
        path = path / "scores.pkl"
    if not path.is_file():
        raise PosrecError(f"score file {path} does not exist")
    d = load_pickle(path)
    if not isinstance(d, dict) or not {"scores", "labels", "frame_dirs"} <= set(d):
        raise PosrecError(f"{path}: not a posrec score file (needs scores, labels, frame_dirs)")
    return d


def ensemble(score_files: Sequence[str | os.PathLike], weights: Sequence[float] | None = None,
             out_dir: str | os.PathLike | None = None) -> dict:
    """Fuse streams: the weighted sum of each file's softmax scores, matched by ``frame_dir``.

    Returns ``top1``, ``top5``, ``mean_class_acc``, ``num_samples`` of the fusion and
    ``streams``: each file's own top-1. With ``out_dir`` writes the files of :func:`evaluate`
    there (never over an input or an earlier result).
    """
    if not score_files:
        raise PosrecError("ensemble: no score files given")
    weights = [1.0] * len(score_files) if weights is None else [float(w) for w in weights]
    if len(weights) != len(score_files):
        raise PosrecError(f"ensemble: {len(score_files)} score files but {len(weights)} weights")
    if out_dir is not None:
        check_free(Path(out_dir), score_files)
    runs = [load_scores(p) for p in score_files]
    ref = runs[0]
    order = {fd: i for i, fd in enumerate(ref["frame_dirs"])}
    fused = np.zeros_like(np.asarray(ref["scores"], np.float64))
    streams = []
    for p, r, w in zip(score_files, runs, weights):
        s, y = np.asarray(r["scores"]), np.asarray(r["labels"])
        if sorted(r["frame_dirs"]) != sorted(ref["frame_dirs"]) or s.shape != fused.shape or \
                list(r.get("class_names") or []) != list(ref.get("class_names") or []):
            raise PosrecError(f"ensemble: {p} scores other clips or classes than "
                              f"{score_files[0]}")
        idx = np.array([order[fd] for fd in r["frame_dirs"]])
        if (np.asarray(ref["labels"])[idx] != y).any():
            raise PosrecError(f"ensemble: {p} labels the same clips differently")
        fused[idx] += w * s
        streams.append(topk(s, y, 1))
    labels = np.asarray(ref["labels"])
    metrics = score_metrics(fused, labels)
    if out_dir is not None:
        classes = ref.get("class_names") or [str(i) for i in range(fused.shape[1])]
        about = {"ensemble": [str(p) for p in score_files], "weights": weights}
        write_results(out_dir, fused.astype(np.float32), labels, ref["frame_dirs"], classes,
                      metrics, about=about, inputs=score_files,
                      title=f"ensemble of {len(score_files)} streams")
    return {**metrics, "streams": streams}
