"""What MoveNet MultiPose + PoseTracker actually do on the real shared clips: the estimator noise
model that the action recogniser (trained on human-annotated penn13 joints) has to survive.

    OMP_NUM_THREADS=1 python benchmarks/noise_model.py [--threads 1] [--input-size auto|256]
        [--overlays /tmp/noise_overlays]

Every frame of each clip goes through ``load_estimator("multipose")`` (its default input size,
"auto", or a fixed long side) and
one :class:`PoseTracker`; the COCO-17 tracks are mapped to penn13 with ``convert_layout``. Only
main tracks (present in >= 50 % of the clip's frames) are measured. Units:

* person size: per frame, the diagonal of the box around the joints scored >= 0.3, median-
  filtered over 9 frames of the track; the same unit ``EstimatorNoise(sigma=...)`` scales by.
  Body height: max - min y of those joints, px.
* jitter: residual of each joint against a Savitzky-Golay fit (window 5, order 2; passes any
  quadratic motion) over 5 consecutive frames where the track is present, as |r| / size. For
  white noise of per-axis std s the residual is Rayleigh with scale s*sqrt(18/35), so
  ``sigma = median|r| / 0.844`` estimates s robustly; p90/median = 1.82 for Gaussian noise,
  more means heavier tails (swaps, real fast motion). Joints scored >= 0.3 only, unless noted.
* scores: penn13 scores (head = the highest of the five face points), percentiles; the fraction
  under 0.2 / 0.3 ("missing" at that threshold) and the mean length of low-score runs in frames.
* swaps (per left/right pair, both joints scored >= 0.2 in frames t-1 and t): a joint *jumps to
  the other side* when it moved > 0.1 size and lies less than half as far from the other joint's
  previous position as from its own; a *full swap* is both joints of the pair doing so.
* frame drops: frames inside a track's span (first to last frame) where the tracker has no pose.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import median_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posrec.estimate.estimators import MoveNetEstimator, load_estimator  # noqa: E402
from posrec.estimate.tracker import PoseTracker, tracks_to_arrays  # noqa: E402
from posrec.io.video import open_video  # noqa: E402
from posrec.paths import shared_data_dir  # noqa: E402
from posrec.skeleton import convert_layout, get_layout  # noqa: E402

CLIPS = ("clean_and_jerk.mp4", "tai_chi.mp4", "basketball_two_people.mp4", "sports2d_demo.mp4",
         "ntu_A055_hugging.avi")
GROUPS = {"head": [0], "shoulders": [1, 2], "elbows": [3, 4], "wrists": [5, 6], "hips": [7, 8],
          "knees": [9, 10], "ankles": [11, 12]}
PAIRS = {"shoulders": (1, 2), "elbows": (3, 4), "wrists": (5, 6), "hips": (7, 8),
         "knees": (9, 10), "ankles": (11, 12)}
SAVGOL5 = np.array([-3, 12, 17, 12, -3], np.float64) / 35.0  # window 5, order 2, centre value
RAYLEIGH_MEDIAN = np.sqrt(18 / 35) * np.sqrt(2 * np.log(2))  # median|r| per unit per-axis std
SIZE_SCORE = 0.3  # joints that define the person's box
SWAP_SCORE, SWAP_MOVE, SWAP_RATIO = 0.2, 0.1, 0.5
COLLAPSE = 0.05  # a left/right pair closer than this fraction of size: both on one limb?
OUTLIER = 0.05  # a residual over this fraction of the person's size is a gross error
BATCH = 8
# A frame that differs from the one before by less than this (mean |grey difference|, uint8
# levels), and much less than its neighbours, is a repeated frame of a frame-rate conversion
# (clean_and_jerk.mp4 has 0.02-0.06 between real changes of 2-5); MoveNet repeats its output
# on it, which would hide jitter, so jitter and swaps are measured with those frames left out.
DUPLICATE_DIFF = 0.1


def make_estimator(input_size: str, name: str = "multipose"):
    """MultiPose (or ``name``, "multipose-follow") at ``input_size`` ("auto": the estimator's
    per-video choice, or a long side in px), with either version of the estimator's constructor
    (``multipose_long_side`` before the automatic size existed)."""
    params = inspect.signature(MoveNetEstimator.__init__).parameters
    if input_size == "auto":
        return load_estimator(name)
    key = "input_size" if "input_size" in params else "multipose_long_side"
    return load_estimator(name, **{key: int(input_size)})


def _long_side(estimator, input_size: str) -> int:
    """The input long side the estimator used last (the automatic choice where there is one)."""
    sizer = getattr(getattr(estimator, "finder", estimator), "sizer", None)
    return int(sizer.size) if sizer is not None else int(getattr(estimator, "long_side", input_size))


def estimate_clip(path: Path, input_size: str, estimator_name: str = "multipose") -> dict:
    """Estimate and track one video -> penn13 tracks of its main people.

    Returns dict with kp (M, T, 13, 2) px, score (M, T, 13), present (M, T) bool, track_ids
    (M,), fps, frames, seconds (estimation wall time), frame_size (w, h), duplicate (T,) bool,
    long_side (model input px) and input_scale (model input px per frame px)."""
    estimator = make_estimator(input_size, estimator_name)
    t0 = time.perf_counter()
    tracked, diffs, prev = [], [], None
    with open_video(path) as video:
        tracker = PoseTracker(fps=video.fps)
        for batch in video.batches(BATCH):
            tracked += [tracker.update(p) for p in estimator(list(batch))]
            for frame in batch:  # mean |grey difference| to the previous frame, uint8 levels
                grey = frame[::4, ::4].mean(-1)
                diffs.append(np.inf if prev is None else float(np.abs(grey - prev).mean()))
                prev = grey
        fps, size = video.fps, (video.width, video.height)
    seconds = time.perf_counter() - t0
    kp, score, ids = tracks_to_arrays(tracked)
    T = len(tracked)
    present = np.zeros((len(ids), T), bool)
    row = {int(i): m for m, i in enumerate(ids)}
    for t, fp in enumerate(tracked):
        for tid in fp.track_ids:
            present[row[int(tid)], t] = True
    main = present.mean(1) >= 0.5
    kp13, sc13 = convert_layout(kp[main], score[main], "coco17", "penn13")
    return {"kp": kp13.astype(np.float64), "score": sc13, "present": present[main],
            "track_ids": ids[main], "all_tracks": len(ids), "fps": fps, "frames": T,
            "seconds": seconds, "frame_size": size, "duplicate": repeated_frames(np.array(diffs)),
            "long_side": _long_side(estimator, input_size),
            "input_scale": _long_side(estimator, input_size) / max(size)}


def repeated_frames(diffs: np.ndarray) -> np.ndarray:
    """(T,) bool: frames that repeat the previous one (a frame-rate conversion): a difference
    under DUPLICATE_DIFF and under a third of the median over the 11 frames around it."""
    local = median_filter(np.where(np.isfinite(diffs), diffs, 0.0), size=11, mode="nearest")
    return (diffs < DUPLICATE_DIFF) & (diffs < local / 3)


def person_size(kp: np.ndarray, score: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame size (T,) (box diagonal of joints scored >= SIZE_SCORE, median over 9 frames)
    and body height (T,), px; NaN where the track is absent or has < 2 such joints."""
    ok = (score >= SIZE_SCORE) & present[:, None]
    lo = np.where(ok[..., None], kp, np.inf).min(1)
    hi = np.where(ok[..., None], kp, -np.inf).max(1)
    valid = ok.sum(1) >= 2
    diag = np.where(valid, np.linalg.norm(hi - lo, axis=1), np.nan)
    height = np.where(valid, hi[:, 1] - lo[:, 1], np.nan)
    idx = np.flatnonzero(valid)
    if len(idx):  # smooth over the frames that have a size, so one bad frame does not rule
        diag[idx] = median_filter(diag[idx], size=9, mode="nearest")
    return diag, height


def runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def jitter(kp: np.ndarray, score: np.ndarray, present: np.ndarray, size: np.ndarray):
    """Savitzky-Golay residuals -> (rel (N,), joint (N,), centre score (N,)) for every joint at
    every frame t whose track is present at t-2..t+2."""
    T = len(present)
    if T < 5:
        return np.zeros(0), np.zeros(0, int), np.zeros(0)
    win = np.lib.stride_tricks.sliding_window_view(present, 5).all(1)  # centre t = i + 2
    t = np.flatnonzero(win) + 2
    t = t[np.isfinite(size[t])]
    fit = sum(c * kp[t + k - 2] for k, c in enumerate(SAVGOL5))  # (N, 13, 2)
    rel = np.linalg.norm(kp[t] - fit, axis=-1) / size[t, None]  # (N, 13)
    V = kp.shape[1]
    return rel.ravel(), np.tile(np.arange(V), len(t)), score[t].ravel()


def low_score_runs(score: np.ndarray, present: np.ndarray, thr: float) -> dict[int, list[int]]:
    """Per joint, the lengths of runs of frames scored < thr within stretches of presence."""
    out: dict[int, list[int]] = {v: [] for v in range(score.shape[1])}
    for seg_start, seg_len in zip(np.flatnonzero(np.diff(np.concatenate([[0], present.astype(np.int8)])) == 1),
                                  runs(present)):
        seg = score[seg_start:seg_start + seg_len]
        for v in out:
            out[v] += runs(seg[:, v] < thr)
    return out


