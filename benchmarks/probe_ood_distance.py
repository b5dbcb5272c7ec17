"""Would a feature-space distance catch the windows the shipped model labels with confidence but
cannot know (NTU hugging -> jump_rope)? A probe, not a feature: its answer (RESULTS.md,
"An out-of-distribution score for 'no action'") was no.

    python benchmarks/probe_ood_distance.py runs/datasets/actions_jhmdb1.pkl \
        ntu_A055_hugging.avi sports2d_demo.mp4 clean_and_jerk.mp4 tai_chi.mp4 basketball_two_people.mp4

The shipped model's pooled features (the input of its last linear layer) of every training
window under the measured estimator noise (5 windows a clip) give class means and one shared
covariance (Ledoit-Wolf); a window's score is its smallest squared Mahalanobis distance to a class
mean. Validation windows (the same noise) give the distance's percentiles; each shared clip is
labelled with the default settings and each track's windows are compared with them.
"""
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from ship_action_model import MEASURED_NOISE  # noqa: E402

import posrec.label as L  # noqa: E402
from posrec.action_model import load_action_model  # noqa: E402
from posrec.data.dataset import SkeletonDataset  # noqa: E402
from posrec.data.pipeline import build_transform  # noqa: E402
from posrec.io.pickle import load_dataset  # noqa: E402
from posrec.paths import shared_data_dir  # noqa: E402


from sklearn.covariance import LedoitWolf  # noqa: E402


def pooled_features(net, x: torch.Tensor) -> np.ndarray:
    """(N, M, T, V, C) windows -> (N, D) inputs of the network's last linear layer."""
    got = []
    hook = net.fc.register_forward_hook(lambda m, i, o: got.append(i[0].detach().numpy()))
    with torch.no_grad():
        net(x)
    hook.remove()
    return got[0]


def split_features(am, data: dict, split: str, clips: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Features (N * clips, D) of a split's windows under the measured noise, and their labels."""
    np.random.seed(0)
    ds = SkeletonDataset(data, split, build_transform(am.spec, False, clips, MEASURED_NOISE, noisy=True))
    feats, labels = [], []
    for i in range(0, len(ds), 64):
        items = [ds[j] for j in range(i, min(i + 64, len(ds)))]
        feats.append(pooled_features(am.net, torch.stack([x for x, _ in items]).flatten(0, 1)))
        labels += [y for _, y in items for _ in range(clips)]
    return np.concatenate(feats), np.asarray(labels)


def distance_fn(feats: np.ndarray, labels: np.ndarray, k: int):
    """Smallest squared Mahalanobis distance to the k class means (shared covariance)."""
    mu = np.stack([feats[labels == c].mean(0) for c in range(k)])
    prec = LedoitWolf().fit(feats - mu[labels]).precision_

    def dist(f: np.ndarray) -> np.ndarray:
        d = f[:, None, :] - mu[None]
        return np.einsum("nkd,de,nke->nk", d, prec, d).min(1)
    return dist


def clip_windows(am, clip: str) -> tuple[list[int], torch.Tensor]:
    """Track ids and model inputs of every window `posrec label` classifies on a shared clip."""
    captured = []
    run = L._Classifier.run

    def capture(self):
        captured.extend((p[0], p[3]) for p in self.pending)
        return run(self)
    L._Classifier.run = capture
    try:
        L.label_video(shared_data_dir() / "videos" / clip, model=am, write_video=False, progress=False,
                      out_dir=Path("/tmp/posrec_ood") / clip)
    finally:
        L._Classifier.run = run
    return [c[0] for c in captured], torch.cat([c[1] for c in captured])


def main() -> None:
    am = load_action_model("posrec-actions-27", backend="torch")
    data = load_dataset(sys.argv[1])
    dist = distance_fn(*split_features(am, data, "train"), len(am.class_names))
    d_val = dist(split_features(am, data, "val")[0])
    p50, p95, p99 = np.percentile(d_val, [50, 95, 99])
    print(f"validation windows: {len(d_val)}, distance median {p50:.0f}, 95th {p95:.0f}, 99th {p99:.0f}")
    print(f"{'clip':28} {'track':>5} {'windows':>7} {'median':>6} {'> 95th':>6} {'> 99th':>6}  top labels")
    for clip in sys.argv[2:]:
        tids, x = clip_windows(am, clip)
        d = dist(pooled_features(am.net, x))
        top = am.probabilities(x).argmax(1)
        for tid in sorted(set(tids)):
            m = np.asarray(tids) == tid
            names = Counter(am.class_names[k] for k in top[m]).most_common(3)
            print(f"{clip:28} {tid:5d} {m.sum():7d} {np.median(d[m]):6.0f} {np.mean(d[m] > p95):6.2f} "
                  f"{np.mean(d[m] > p99):6.2f}  {names}")


if __name__ == "__main__":
    main()
