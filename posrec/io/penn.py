"""Penn Action: a directory of MATLAB ``.mat`` label files, one per clip (2D, human-annotated).

Each file holds ``action`` (class name), ``x``, ``y`` and ``visibility`` (T x 13, pixels and 0/1),
``dimensions`` (H, W, T), ``nframes`` and ``train`` (+1 official train, -1 official test).

Invisible joints: Penn Action annotators placed every joint, also the occluded ones (22% of all
joints are marked invisible, almost all with plausible coordinates). Throwing their positions away
loses a fifth of the data, while keeping them at full confidence hides the occlusion, so they keep
their coordinates with ``keypoint_score = invisible_score`` (0.5 by default; PYSKL's
``PreNormalize2D`` only blanks scores <= 0.01, so they survive its pipelines too). Visible joints
score 1.0. A joint at exactly (0, 0) was not annotated and scores 0. The mapping is lossless:
``visibility == (keypoint_score == 1)``.

Left and right: the files' joint order reads "left shoulder, right shoulder, ..." but their
labels are the mirror of the body's own sides, which every other layout here (COCO, JHMDB, NTU,
MoveNet's output) uses. Measured on the 2,326 files: in "front" views (people facing the camera)
the joint labelled left is on the image's left in 96 % of frames, where a facing person's own left
shoulder is on the image's right (JHMDB and MoveNet's tracks of facing people: image right); and
the faster wrist of a baseball pitch, a tennis serve or a bowl, the throwing hand (right for most
people), is the one labelled left in 64-70 % of clips. The reader swaps every left/right pair, so
Penn's penn13 joints mean what the names say: without it a model trained on Penn and JHMDB learns
two opposite conventions, and MoveNet tracks of Penn's actions look like mirror bodies to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posrec.errors import PosrecError

PENN_CLASSES = (
    "baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk", "golf_swing",
    "jump_rope", "jumping_jacks", "pullup", "pushup", "situp", "squat", "strum_guitar",
    "tennis_forehand", "tennis_serve",
)  # sorted by name: label = index here, stable whatever subset of files is read
PENN_FIELDS = ("action", "x", "y", "visibility", "dimensions", "train")
# file column of each penn13 joint: left/right swapped (module docstring), head unchanged
ANATOMICAL_ORDER = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11)


def _field(mat: dict, name: str, path: Path) -> np.ndarray:
    if name not in mat:
        raise PosrecError(f"{path}: Penn Action .mat file has no field '{name}'")
    return mat[name]


def read_penn_mat(path: str | Path, invisible_score: float = 0.5) -> tuple[dict, str]:
    """Read one Penn Action ``.mat`` file.

    Returns ``(annotation, split)``: the annotation dict (``keypoint`` float32 (1, T, 13, 2) in
    pixels, ``keypoint_score`` float32 (1, T, 13), ``img_shape`` (H, W), ``label`` the index of
    ``action`` in :data:`PENN_CLASSES`, ``layout`` ``"penn13"``, ``frame_dir`` the file stem) and
    the official split name, ``"train"`` or ``"test"``.
    """
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises ValueError/TypeError/OSError for broken files
        raise PosrecError(f"{path}: not a readable .mat file ({e})") from None
    action = str(np.ravel(_field(mat, "action", path))[0]).strip()
    if action not in PENN_CLASSES:
        raise PosrecError(f"{path}: unknown Penn Action class '{action}' in field 'action'")
    x = np.asarray(_field(mat, "x", path), np.float32)
    y = np.asarray(_field(mat, "y", path), np.float32)
    vis = np.asarray(_field(mat, "visibility", path))
    dims = np.ravel(_field(mat, "dimensions", path))
    train = int(np.ravel(_field(mat, "train", path))[0])
    if x.ndim != 2 or x.shape[1] != 13 or y.shape != x.shape or vis.shape != x.shape:
        raise PosrecError(f"{path}: fields 'x', 'y', 'visibility' must be T x 13, "
                          f"got {x.shape}, {y.shape}, {vis.shape}")
    if dims.size < 2:
        raise PosrecError(f"{path}: field 'dimensions' must hold (H, W, T), got {dims.tolist()}")
    order = list(ANATOMICAL_ORDER)
    x, y, vis = x[:, order], y[:, order], vis[:, order]
    kp = np.stack([x, y], axis=-1)[None]  # (1, T, 13, 2)
    score = np.where(vis > 0, 1.0, invisible_score).astype(np.float32)[None]
    score[(kp == 0).all(-1)] = 0.0  # never annotated
    h, w = int(dims[0]), int(dims[1])
    anno = dict(frame_dir=path.stem, label=PENN_CLASSES.index(action), img_shape=(h, w),
                original_shape=(h, w), total_frames=int(x.shape[0]), keypoint=kp,
                keypoint_score=score, layout="penn13")
    return anno, "train" if train == 1 else "test"


def read_penn(src: str | Path, invisible_score: float = 0.5) -> dict:
    """Read a Penn Action ``labels/`` directory (or one ``.mat`` file) into a dataset dict.

    Splits ``train`` / ``test`` are the official ones from each file's ``train`` field; classes are
    the 15 names sorted alphabetically. Takes about a second for the 2,326 files.
    """
    src = Path(src)
    files = sorted(src.glob("*.mat")) if src.is_dir() else [src]
    if not files:
        raise PosrecError(f"{src}: no Penn Action .mat files found")
    annos, split = [], {"train": [], "test": []}
    for f in files:
        anno, part = read_penn_mat(f, invisible_score)
        annos.append(anno)
        split[part].append(anno["frame_dir"])
    return {"split": split, "annotations": annos, "classes": list(PENN_CLASSES)}