def _jumps(kp, j, other, ref_j, ref_other, size) -> np.ndarray:
    """Joint j at frames (N,) moved > SWAP_MOVE size from its reference position and lies less
    than SWAP_RATIO as far from the other joint's reference: it went to the other side."""
    own = np.linalg.norm(kp[:, j] - ref_j, axis=-1)
    cross = np.linalg.norm(kp[:, j] - ref_other, axis=-1)
    return (own > SWAP_MOVE * size) & (cross < SWAP_RATIO * own)


def swaps(kp: np.ndarray, score: np.ndarray, present: np.ndarray, size: np.ndarray) -> dict:
    """Left/right confusions per pair.

    * step (frame t against t-1): ``single`` one joint went to the other side, ``full`` both
      did (an exchange); the frames from one full step swap to the next of the pair estimate how
      long a swap lasts when it reverts;
    * transient (frame t against the mean of t-1 and t+1, so a legitimate crossing of the legs in
      a stride, smooth in time, does not count): ``transient`` both joints exchanged for that
      frame, ``transient_single`` one joint did.
    Eligible: the track present and both joints scored >= SWAP_SCORE in all frames compared."""
    out = {}
    T = len(present)
    ok_frame = present & np.isfinite(size)
    for name, (a, b) in PAIRS.items():
        good = ok_frame & (score[:, [a, b]] >= SWAP_SCORE).all(1)
        step = good[1:] & good[:-1]
        cur, prev, s1 = kp[1:], kp[:-1], size[1:]
        ja = _jumps(cur, a, b, prev[:, a], prev[:, b], s1) & step
        jb = _jumps(cur, b, a, prev[:, b], prev[:, a], s1) & step
        full = np.flatnonzero(ja & jb)
        mid_ok = good[1:-1] & good[:-2] & good[2:] if T > 2 else np.zeros(0, bool)
        mid = (kp[:-2] + kp[2:]) / 2 if T > 2 else kp[:0]
        c, sm = kp[1:-1], size[1:-1]
        ta = _jumps(c, a, b, mid[:, a], mid[:, b], sm) & mid_ok if T > 2 else mid_ok
        tb = _jumps(c, b, a, mid[:, b], mid[:, a], sm) & mid_ok if T > 2 else mid_ok
        apart = np.linalg.norm(kp[:, a] - kp[:, b], axis=-1)
        out[name] = {"both": int(good.sum()), "collapsed": int((good & (apart < COLLAPSE * size)).sum()),
                     "eligible": int(step.sum()), "single": int((ja ^ jb).sum()),
                     "full": len(full), "full_frames": full + 1, "durations": list(np.diff(full)),
                     "eligible_mid": int(mid_ok.sum()), "transient": int((ta & tb).sum()),
                     "transient_single": int((ta ^ tb).sum()),
                     "transient_frames": np.flatnonzero(ta & tb) + 1, "step_mask": ja & jb}
    return out


def body_flips(sw: dict) -> int:
    """Frames where at least 4 of the 6 pairs exchanged at once (a whole-body left/right flip)."""
    return int((np.sum([d["step_mask"] for d in sw.values()], axis=0) >= 4).sum()) if sw else 0


def frame_drops(present: np.ndarray) -> tuple[int, int, list[int]]:
    """(frames in span, absent frames in span, gap lengths) of one track."""
    idx = np.flatnonzero(present)
    span = present[idx[0]:idx[-1] + 1]
    return len(span), int((~span).sum()), runs(~span)


