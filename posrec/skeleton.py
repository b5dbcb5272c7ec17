"""Skeleton layouts: joint names and order, bones, centre joint, left/right pairs, graph adjacency,
and joint maps between layouts.

Joint indices are 0-based positions in the V axis of a keypoint array (M, T, V, C).

A layout's ``bones`` are (child, parent) pairs that point toward the centre joint; they are the
edges of the graph the GCN models convolve over. ``bone_pairs`` are the (joint, parent) pairs of
the bone stream, ``bone[..., v, :] = x[..., v, :] - x[..., parent, :]``, one per joint (the root
pairs with itself, so its bone is zero). For ``coco17``, ``ntu25`` and ``openpose18`` they are
PYSKL's ``JointToBone`` pairs, so that bone-stream checkpoints from PYSKL's model zoo see the
input they were trained on (they differ from the graph edges in a few places, e.g. PYSKL's coco
bone stream hangs the hips on the nose); for the other layouts they follow the graph edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from posrec.errors import PosrecError

Pair = tuple[int, int]


@dataclass(frozen=True)
class Layout:
    """A skeleton layout.

    Attributes:
        name: the layout's name (``coco17``, ...).
        joints: joint names in array order; V = len(joints).
        bones: (child, parent) graph edges, each pointing one step toward ``center``.
        center: index of the centre joint (the root of ``bones``).
        left_right: (left, right) joint pairs that swap under a horizontal flip.
        spine: optional (lower, upper) joint pair along the spine, used by 3D normalisation
            (the vector lower -> upper is rotated onto the z axis).
        bone_pairs: (joint, parent) for the bone stream, one per joint in joint order; derived
            from ``bones`` (root paired with itself) when not given.
    """

    name: str
    joints: tuple[str, ...]
    bones: tuple[Pair, ...]
    center: int
    left_right: tuple[Pair, ...]
    spine: Pair | None = None
    bone_pairs: tuple[Pair, ...] = field(default=())

    def __post_init__(self) -> None:
        v = len(self.joints)
        if not self.bone_pairs:
            parent = dict(self.bones)
            object.__setattr__(self, "bone_pairs", tuple((j, parent.get(j, j)) for j in range(v)))
        object.__setattr__(self, "bone_pairs", tuple(sorted(self.bone_pairs)))
        assert sorted(j for j, _ in self.bone_pairs) == list(range(v)), self.name
        assert all(0 <= i < v and 0 <= j < v for i, j in self.bones + self.left_right), self.name

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Position of the joint called ``joint``; PosrecError if the layout has none."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise PosrecError(f"layout {self.name} has no joint {joint!r}") from None

    @property
    def flip_index(self) -> np.ndarray:
        """int64 (V,) permutation that swaps left and right joints: ``x_flipped = x[..., idx, :]``."""
        idx = np.arange(self.num_joints)
        for a, b in self.left_right:
            idx[a], idx[b] = b, a
        return idx

    @property
    def parents(self) -> np.ndarray:
        """int64 (V,) bone-stream parent of each joint: ``bone = x - x[..., parents, :]``."""
        out = np.arange(self.num_joints)
        for j, p in self.bone_pairs:
            out[j] = p
        return out

    def hop_distance(self) -> np.ndarray:
        """float64 (V, V) number of bones on the shortest path between two joints (inf if none)."""
        v = self.num_joints
        d = np.full((v, v), np.inf)
        np.fill_diagonal(d, 0)
        nbrs: list[list[int]] = [[] for _ in range(v)]
        for i, j in self.bones:
            nbrs[i].append(j)
            nbrs[j].append(i)
        for s in range(v):  # breadth-first search from every joint
            frontier, hop = [s], 0
            while frontier:
                hop += 1
                nxt = [n for u in frontier for n in nbrs[u] if d[s, n] == np.inf]
                for n in nxt:
                    d[s, n] = hop
                frontier = list(dict.fromkeys(nxt))
        return d

    def adjacency(self, mode: str = "spatial") -> np.ndarray:
        """Spatial-partition adjacency, float32 (3, V, V), indexed ``A[k, src, dst]``.

        A graph convolution computes ``out[..., w] = sum_k sum_v x_k[..., v] * A[k, v, w]``;
        every column of a non-empty subset sums to 1 (mean over the neighbours in that subset).

        ``mode="spatial"`` (PYSKL ``Graph(mode='spatial')``, used by ST-GCN++ and CTR-GCN):
        subsets [self, inward, outward]: identity; ``A[1, parent, child] = 1`` for every bone
        ``(child, parent)`` and ``A[2, child, parent] = 1``, each column-normalised.

        ``mode="stgcn_spatial"`` (the original ST-GCN partition, PYSKL's ST-GCN configs): the
        neighbourhood A + I is column-normalised once and split into [root, centripetal side,
        centrifugal side]: ``A[0]`` its diagonal, ``A[1, v, w]`` the entries for neighbours v
        no closer to the centre than w, ``A[2, v, w]`` those for neighbours v closer than w.
        As in ST-GCN and PYSKL (hop distances computed up to max_hop = 1), every joint two or
        more bones from the centre counts as infinitely far, so between two such joints the
        neighbour always falls in ``A[1]``; the numbers equal PYSKL's.
        """
        v = self.num_joints
        if mode == "spatial":
            a = np.zeros((3, v, v))
            a[0] = np.eye(v)
            for child, parent in self.bones:
                a[1, parent, child] = 1
                a[2, child, parent] = 1
            for k in (1, 2):
                col = a[k].sum(0)
                a[k] = a[k] / np.where(col > 0, col, 1)
            return a.astype(np.float32)
        if mode == "stgcn_spatial":
            hop = self.hop_distance()
            nbhd = (hop <= 1).astype(np.float64)
            nbhd = nbhd / nbhd.sum(0)  # every joint is its own neighbour: no zero columns
            dc = np.where(hop[:, self.center] <= 1, hop[:, self.center], np.inf)
            a = np.zeros((3, v, v))
            a[0] = np.diag(np.diag(nbhd))
            adjacent = hop == 1
            further = dc[:, None] >= dc[None, :]  # [v, w]: v no closer to the centre than w
            a[1] = np.where(adjacent & further, nbhd, 0)
            a[2] = np.where(adjacent & ~further, nbhd, 0)
            return a.astype(np.float32)
        raise PosrecError(f"unknown adjacency mode {mode!r} (use 'spatial' or 'stgcn_spatial')")


def _sym(names: Sequence[str]) -> tuple[Pair, ...]:
    """Left/right pairs found by the ``left_``/``right_`` prefixes of the joint names."""
    return tuple(
        (i, names.index("right_" + n[5:])) for i, n in enumerate(names) if n.startswith("left_")
    )


_COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_PENN13 = (
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_NTU25 = (
    "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
    "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip",
    "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle",
    "right_foot", "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip",
    "right_thumb",
)
_NWUCLA20 = (  # Kinect v1 joint order
    "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow",
    "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee",
    "right_ankle", "right_foot",
)
_OPENPOSE18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)

LAYOUTS: dict[str, Layout] = {
    "coco17": Layout(
        "coco17", _COCO17,
        bones=((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5),
               (10, 8), (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
        center=0, left_right=_sym(_COCO17),
        bone_pairs=((0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6),
                    (9, 7), (10, 8), (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)),
    ),
    "penn13": Layout(
        "penn13", _PENN13,
        bones=((1, 0), (2, 0), (3, 1), (4, 2), (5, 3), (6, 4), (7, 1), (8, 2), (9, 7),
               (10, 8), (11, 9), (12, 10)),
        center=0, left_right=_sym(_PENN13),
    ),
    "ntu25": Layout(
        "ntu25", _NTU25,
        bones=((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20),
               (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0),
               (17, 16), (18, 17), (19, 18), (21, 7), (22, 7), (23, 11), (24, 11)),
        center=20, left_right=_sym(_NTU25), spine=(0, 1),
        bone_pairs=((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20),
                    (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0),
                    (17, 16), (18, 17), (19, 18), (21, 22), (20, 20), (22, 7), (23, 24),
                    (24, 11)),
    ),
    "nwucla20": Layout(  # the graph of CTR-GCN's graph/ucla.py
        "nwucla20", _NWUCLA20,
        bones=((0, 1), (1, 2), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8),
               (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16),
               (18, 17), (19, 18)),
        center=2, left_right=_sym(_NWUCLA20), spine=(0, 1),
    ),
    "openpose18": Layout(
        "openpose18", _OPENPOSE18,
        bones=((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5),
               (8, 2), (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
        center=1, left_right=_sym(_OPENPOSE18),
        bone_pairs=((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2),
                    (9, 8), (10, 9), (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14),
                    (17, 15)),
    ),
}


def get_layout(name: str | Layout) -> Layout:
    """The layout called ``name`` (a Layout is returned as is); PosrecError for unknown names."""
    if isinstance(name, Layout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise PosrecError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None


# Joint maps: for every joint of dst, the src joint it is, or a tuple of src joints it is the
# score-weighted mean of.
_LIMBS12 = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
            "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
            "right_ankle")


def _by_name(src: tuple[str, ...], dst: tuple[str, ...], rename: dict[str, str] | None = None):
    rename = rename or {}
    return tuple(src.index(rename.get(n, n)) for n in dst)


_MAPS: dict[tuple[str, str], tuple[int | tuple[int, ...], ...]] = {
    ("coco17", "penn13"): ((0, 1, 2, 3, 4),) + _by_name(_COCO17, _LIMBS12),
    ("ntu25", "penn13"): _by_name(_NTU25, _PENN13),
    ("nwucla20", "penn13"): _by_name(_NWUCLA20, _PENN13),
    ("openpose18", "coco17"): _by_name(_OPENPOSE18, _COCO17),
    ("ntu25", "nwucla20"): _by_name(_NTU25, _NWUCLA20, {
        "hip_center": "spine_base", "spine": "spine_mid", "shoulder_center": "spine_shoulder"}),
}


def _route(src: str, dst: str) -> list[str]:
    """Shortest chain of joint maps from src to dst (breadth-first), [] if there is none."""
    paths = {src: [src]}
    frontier = [src]
    while frontier and dst not in paths:
        nxt = []
        for a in frontier:
            for (s, d) in _MAPS:
                if s == a and d not in paths:
                    paths[d] = paths[a] + [d]
                    nxt.append(d)
        frontier = nxt
    return paths.get(dst, [])


def can_convert(src: str, dst: str) -> bool:
    """Whether :func:`convert_layout` maps ``src`` joints into ``dst``."""
    return src == dst or bool(_route(src, dst))


def convert_layout(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray | None,
    src: str,
    dst: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map keypoints from layout ``src`` to layout ``dst`` where the joints correspond.

    Args:
        keypoint: (..., V_src, C) coordinates, e.g. (M, T, V, C).
        keypoint_score: (..., V_src) confidences, or None (3D data).
        src, dst: layout names; supported: coco17 -> penn13, ntu25 -> penn13, nwucla20 -> penn13,
            openpose18 -> coco17, ntu25 -> nwucla20 and chains of these (openpose18 -> penn13).

    Returns:
        (keypoint (..., V_dst, C), keypoint_score (..., V_dst) or None), same dtypes. A joint of
        dst made of several src joints (penn13's head from coco17's five face points) is their
        mean weighted by score over the points with score > 0 (plain mean without scores), with
        the highest of their scores; when none of them has a score > 0 it is their plain mean
        with score 0.
    """
    get_layout(src), get_layout(dst)
    keypoint = np.asarray(keypoint)
    if keypoint_score is not None:
        keypoint_score = np.asarray(keypoint_score)
    v_src = LAYOUTS[src].num_joints
    if keypoint.ndim < 2 or keypoint.shape[-2] != v_src:
        raise PosrecError(f"keypoint shape {keypoint.shape} does not have {v_src} {src} joints")
    if keypoint_score is not None and keypoint_score.shape != keypoint.shape[:-1]:
        raise PosrecError(f"keypoint_score shape {keypoint_score.shape} does not match "
                          f"keypoint shape {keypoint.shape}")
    if src == dst:
        return keypoint, keypoint_score
    route = _route(src, dst)
    if not route:
        known = ", ".join(f"{s} -> {d}" for s, d in _MAPS)
        raise PosrecError(f"no joint map from {src} to {dst}; known maps: {known}")
    for a, b in zip(route[:-1], route[1:]):
        keypoint, keypoint_score = _apply_map(keypoint, keypoint_score, _MAPS[a, b])
    return keypoint, keypoint_score


def _apply_map(kp, score, mapping):
    out_kp, out_sc = [], []
    for m in mapping:
        if isinstance(m, int):
            out_kp.append(kp[..., m, :])
            if score is not None:
                out_sc.append(score[..., m])
            continue
        pts = kp[..., list(m), :]  # (..., G, C)
        if score is None:
            out_kp.append(pts.mean(-2))
            continue
        s = score[..., list(m)]
        w = np.clip(s, 0, None).astype(np.float64)
        tot = w.sum(-1, keepdims=True)
        weighted = (pts * w[..., None]).sum(-2) / np.where(tot > 0, tot, 1)
        out_kp.append(np.where(tot > 0, weighted, pts.mean(-2)).astype(kp.dtype))
        out_sc.append(np.where(tot[..., 0] > 0, s.max(-1), 0).astype(score.dtype))
    kp_new = np.stack(out_kp, -2)
    return kp_new, (np.stack(out_sc, -1) if score is not None else None)
