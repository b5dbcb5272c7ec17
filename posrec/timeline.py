"""Per-window class probabilities -> per-person timeline, and its outputs (CSV, JSON, PNG, text).

The labeller (``posrec/label.py``) classifies overlapping sliding windows of each track's
skeleton. This module turns those window scores into segments: per track, time is cut into steps
at every window boundary, each step gets the mean probability of the windows that cover it, a
step is labelled with its most probable class (or ``no_action`` when that probability is under
the threshold), and neighbouring steps of one label merge into a segment. Times are seconds from
the video's own timestamps; a window covers ``[start, end)``, so ``end`` is the time just after
its last frame (that frame's timestamp plus one frame duration).

A segments table is a DataFrame with the columns :data:`COLUMNS`, one row per segment, sorted by
track then start. ``score`` is the time-weighted mean, over the segment, of the highest averaged
class probability: for a labelled segment that is the mean probability of its label; for a
"no action" segment it is how confident the best (rejected) guess was.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write

COLUMNS = ["track_id", "start", "end", "label", "score"]
SUMMARY_COLUMNS = ["video", "duration", "people", "top_label", "top_share", "segments"]
NO_ACTION = "no action"
NO_ACTION_COLOUR = "#d9d9d9"  # light grey: the eye skips it and finds the actions
TIME_DECIMALS = 3    # ms: finer than any frame interval of real video, and no float noise
SCORE_DECIMALS = 4
_SNAP = 6            # window times are snapped to microseconds, so that the float noise of
#                      computed timestamps (1e-12 s) never makes steps or segments of its own
_GAP, _NONE = -2, -1  # step codes beside class indices: not covered by any window / no action


def empty_timeline() -> pd.DataFrame:
    """A segments table with no rows and the right columns and dtypes."""
    return pd.DataFrame({"track_id": pd.Series(dtype="int64"), "start": pd.Series(dtype="float64"),
                         "end": pd.Series(dtype="float64"), "label": pd.Series(dtype="object"),
                         "score": pd.Series(dtype="float64")})


def _check_windows(windows: pd.DataFrame, probs: np.ndarray, class_names: Sequence[str],
                   threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Track ids (N,) int64, starts and ends (N,) float64 s, probabilities (N, K) float64."""
    missing = [c for c in ("track_id", "start", "end") if c not in windows.columns]
    if missing:
        raise PosrecError(f"window table lacks the column(s) {', '.join(missing)}")
    probs = np.asarray(probs, dtype=np.float64)
    n, k = len(windows), len(class_names)
    if probs.ndim != 2 or probs.shape != (n, k):
        raise PosrecError(f"window probabilities have shape {probs.shape}, expected ({n}, {k}): "
                          "one row per window, one column per class")
    if not np.isfinite(probs).all() or (probs < -1e-6).any() or (probs > 1 + 1e-6).any():
        raise PosrecError("window probabilities must be finite numbers between 0 and 1")
    if not 0.0 <= float(threshold) <= 1.0:
        raise PosrecError(f"threshold {threshold} is not a probability between 0 and 1")
    start = np.round(windows["start"].to_numpy(dtype=np.float64), _SNAP)
    end = np.round(windows["end"].to_numpy(dtype=np.float64), _SNAP)
    tid = windows["track_id"].to_numpy()
    if not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise PosrecError("window start and end times must be finite numbers of seconds")
    if (end <= start).any():
        i = int(np.argmax(end <= start))
        raise PosrecError(f"window {i} ends ({end[i]} s) before it starts ({start[i]} s); a window "
                          "covers [start, end): end is its last frame's time plus one frame")
    try:
        whole = n == 0 or (np.asarray(tid, dtype=np.float64) % 1 == 0).all()  # NaN is not whole
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise PosrecError("window track ids must be whole numbers")
    return tid.astype(np.int64), start, end, probs


def _close_gaps(start: np.ndarray, end: np.ndarray, max_gap: float) -> np.ndarray:
    """Window ends stretched over the gaps of at most ``max_gap`` s to the next window's start."""
    if max_gap <= 0 or len(start) < 2:
        return end
    order = np.argsort(start, kind="stable")
    reach = np.maximum.accumulate(end[order])[:-1]  # end of the covered time before window j+1
    nxt = start[order][1:]
    stretched = end.copy()
    for gap_start, gap_end in zip(reach, nxt):
        if 0 < gap_end - gap_start <= max_gap + 1e-9:
            stretched[end == gap_start] = gap_end
    return stretched