def measure(clip: dict) -> dict:
    """All statistics of one clip's main tracks, pooled over its tracks."""
    acc = {"rel": [], "joint": [], "jscore": [], "score": [], "height": [], "runs2": {},
           "runs3": {}, "swaps": [], "span": 0, "absent": 0, "gaps": [], "swap_frames": [], "flips": 0,
           "input_scale": clip["input_scale"]}
    distinct = ~clip["duplicate"]
    for m in range(len(clip["present"])):
        kp, sc, pr = clip["kp"][m], clip["score"][m], clip["present"][m]
        size, height = person_size(kp, sc, pr)
        kd, sd, pd = kp[distinct], sc[distinct], pr[distinct]
        size_d = size[distinct]
        r, j, s = jitter(kd, sd, pd, size_d)
        acc["rel"].append(r), acc["joint"].append(j), acc["jscore"].append(s)
        acc["score"].append(sc[pr])
        acc["height"].append(height[np.isfinite(height)])
        for key, thr in (("runs2", 0.2), ("runs3", 0.3)):
            for v, lens in low_score_runs(sc, pr, thr).items():
                acc[key].setdefault(v, []).extend(lens)
        sw = swaps(kd, sd, pd, size_d)
        acc["swaps"].append(sw)
        acc["flips"] += body_flips(sw)
        frame_of = np.flatnonzero(distinct)  # back to the video's frame numbers
        acc["swap_frames"] += [(m, int(frame_of[f]), n, kind.split("_")[0]) for n, d in sw.items()
                               for kind in ("full_frames", "transient_frames") for f in d[kind]]
        n_span, n_abs, gaps = frame_drops(pr)
        acc["span"] += n_span
        acc["absent"] += n_abs
        acc["gaps"] += gaps
    for key in ("rel", "joint", "jscore", "score", "height"):
        acc[key] = np.concatenate(acc[key]) if acc[key] else np.zeros(0)
    if acc["score"].size == 0:
        acc["score"] = np.zeros((0, 13))
    return acc


def merge(stats: list[dict]) -> dict:
    """Pool several clips' statistics (each frame of each main track counts once)."""
    out = {k: np.concatenate([s[k] for s in stats]) for k in ("rel", "joint", "jscore", "height")}
    out["score"] = np.concatenate([s["score"] for s in stats])
    for key in ("runs2", "runs3"):
        out[key] = {v: sum((s[key].get(v, []) for s in stats), []) for v in range(13)}
    out["swaps"] = sum((s["swaps"] for s in stats), [])
    out["span"] = sum(s["span"] for s in stats)
    out["absent"] = sum(s["absent"] for s in stats)
    out["gaps"] = sum((s["gaps"] for s in stats), [])
    out["flips"] = sum(s["flips"] for s in stats)
    return out


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else float("nan")


def _rate(st: dict, pairs: list[str], count: str, eligible: str) -> float:
    n = sum(s[p][eligible] for s in st["swaps"] for p in pairs)
    return sum(s[p][count] for s in st["swaps"] for p in pairs) / n if n else float("nan")


def group_row(st: dict, joints: list[int], pairs: list[str]) -> dict:
    """Summary figures of one joint group (or all joints) and its left/right pairs."""
    mine = np.isin(st["joint"], joints)
    rel = st["rel"][mine & (st["jscore"] >= 0.3)]
    low = st["rel"][mine & (st["jscore"] < 0.3)]
    sc = st["score"][:, joints].ravel()
    r2 = sum((st["runs2"][v] for v in joints), [])
    r3 = sum((st["runs3"][v] for v in joints), [])
    dur = sum((s[p]["durations"] for s in st["swaps"] for p in pairs), [])
    med = _pct(rel, 50)
    mean = (lambda x: float(np.mean(x)) if len(x) else float("nan"))
    return {"jit_med": med, "jit_p90": _pct(rel, 90), "jit_p99": _pct(rel, 99),
            "sigma": med / RAYLEIGH_MEDIAN, "outlier": mean(rel > OUTLIER),
            "jit_low_med": _pct(low, 50), "n_jit": len(rel),
            "s10": _pct(sc, 10), "s25": _pct(sc, 25), "s50": _pct(sc, 50), "s90": _pct(sc, 90),
            "lt2": mean(sc < 0.2), "lt3": mean(sc < 0.3), "run2": mean(r2), "run3": mean(r3),
            "full": _rate(st, pairs, "full", "eligible"), "single": _rate(st, pairs, "single", "eligible"),
            "transient": _rate(st, pairs, "transient", "eligible_mid"),
            "transient_single": _rate(st, pairs, "transient_single", "eligible_mid"),
            "swap_dur": float(np.median(dur)) if dur else float("nan"),
            "collapsed": _rate(st, pairs, "collapsed", "both")}


