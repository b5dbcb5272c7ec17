"""NTU RGB+D (60 and 120) raw Kinect v2 ``.skeleton`` text files.

Documented format (one number or a space-separated row per line)::

    frame count
    per frame:  body count
        per body:   10 body-info values: bodyID clippedEdges handLeftConfidence handLeftState
                    handRightConfidence handRightState isRestricted leanX leanY trackingState
                    joint count (25)
                    per joint: 12 values: x y z depthX depthY colorX colorY
                               orientationW orientationX orientationY orientationZ trackingState

x, y, z are camera space in metres, colorX/colorY pixels in the 1920 x 1080 colour frame, a
joint's trackingState 2 = tracked, 1 = inferred, 0 = not tracked. File names are
``SsssCcccPpppRrrrAaaa`` (setup, camera, performer, replication, action 1-based).

Selecting the (at most two) actors follows the PYSKL/2s-AGCN preprocessing: rank the tracked
bodies by motion, drop short (<= 11 frames) and implausibly wide (spread) bodies, and pack bodies
that do not overlap in time into the same person slot.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from posrec.errors import PosrecError

# Cross-subject training performers (NTU-60 uses those <= 40; the list is the NTU-120 one).
NTU_TRAIN_SUBJECTS = frozenset((
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
    52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95,
    97, 98, 100, 103))
NTU_TRAIN_CAMERAS = frozenset((2, 3))  # NTU-60 cross-view
NTU_CLASSES = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw",
    "sitting down", "standing up (from sitting position)", "clapping", "reading", "writing",
    "tear up paper", "wear jacket", "take off jacket", "wear a shoe", "take off a shoe",
    "wear on glasses", "take off glasses", "put on a hat/cap", "take off a hat/cap", "cheer up",
    "hand waving", "kicking something", "reach into pocket", "hopping (one foot jumping)",
    "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie",
    "check time (from watch)", "rub two hands together", "nod head/bow", "shake head",
    "wipe face", "salute", "put the palms together", "cross hands in front (say stop)",
    "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm",
    "punching/slapping other person", "kicking other person", "pushing other person",
    "pat on back of other person", "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball",
    "tennis bat swing", "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up",
    "thumb down", "make ok sign", "make victory sign", "staple book", "counting money",
    "cutting nails", "cutting paper (using scissors)", "snapping fingers", "open bottle",
    "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag",
    "take off bag", "put something into a bag", "take something out of a bag", "open a box",
    "move heavy objects", "shake fist", "throw up cap/hat", "hands up (both hands)",
    "cross arms", "arm circles", "arm swings", "running on the spot", "butt kicks (kick backward)",
    "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person", "follow other person",
    "whisper in other person's ear", "exchange things with other person",
    "support somebody with hand", "finger-guessing game (playing rock-paper-scissors)",
)
NTU_COLOR_SHAPE = (1080, 1920)  # (h, w) of the Kinect v2 colour frame
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_MIN_LEN = 11  # bodies tracked for this few frames are noise (PYSKL's length_threshold)


def parse_ntu_name(name: str) -> dict[str, int]:
    """``"S001C002P003R002A013"`` -> ``{"setup": 1, "camera": 2, "subject": 3, "replication": 2,
    "action": 13}`` (action 1-based, as in the name)."""
    m = _NAME.search(name)
    if m is None:
        raise PosrecError(f"'{name}' is not an NTU RGB+D name of the form SsssCcccPpppRrrrAaaa")
    return dict(zip(("setup", "camera", "subject", "replication", "action"), map(int, m.groups())))


def parse_skeleton_file(path: str | Path) -> dict[str, dict]:
    """Parse one ``.skeleton`` file into ``{bodyID: {"frames": (t,) int, "joints": (t, 25, 12)}}``.

    Frame indices count only frames with at least one body (empty frames are dropped, as PYSKL
    does); the 12 values per joint are in file order (see the module docstring).
    """
    path = Path(path)
    lines = path.read_text().split("\n")
    i = 0
    try:
        n_frames, i, f = int(lines[0]), 1, 0
        acc: dict[str, tuple[list, list]] = {}
        for _ in range(n_frames):
            n_bodies = int(lines[i]); i += 1
            for _ in range(n_bodies):
                body_id = lines[i].split()[0]
                n_joints = int(lines[i + 1]); i += 2
                joints = np.array(" ".join(lines[i:i + n_joints]).split(), np.float32)
                joints = joints.reshape(n_joints, 12)
                i += n_joints
                if n_joints != 25:
                    raise ValueError(f"{n_joints} joints, expected 25")
                frames, kps = acc.setdefault(body_id, ([], []))
                frames.append(f); kps.append(joints)
            f += n_bodies > 0
    except (ValueError, IndexError) as e:
        raise PosrecError(f"{path}: malformed .skeleton file near line {i + 1} ({e})") from None
    return {b: {"frames": np.array(fr), "joints": np.stack(kp)} for b, (fr, kp) in acc.items()}


def _motion(xyz: np.ndarray) -> float:
    return float(np.var(xyz.reshape(-1, 3), axis=0).sum())


def select_bodies(bodies: dict[str, dict], max_person: int = 2) -> np.ndarray:
    """Choose and pack the actors: ``(M, T, 25, 12)`` with M <= max_person, zeros where absent.

    Bodies are ranked by motion (variance of their x, y, z); with several, short ones and ones
    wider than tall in most frames (Kinect ghosts on furniture) are dropped first. Each kept body
    goes to the first person slot it does not overlap in time, so one actor tracked under two IDs
    stays one person. Leading and trailing frames where nobody is present are trimmed.
    """
    items = sorted(bodies.values(), key=lambda b: -_motion(b["joints"][..., :3]))
    if len(items) > 1:
        items = [b for b in items if len(b["frames"]) > _MIN_LEN] or items[:1]
    if len(items) > 1:
        kept = []
        for b in items:
            xyz = b["joints"][..., :3]
            spread = np.ptp(xyz[..., 0], axis=1) <= 0.8 * np.ptp(xyz[..., 1], axis=1)
            if spread.all():
                kept.append((_motion(xyz), b))
            elif 1 - spread.mean() < 0.69754:  # mostly plausible: judge motion on those frames
                kept.append((min(_motion(xyz), _motion(xyz[spread])), b))
        items = [b for _, b in sorted(kept, key=lambda kb: -kb[0])] or items[:1]
    n_frames = max(int(b["frames"].max()) for b in items) + 1
    out = np.zeros((max_person, n_frames, 25, 12), np.float32)
    spans: list[tuple[int, int] | None] = [None] * max_person
    for b in items:
        s, e = int(b["frames"].min()), int(b["frames"].max()) + 1
        for m, span in enumerate(spans):
            if span is None or max(span[0], s) >= min(span[1], e):
                out[m, b["frames"]] = b["joints"]
                spans[m] = (s, e) if span is None else (min(s, span[0]), max(e, span[1]))
                break
    out = out[[m for m, span in enumerate(spans) if span is not None]]
    present = np.abs(out[..., :3]).sum(axis=(0, 2, 3)) > 1e-3
    first, last = np.flatnonzero(present)[[0, -1]]
    out = out[:, first:last + 1]
    if len(out) > 1 and not out[0, 0].any() and out[1, 0].any():
        out = out[::-1].copy()  # person 0 is the one present in the first frame
    return out


def read_ntu_skeleton(path: str | Path, mode: str = "3d", max_person: int = 2) -> dict | None:
    """One ``.skeleton`` file -> annotation dict, or None when it holds no body at all.

    ``mode="3d"``: ``keypoint`` float32 (M, T, 25, 3), camera space in metres, no score.
    ``mode="2d"``: ``keypoint`` (M, T, 25, 2) colour-frame pixels, ``img_shape`` (1080, 1920),
    ``keypoint_score`` (M, T, 25) from the joint trackingState (tracked 1.0, inferred 0.5,
    not tracked or absent 0). ``label`` is the action number - 1, ``layout`` ``"ntu25"``.
    """
    if mode not in ("3d", "2d"):
        raise PosrecError(f"NTU mode must be '3d' or '2d', not '{mode}'")
    path = Path(path)
    meta = parse_ntu_name(path.stem)
    bodies = parse_skeleton_file(path)
    if not bodies:
        return None
    j = select_bodies(bodies, max_person)
    anno = dict(frame_dir=path.stem.split(".")[0], label=meta["action"] - 1,
                total_frames=int(j.shape[1]), layout="ntu25")
    if mode == "3d":
        anno["keypoint"] = np.ascontiguousarray(j[..., :3])
    else:
        present = np.abs(j[..., :3]).sum(-1) > 0
        anno.update(img_shape=NTU_COLOR_SHAPE, original_shape=NTU_COLOR_SHAPE,
                    keypoint=np.ascontiguousarray(j[..., 5:7]),
                    keypoint_score=(np.clip(j[..., 11], 0, 2) / 2 * present).astype(np.float32))
    return anno


def ntu_splits(names: list[str], version: int) -> dict[str, list[str]]:
    """The standard benchmarks: NTU-60 ``xsub_*`` and ``xview_*`` (cameras 2, 3 train), NTU-120
    ``xsub_*`` and ``xset_*`` (even setup ids train); ``*_train`` / ``*_val`` as in PYSKL."""
    meta = {n: parse_ntu_name(n) for n in names}
    sub = {n: meta[n]["subject"] in NTU_TRAIN_SUBJECTS for n in names}
    other = ({n: meta[n]["camera"] in NTU_TRAIN_CAMERAS for n in names} if version == 60 else
             {n: meta[n]["setup"] % 2 == 0 for n in names})
    key = "xview" if version == 60 else "xset"
    return {"xsub_train": [n for n in names if sub[n]], "xsub_val": [n for n in names if not sub[n]],
            f"{key}_train": [n for n in names if other[n]],
            f"{key}_val": [n for n in names if not other[n]]}


def read_ntu(src: str | Path, mode: str = "3d", version: int | None = None,
             max_person: int = 2) -> dict:
    """Read a directory of NTU ``.skeleton`` files (or one file) into a dataset dict.

    ``version`` 60 keeps actions 1-60 with the X-Sub/X-View splits, 120 keeps all with the
    X-Sub/X-Set splits; None picks 120 when any action > 60 is present. Files without any body
    (NTU lists ~300 such "missing skeletons") are skipped; their names go to ``"skipped"``.
    """
    src = Path(src)
    files = sorted(src.glob("*.skeleton")) if src.is_dir() else [src]
    if not files:
        raise PosrecError(f"{src}: no NTU .skeleton files found")
    actions = [parse_ntu_name(f.stem)["action"] for f in files]
    if version is None:
        version = 120 if max(actions) > 60 else 60
    if version not in (60, 120):
        raise PosrecError(f"NTU version must be 60 or 120, not {version}")
    annos, skipped = [], []
    for f, a in zip(files, actions):
        if a > version:
            continue
        anno = read_ntu_skeleton(f, mode, max_person)
        if anno is None:
            skipped.append(f.stem)
        else:
            annos.append(anno)
    names = [a["frame_dir"] for a in annos]
    return {"split": ntu_splits(names, version), "annotations": annos,
            "classes": list(NTU_CLASSES[:version]), "skipped": skipped}