def _track_steps(start: np.ndarray, end: np.ndarray, probs: np.ndarray, threshold: float):
    """One track's steps: boundaries (S+1,) s, codes (S,) (class, _NONE, _GAP), best prob (S,)."""
    bounds = np.unique(np.concatenate([start, end]))
    i0, i1 = np.searchsorted(bounds, start), np.searchsorted(bounds, end)
    total = np.zeros((len(bounds) - 1, probs.shape[1]))
    count = np.zeros(len(bounds) - 1, dtype=np.int64)
    # Plain sums per window (a window spans only W/S steps); a running sum of differences would
    # be faster but leaves float noise that can tip a step across the threshold.
    for a, b, p in zip(i0, i1, probs):
        total[a:b] += p
        count[a:b] += 1
    mean = total / np.maximum(count, 1)[:, None]
    best = mean.max(1)
    codes = np.where(best < threshold, _NONE, mean.argmax(1))
    codes[count == 0] = _GAP
    return bounds, codes, best


def _merge_steps(bounds: np.ndarray, codes: np.ndarray, best: np.ndarray):
    """Runs of equal codes (gaps dropped) as (start s, end s, code, time-weighted mean best)."""
    cut = np.flatnonzero(np.diff(codes)) + 1
    firsts, lasts = np.r_[0, cut], np.r_[cut, len(codes)]
    dt = np.diff(bounds)
    for a, b in zip(firsts, lasts):
        if codes[a] != _GAP:
            score = float(np.dot(best[a:b], dt[a:b]) / dt[a:b].sum())
            yield float(bounds[a]), float(bounds[b]), int(codes[a]), score


def build_timeline(windows: pd.DataFrame, probs: np.ndarray, class_names: Sequence[str],
                   threshold: float, no_action: str = NO_ACTION, max_gap: float = 0.0
                   ) -> pd.DataFrame:
    """Segments (see :data:`COLUMNS`) from classified windows.

    ``windows``: one row per window with ``track_id`` (int), ``start``, ``end`` (s, ``end``
    exclusive); ``probs``: (N, K) class probabilities of those windows, in ``class_names`` order;
    ``threshold``: a step whose highest mean probability is under it is ``no_action``.
    ``max_gap``: gaps between a track's windows of at most this many seconds are closed (the
    earlier windows are stretched to the next start); longer gaps (the person left the frame)
    stay gaps, with no segment. Segments of one track never overlap.
    """
    tid, start, end, probs = _check_windows(windows, probs, class_names, threshold)
    names = list(class_names)
    rows = []
    for track in np.unique(tid):
        sel = tid == track
        s, e = start[sel], _close_gaps(start[sel], end[sel], max_gap)
        for a, b, code, score in _merge_steps(*_track_steps(s, e, probs[sel], threshold)):
            rows.append((int(track), a, b, no_action if code == _NONE else names[code], score))
    if not rows:
        return empty_timeline()
    seg = pd.DataFrame(rows, columns=COLUMNS)
    return seg.sort_values(["track_id", "start"], kind="stable").reset_index(drop=True)


def _check_segments(segments: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in segments.columns]
    if missing:
        raise PosrecError(f"timeline lacks the column(s) {', '.join(missing)}")
    return segments


def _rounded(segments: pd.DataFrame) -> pd.DataFrame:
    """The segments as written: columns in order, times in ms, scores to 4 decimals."""
    out = _check_segments(segments)[COLUMNS].copy()
    out["track_id"] = out["track_id"].astype("int64")
    out[["start", "end"]] = out[["start", "end"]].astype("float64").round(TIME_DECIMALS)
    out["score"] = out["score"].astype("float64").round(SCORE_DECIMALS)
    out["label"] = out["label"].astype(str)
    return out.reset_index(drop=True)