def clip_row(name: str, clip: dict | None, st: dict) -> str:
    """One line of the per-clip table; clip None: the pooled row."""
    g = group_row(st, list(range(13)), list(PAIRS))
    drop = st["absent"] / st["span"] if st["span"] else float("nan")
    if clip:
        w, h = clip["frame_size"]
        head = (f"| {name} | {w}x{h} | {clip['frames']} ({int(clip['duplicate'].sum())}) | "
                f"{len(clip['present'])}/{clip['all_tracks']} | {_pct(st['height'], 50):.0f} "
                f"({_pct(st['height'], 50) * st['input_scale']:.0f}) | ")
    else:
        head = f"| **{name}** | | | | {_pct(st['height'], 50):.0f} | "
    return (head + f"{g['jit_med']:.4f} | {g['jit_p90']:.4f} | {g['sigma']:.4f} | "
            f"{g['outlier']:.4f} | {g['lt2']:.3f} | {g['lt3']:.3f} | {g['run3']:.1f} | "
            f"{g['transient']:.4f} | {g['transient_single']:.4f} | {g['full']:.4f} | "
            f"{st['flips']} | {g['collapsed']:.3f} | {drop:.4f} |")


CLIP_HEADER = ("| clip | frame px | frames (repeated) | main/all tracks | body height px (at model input) | "
               "jitter med | jitter p90 | sigma | >0.05 | score<0.2 | score<0.3 | run<0.3 | "
               "transient swap | transient one-side | step exchange | body flips | collapsed | frame drop |")


def group_table(st: dict, ref: dict) -> list[str]:
    """Per joint group, with the Penn Action annotations' jitter and collapse as reference."""
    lines = ["| group | jitter med | p90 | p99 | sigma | >0.05 | Penn: sigma | >0.05 | med if score<0.3 "
             "| score p10 | p25 | p50 | p90 | <0.2 | <0.3 | run<0.2 | run<0.3 | transient swap | "
             "transient one-side | step exchange | step one-side | frames to next exchange (med) | "
             "collapsed | Penn: collapsed |",
             "|---|" + "---|" * 23]
    for name, joints in GROUPS.items():
        pairs = [name] if name in PAIRS else []
        g, r = group_row(st, joints, pairs), group_row(ref, joints, pairs)
        lines.append(f"| {name} | {g['jit_med']:.4f} | {g['jit_p90']:.4f} | {g['jit_p99']:.3f} | "
                     f"{g['sigma']:.4f} | {g['outlier']:.4f} | {r['sigma']:.4f} | {r['outlier']:.4f} | "
                     f"{g['jit_low_med']:.4f} | "
                     f"{g['s10']:.2f} | {g['s25']:.2f} | {g['s50']:.2f} | {g['s90']:.2f} | "
                     f"{g['lt2']:.3f} | {g['lt3']:.3f} | {g['run2']:.1f} | {g['run3']:.1f} | "
                     f"{g['transient']:.4f} | {g['transient_single']:.4f} | {g['full']:.4f} | "
                     f"{g['single']:.4f} | {g['swap_dur']:.0f} | {g['collapsed']:.3f} | {r['collapsed']:.3f} |")
    return lines


def _draw(img: np.ndarray, kp: np.ndarray, sc: np.ndarray, label: str) -> None:
    """One penn13 pose on a BGR image: head green, left joints blue, right joints red; joints
    scored under 0.3 drawn small."""
    import cv2

    for a, b in get_layout("penn13").bones:
        cv2.line(img, tuple(map(int, kp[a])), tuple(map(int, kp[b])), (200, 200, 200), 1)
    for v, (x, y) in enumerate(kp):
        colour = (0, 255, 0) if v == 0 else (255, 80, 0) if v % 2 else (0, 0, 255)
        cv2.circle(img, (int(x), int(y)), 4 if sc[v] >= 0.3 else 2, colour, -1)
    cv2.putText(img, label, tuple(map(int, kp[0])), 0, 0.5, (0, 255, 255), 1)


def draw_overlays(path: Path, clip: dict, events: list[tuple[int, int, str]], out_dir: Path) -> None:
    """For each event (track row, frame, what), a PNG of frames t-1, t, t+1 side by side,
    cropped around that person and scaled to 360 px high."""
    import cv2

    need = {t + d for _, t, _ in events for d in (-1, 0, 1)}
    frames = {}
    with open_video(path) as video:
        for t, rgb in enumerate(video):
            if t in need:
                frames[t] = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for m, t, what in events:
        pr = clip["present"][m]
        pts = clip["kp"][m, [u for u in (t - 1, t, t + 1) if 0 <= u < len(pr) and pr[u]]].reshape(-1, 2)
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.25 * (hi - lo).max()
        x0, y0 = np.maximum(lo - pad, 0).astype(int)
        panels = []
        for u in (t - 1, t, t + 1):
            if u not in frames:
                continue
            img = frames[u].copy()
            if pr[u]:
                _draw(img, clip["kp"][m, u], clip["score"][m, u], str(u))
            crop = img[y0:int(hi[1] + pad), x0:int(hi[0] + pad)]
            panels.append(cv2.resize(crop, (max(1, int(crop.shape[1] * 360 / crop.shape[0])), 360)))
        strip = np.hstack(panels)
        cv2.putText(strip, f"{path.stem} t={t} {what}", (5, 15), 0, 0.5, (0, 255, 255), 1)
        cv2.imwrite(str(out_dir / f"{path.stem}_{t:04d}_{m}.png"), strip)


def penn_reference(step: int = 6) -> tuple[str, dict]:
    """The same statistics on human-annotated joints: every ``step``-th Penn Action file of the
    official train split, visible joints at score 1, invisible ones at 0. What the recogniser
    already sees in training; the estimator's noise is what comes on top of it."""
    from posrec.io.penn import read_penn_mat

    files = sorted((shared_data_dir() / "skeleton" / "penn_action" / "labels").glob("*.mat"))[::step]
    stats = []
    for f in files:
        anno, split = read_penn_mat(f, invisible_score=0.0)
        if split != "train":
            continue
        kp = anno["keypoint"].astype(np.float64)
        T = kp.shape[1]
        clip = {"kp": kp, "score": anno["keypoint_score"], "present": np.ones((1, T), bool),
                "duplicate": np.zeros(T, bool), "input_scale": 1.0}
        stats.append(measure(clip))
    return f"Penn Action annotations ({len(stats)} train clips)", merge(stats)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "videos")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--input-size", default="auto",
                    help="MultiPose input long side in px, or 'auto' (the estimator's default)")
    ap.add_argument("--estimator", default="multipose", choices=("multipose", "multipose-follow"),
                    help="multipose-follow: MultiPose finds people, Lightning follows each on a crop")
    ap.add_argument("--overlays", type=Path, default=None, help="write sanity-check PNGs here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    stats, rows = [], []
    for name in CLIPS:
        clip = estimate_clip(args.data / name, args.input_size, args.estimator)
        st = measure(clip)
        stats.append(st)
        rows.append(clip_row(name, clip, st))
        print(f"{name}: {clip['frames']} frames at {clip['fps']:.2f} fps, input {clip['long_side']} px, "
              f"{clip['seconds']:.1f} s, "
              f"{clip['all_tracks']} tracks, main ids {[int(i) for i in clip['track_ids']]}; exchanges "
              f"(track row, frame, pair, kind): {st['swap_frames'][:8]}", flush=True)
        if args.overlays:
            args.overlays.mkdir(parents=True, exist_ok=True)
            events = [(m, f, f"{n} {k}") for m, f, n, k in st["swap_frames"][:6]]
            for m in range(len(clip["present"])):  # and a few ordinary frames of each track
                seen = np.flatnonzero(clip["present"][m])
                events += [(m, int(f), "sample") for f in seen[[1, len(seen) // 2, -2]]]
            draw_overlays(args.data / name, clip, events, args.overlays)
    total = merge(stats)
    ref_name, ref = penn_reference()
    print("\n" + CLIP_HEADER)
    print("|---|" + "---|" * 17)
    print("\n".join(rows + [clip_row("all", None, total), clip_row(ref_name, None, ref)]))
    print("\nPer joint group, all clips pooled:\n")
    print("\n".join(group_table(total, ref)))
    print(f"\nframe drops: {total['absent']} of {total['span']} frames in track spans, "
          f"gap lengths {sorted(int(g) for g in total['gaps'])}")


if __name__ == "__main__":
    main()