def _json_value(obj):
    """numpy numbers and arrays, and paths, in a caller's ``meta`` as plain JSON values."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"timeline meta holds a {type(obj).__name__}, which JSON cannot store")


def write_timeline(segments: pd.DataFrame, out_dir: str | os.PathLike, *,
                   duration: float | None = None, meta: dict | None = None) -> tuple[Path, Path]:
    """Write ``timeline.csv`` and ``timeline.json`` into ``out_dir``, atomically; returns both.

    The JSON is ``{"format": "posrec-timeline", "version": 1, "time_unit": "s", "duration": ...,
    "people": ..., **meta, "segments": [{track_id, start, end, label, score}, ...]}``; ``meta``
    holds what the caller wants kept beside it (video, model, threshold, window settings).
    """
    out_dir = Path(out_dir)
    seg = _rounded(segments)
    csv_path, json_path = out_dir / "timeline.csv", out_dir / "timeline.json"
    with atomic_write(csv_path, "w") as f:
        seg.to_csv(f, index=False, lineterminator="\n")
    doc = {"format": "posrec-timeline", "version": 1, "time_unit": "s",
           "duration": None if duration is None else round(float(duration), TIME_DECIMALS),
           "people": int(seg["track_id"].nunique())}
    doc |= {k: v for k, v in (meta or {}).items() if k not in doc and k != "segments"}
    doc["segments"] = [{"track_id": int(r.track_id), "start": float(r.start), "end": float(r.end),
                        "label": r.label, "score": None if math.isnan(r.score) else float(r.score)}
                       for r in seg.itertuples()]
    with atomic_write(json_path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False, default=_json_value)
        f.write("\n")
    return csv_path, json_path


def read_timeline(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Segments and header of a ``timeline.json`` (or of the run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "timeline.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != "posrec-timeline":
            raise ValueError("not a posrec timeline")
        seg = pd.DataFrame(doc.pop("segments"), columns=COLUMNS)
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
        raise PosrecError(f"cannot read the timeline {path}: {e}") from None
    if seg.empty:
        return empty_timeline(), doc
    return seg.astype({"track_id": "int64", "start": "float64", "end": "float64",
                       "score": "float64"}), doc


def label_colours(labels: Iterable[str], class_names: Sequence[str] | None = None,
                  no_action: str = NO_ACTION) -> dict[str, tuple]:
    """A colour per label: by its place in ``class_names`` (the model's classes, so one model's
    plots agree across videos), else by sorted order; ``no_action`` light grey."""
    from matplotlib import colormaps

    # 38 distinct colours: the dark then the light halves of tab20 and tab20b, tab20's greys left
    # out because grey means "no action".
    t20, t20b = colormaps["tab20"].colors, colormaps["tab20b"].colors
    palette = ([c for i, c in enumerate(t20[0::2]) if i != 7] + [t20b[i] for i in range(0, 20, 2)]
               + [c for i, c in enumerate(t20[1::2]) if i != 7] + [t20b[i] for i in range(1, 20, 2)])
    labels = sorted(set(labels) - {no_action})  # the dict's order: the legend's order
    order = list(class_names or []) + [lab for lab in labels if lab not in (class_names or [])]
    colours = {lab: palette[i % len(palette)] for i, lab in enumerate(order) if lab in labels}
    colours[no_action] = NO_ACTION_COLOUR
    return colours


def _label_segments(ax, seg: pd.DataFrame, lanes: dict, colours: dict, width_in: float,
                    span: float) -> None:
    """Write each label inside its bar where it fits (8-pt text: about 0.06 inch a letter)."""
    from matplotlib.colors import to_rgb

    per_s = width_in / span
    for r in seg.itertuples():
        if (r.end - r.start) * per_s > 0.065 * len(r.label) + 0.1:
            dark = np.dot(to_rgb(colours[r.label]), (0.299, 0.587, 0.114)) < 0.5
            ax.text((r.start + r.end) / 2, lanes[r.track_id], r.label, ha="center", va="center",
                    fontsize=8, clip_on=True, color="white" if dark else "black")


def plot_timeline(segments: pd.DataFrame, path: str | os.PathLike, duration: float | None = None,
                  title: str | None = None, class_names: Sequence[str] | None = None,
                  no_action: str = NO_ACTION) -> Path:
    """``timeline.png``: a lane per person, segments coloured by label, a legend below; returns path.

    ``duration``: the x axis runs from 0 to it (s; default the last segment's end);
    ``class_names``: the model's classes, which fix the colours (see :func:`label_colours`).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from posrec.viz import _save

    seg = _check_segments(segments)
    tracks = sorted(int(t) for t in seg["track_id"].unique())
    lanes = {t: i for i, t in enumerate(tracks)}
    span = max(_span(seg, duration), 1e-3) if len(seg) or duration else 1.0
    colours = label_colours(seg["label"], class_names, no_action)
    present = [lab for lab in colours if lab in set(seg["label"])]
    legend_rows = math.ceil(len(present) / 5)
    width_in = 10.0
    fig = Figure(figsize=(width_in, 1.2 + 0.4 * max(len(tracks), 1) + 0.22 * legend_rows),
                 layout="constrained")
    ax = fig.add_subplot()
    if len(seg):
        for track, g in seg.groupby("track_id"):  # one collection a lane: fast for 1000s
            ax.broken_barh(list(zip(g["start"], g["end"] - g["start"])), (lanes[track] - 0.35, 0.7),
                           facecolors=[colours[lab] for lab in g["label"]], edgecolor="white",
                           linewidth=0.5)
        _label_segments(ax, seg, lanes, colours, width_in * 0.8, span)
        fig.legend(handles=[Patch(color=colours[lab], label=lab) for lab in present],
                   loc="outside lower center", ncol=min(5, len(present)), fontsize=8,
                   frameon=False)
    else:
        ax.text(0.5, 0.5, "nobody was found in the video", ha="center", va="center",
                transform=ax.transAxes, color="grey")
    ax.set_yticks(range(len(tracks)), [f"person {t}" for t in tracks], fontsize=8)
    ax.set_ylim(len(tracks) - 0.5 if tracks else 0.5, -0.5)  # first person on top
    ax.set_xlim(0, span)
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title if title is not None else "who does what, when")
    _save(fig, path)
    return Path(path)


def _span(segments: pd.DataFrame, duration: float | None) -> float:
    ends = segments["end"].max() if len(segments) else 0.0
    return float(duration) if duration is not None else float(ends)


def _fmt_times(spans: Iterable[tuple[float, float]], most: int = 3) -> str:
    spans = list(spans)
    text = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in spans[:most])
    return text + (f" +{len(spans) - most} more" if len(spans) > most else "")


def _person_line(track: int, seg: pd.DataFrame, top: int, no_action: str) -> str:
    dur = seg["end"] - seg["start"]
    covered = float(dur.sum())
    time = dur.groupby(seg["label"]).sum().sort_values(ascending=False, kind="stable")
    actions = [lab for lab in time.index if lab != no_action]
    parts = [f"{lab} {time[lab] / covered:.0%} "
             f"({_fmt_times(zip(seg.start[seg.label == lab], seg.end[seg.label == lab]))} s)"
             for lab in actions[:top]]
    rest = actions[top:]
    if rest:
        parts.append(f"{len(rest)} other action{'s' * (len(rest) > 1)} "
                     f"{sum(time[r] for r in rest) / covered:.0%}")
    line = f"person {track} ({seg.start.min():.1f}-{seg.end.max():.1f} s): " + ", ".join(parts)
    if no_action in time.index:
        line += ("; " if parts else "") + f"{no_action} {time[no_action] / covered:.0%}"
    return line


def summarize(segments: pd.DataFrame, duration: float | None = None, top: int = 3,
              no_action: str = NO_ACTION) -> str:
    """A few lines for the terminal: per person, the ``top`` actions by time with their times.

    e.g. ``person 1 (0.0-9.8 s): clean_and_jerk 59% (2.1-7.9 s); no action 41%`` where the
    percentages are shares of the time that person was seen.
    """
    seg = _check_segments(segments).sort_values(["track_id", "start"], kind="stable")
    if seg.empty:
        return "nobody was found in the video"
    n = seg["track_id"].nunique()
    head = f"{n} {'person' if n == 1 else 'people'} in {_span(seg, duration):.1f} s of video"
    lines = [_person_line(int(t), g, top, no_action) for t, g in seg.groupby("track_id")]
    return "\n".join([head, *lines])


def summary_row(video: str, duration: float, segments: pd.DataFrame,
                no_action: str = NO_ACTION) -> dict:
    """One ``summary.csv`` row: video, duration (s), people, top_label, top_share, segments.

    ``top_label`` has the most person-seconds, "no action" only when nothing else was labelled;
    ``top_share`` is its fraction of all person-seconds in the timeline (NaN when empty).
    """
    seg = _check_segments(segments)
    row = {"video": str(video), "duration": round(float(duration), TIME_DECIMALS),
           "people": int(seg["track_id"].nunique()), "top_label": "", "top_share": math.nan,
           "segments": int(len(seg))}
    if seg.empty:
        return row
    time = (seg["end"] - seg["start"]).groupby(seg["label"]).sum()
    actions = time.drop(no_action, errors="ignore")
    pick = actions if len(actions) else time
    best = pick.sort_values(ascending=False, kind="stable").index[0]
    row["top_label"] = str(best)
    row["top_share"] = round(float(time[best] / time.sum()), 3)
    return row


def read_summary_csv(path: str | os.PathLike) -> list[dict]:
    """The rows of an existing ``summary.csv``; [] when there is none yet."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values={"top_share": [""]},
                         dtype={"video": str, "top_label": str})
    except (OSError, ValueError) as e:
        raise PosrecError(f"cannot read {path}: {e}") from None
    missing = [c for c in SUMMARY_COLUMNS if c not in df.columns]
    if missing:
        raise PosrecError(f"{path} is not a posrec summary (no {', '.join(missing)} column)")
    return df[SUMMARY_COLUMNS].to_dict("records")


def merge_rows(old: Iterable[dict], new: Iterable[dict]) -> list[dict]:
    """One row per video, a row of ``new`` replacing an ``old`` one of the same video; by video."""
    rows = {r["video"]: r for r in old}
    rows.update({r["video"]: r for r in new})
    return [rows[v] for v in sorted(rows)]


def write_summary_csv(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write the rows (see :func:`summary_row`) as ``summary.csv``, sorted by video, atomically."""
    df = pd.DataFrame(list(rows), columns=SUMMARY_COLUMNS)
    df = df.sort_values("video", kind="stable")
    with atomic_write(path, "w") as f:
        df.to_csv(f, index=False, lineterminator="\n")
    return Path(path)

