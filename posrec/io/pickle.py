"""PYSKL/MMAction2 dataset pickles, read safely and written so that their tools can read them.

A pickle can run any code when loaded, so :func:`load_pickle` uses an unpickler that resolves
only the globals numpy arrays and plain Python containers need and refuses everything else
(DESIGN.md). A dataset file is ``{"split": {name: [frame_dir, ...]}, "annotations": [dict, ...]}``
with annotations as in DESIGN.md; :func:`load_dataset` / :func:`save_dataset` check that schema.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import collections
import importlib
import os
import pickle
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write, check_not_input

# Readable by Python >= 3.4 (PYSKL and MMAction2 run on 3.7+); protocol 5 would add nothing for
# in-band data and is unreadable before 3.8.
PROTOCOL = 4


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (mmcv writes protocol 2);
    limited to latin-1 because a codec name is the only other thing a file could choose."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise _Refused(f"refusing to decode text with the codec {encoding!r}: only latin-1 is allowed")
    return codecs.encode(text, "latin1")


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    for mod in modules:  # numpy 2 moved numpy.core to numpy._core; 1.x has only numpy.core
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {name}")


_NP_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NP_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")
# (module, name) -> how to get the object. Everything here only builds arrays, dtypes, scalars
# or containers from data; nothing calls back into arbitrary code.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    **{(m, "_reconstruct"): (lambda: _numpy_attr(_NP_MULTIARRAY, "_reconstruct"))
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): (lambda: _numpy_attr(_NP_MULTIARRAY, "scalar"))
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): (lambda: _numpy_attr(_NP_NUMERIC, "_frombuffer"))
       for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("collections", "defaultdict"): lambda: collections.defaultdict,
    **{("builtins", n): (lambda n=n: getattr(builtins, n))
       for n in ("bool", "int", "float", "complex", "str", "bytes", "bytearray", "tuple", "list",
                 "dict", "set", "frozenset", "slice", "range")},
}
# numpy scalar types, e.g. numpy.float32(1.5) as save_pickle writes them.
_NP_SCALAR_TYPES = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float16", "float32", "float64", "complex64", "complex128",
                    "byte", "ubyte", "short", "ushort", "intc", "uintc", "int_", "uint",
                    "longlong", "ulonglong", "half", "single", "double", "longdouble",
                    "csingle", "cdouble", "clongdouble", "intp", "uintp", "bool")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str) -> None:
        # latin1: how numpy arrays pickled under Python 2 must be read (numpy.load does the same).
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__, copy_reg, ...) as pickle itself maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        getter = _ALLOWED.get((module, name))
        if getter is not None:
            return getter()
        if module == "numpy" and name in _NP_SCALAR_TYPES:
            obj = getattr(np, name, None)
            if isinstance(obj, type) and issubclass(obj, np.generic):
                return obj
        raise _Refused(f"refusing to load {module}.{name} from {self.source}: pickles can run code; "
                       "only numpy arrays and Python containers are allowed")


class _Refused(pickle.UnpicklingError):
    pass


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle that may contain only numpy arrays/dtypes/scalars and Python containers.

    Reads pickles written by numpy 1.x and 2.x, by Python 2 (numpy data as latin-1) and by
    mmcv/mmengine (protocol 2). PosrecError naming the refused global for anything else, and a
    one-line PosrecError for a missing, truncated or corrupt file. Nothing in the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise PosrecError(f"{path} is a directory, not a pickle" if path.is_dir() else f"file not found: {path}")
    if path.stat().st_size == 0:
        raise PosrecError(f"{path} is empty (0 bytes)")
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            return _RestrictedUnpickler(f, path.name).load()
    except _Refused as e:
        msg = str(e) if path.name in str(e) else f"{e} (in {path})"
        raise PosrecError(msg) from None
    except OSError as e:
        raise PosrecError(f"cannot read {path}: {e.strerror or e}") from None
    except MemoryError:
        raise PosrecError(f"{path}: not enough memory to load it (or a corrupt length field)") from None
    except Exception as e:  # corrupt data surfaces as any of EOFError, UnpicklingError, ValueError, ...
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise PosrecError(f"{path} is not a readable pickle (truncated or corrupt): {detail}") from None


class _PortablePickler(pickle.Pickler):
    """Writes numpy arrays and scalars with names every numpy version has.

    numpy 2 pickles arrays through ``numpy._core.multiarray._reconstruct``, which numpy < 1.26
    (the PYSKL/MMAction2 environments) cannot import. ``numpy.ndarray((0,), "b")`` followed by
    numpy's own ``__setstate__`` builds the same array with a name that exists in every version.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:
            _, _, state = obj.__reduce__()
            return np.ndarray, ((0,), "b"), state
        if isinstance(obj, np.generic) and obj.dtype.kind in "iufc" and obj.dtype.itemsize <= 16 \
                and type(obj).__module__ == "numpy" and obj.dtype.type is not np.longdouble \
                and obj.dtype.type is not np.clongdouble:
            return type(obj), (obj.item(),)  # e.g. numpy.float32(1.5): exact for these kinds
        if isinstance(obj, np.bool_):
            return bool, (bool(obj),)  # "numpy.bool" is missing in numpy 1.24-1.26: a plain bool
        return NotImplemented


def save_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Pickle ``obj`` to ``path`` atomically, readable by PYSKL/MMAction2 (protocol 4, numpy
    names that numpy 1.x and 2.x both resolve) and by :func:`load_pickle`."""
    with atomic_write(path, "wb") as f:
        _PortablePickler(f, protocol=PROTOCOL).dump(obj)


# --- dataset files -----------------------------------------------------------------------------


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(map(str, a.shape)) + ")"


def _check_annotation(ann: Any, where: str) -> None:
    """Validate one annotation in place; float arrays are converted to float32."""
    if not isinstance(ann, dict):
        raise PosrecError(f"{where}: expected a dict, got {type(ann).__name__}")
    fd = ann.get("frame_dir")
    if not isinstance(fd, str) or not fd:
        raise PosrecError(f"{where}: missing 'frame_dir' (the clip id string)")
    where = f"{where} ({fd!r})"
    for key in ("total_frames", "keypoint"):
        if key not in ann:
            raise PosrecError(f"{where}: missing '{key}'")
    t = ann["total_frames"]
    if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 0:
        raise PosrecError(f"{where}: 'total_frames' must be a non-negative int, got {t!r}")
    ann["total_frames"] = t = int(t)
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.shape[3] not in (2, 3) \
            or kp.dtype.kind not in "fiu":
        got = f"{kp.dtype} {_shape(kp)}" if isinstance(kp, np.ndarray) else type(kp).__name__
        raise PosrecError(f"{where}: 'keypoint' must be a float array (M, T, V, 2 or 3), got {got}")
    if kp.shape[1] != t:
        raise PosrecError(f"{where}: 'keypoint' has {kp.shape[1]} frames but total_frames is {t}")
    ann["keypoint"] = kp.astype(np.float32, copy=False)  # PYSKL's hrnet files hold float16
    if kp.shape[3] == 2 or "keypoint_score" in ann:
        score = ann.get("keypoint_score")
        if score is None:
            raise PosrecError(f"{where}: 2D 'keypoint' needs 'keypoint_score' (M, T, V)")
        if not isinstance(score, np.ndarray) or score.shape != kp.shape[:3] or score.dtype.kind not in "fiu":
            got = f"{score.dtype} {_shape(score)}" if isinstance(score, np.ndarray) else type(score).__name__
            raise PosrecError(f"{where}: 'keypoint_score' must be float {_shape(kp[..., 0])} "
                              f"to match 'keypoint' {_shape(kp)}, got {got}")
        ann["keypoint_score"] = score.astype(np.float32, copy=False)
    # 2D pixels need the frame size; clips in normalised units (JHMDB) say so with `coords`
    if (kp.shape[3] == 2 and ann.get("coords") != "normalized") or "img_shape" in ann:
        shape = ann.get("img_shape")
        if shape is None:
            raise PosrecError(f"{where}: 2D 'keypoint' needs 'img_shape' (height, width)")
        if not (isinstance(shape, (tuple, list)) and len(shape) == 2
                and all(isinstance(v, (int, np.integer)) and v > 0 for v in shape)):
            raise PosrecError(f"{where}: 'img_shape' must be (height, width) in pixels, got {shape!r}")
    label = ann.get("label")
    if label is not None:
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or label < 0:
            raise PosrecError(f"{where}: 'label' must be a non-negative int class index, got {label!r}")
        ann["label"] = int(label)


def validate_dataset(dataset: Any, source: str = "dataset") -> dict:
    """Check a dataset dict against the schema (DESIGN.md) and return it, normalised in place.

    Accepts a bare list of annotations (older MMAction2 files) as ``{"split": {}, ...}``; a
    missing "split" is an empty one. Keypoint arrays become float32; labels and frame counts
    plain ints. PosrecError names the first problem: the annotation, the key and what was found.
    """
    if isinstance(dataset, list):
        dataset = {"split": {}, "annotations": dataset}
    if not isinstance(dataset, dict):
        raise PosrecError(f"{source}: expected a dataset dict with 'split' and 'annotations', "
                          f"got {type(dataset).__name__}")
    anns = dataset.get("annotations")
    if not isinstance(anns, list):
        raise PosrecError(f"{source}: missing 'annotations' (a list of dicts)")
    split = dataset.setdefault("split", {})
    if not isinstance(split, dict):
        raise PosrecError(f"{source}: 'split' must be a dict of name -> list of frame_dir")
    seen: set[str] = set()
    for i, ann in enumerate(anns):
        _check_annotation(ann, f"{source}: annotation {i}")
        if ann["frame_dir"] in seen:
            raise PosrecError(f"{source}: frame_dir {ann['frame_dir']!r} appears twice in annotations")
        seen.add(ann["frame_dir"])
    for name, ids in split.items():
        if not isinstance(ids, (list, tuple)) or not all(isinstance(x, str) for x in ids):
            raise PosrecError(f"{source}: split {name!r} must be a list of frame_dir strings")
        missing = [x for x in ids if x not in seen]
        if missing:
            raise PosrecError(f"{source}: split {name!r} names {len(missing)} clip(s) with no "
                              f"annotation, e.g. {missing[0]!r}")
    return dataset


def load_dataset(path: str | os.PathLike) -> dict:
    """Load and validate a PYSKL/MMAction2 skeleton dataset pickle (see validate_dataset)."""
    return validate_dataset(load_pickle(path), Path(path).name)


def save_dataset(dataset: dict, path: str | os.PathLike,
                 inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Validate ``dataset`` and write it atomically as a pickle PYSKL/MMAction2 can load;
    PosrecError (before anything is written) if ``path`` is one of the ``inputs`` it was made
    from."""
    check_not_input(path, *inputs)
    save_pickle(validate_dataset(dataset, str(path)), path)


def merge_datasets(paths: Iterable[str | os.PathLike],
                   out: str | os.PathLike | None = None) -> dict:
    """Join dataset shards: annotations concatenated in order, splits unioned by name, other
    top-level keys (e.g. "classes") kept. With ``out``, also write the result there (never over
    one of the shards: checked before any is read).

    PosrecError if two shards hold the same frame_dir, or disagree on another top-level key.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise PosrecError("no dataset files to merge")
    if out is not None:
        check_not_input(out, *paths)
    merged: dict = {"split": {}, "annotations": []}
    origin: dict[str, Path] = {}  # frame_dir -> shard
    key_origin: dict[str, Path] = {}  # other top-level key -> first shard with it
    for p in paths:
        shard = load_dataset(p)
        for ann in shard["annotations"]:
            fd = ann["frame_dir"]
            if fd in origin:
                raise PosrecError(f"frame_dir {fd!r} is in both {origin[fd]} and {p}")
            origin[fd] = p
            merged["annotations"].append(ann)
        for name, ids in shard["split"].items():
            target = merged["split"].setdefault(name, [])
            known = set(target)
            target.extend(x for x in ids if x not in known)
        for key, value in shard.items():
            if key in ("split", "annotations"):
                continue
            if key == "failed" and isinstance(value, list):  # extract's failed clips: all shards'
                merged.setdefault(key, []).extend(v for v in value if v not in merged[key])
                continue
            if key not in merged:
                merged[key] = value
                key_origin[key] = p
            elif not _equal(merged[key], value):
                raise PosrecError(f"{key_origin[key]} and {p} disagree on {key!r}")
    if out is not None:
        save_dataset(merged, out, inputs=paths)
    return merged


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    try:
        return bool(a == b)
    except Exception:  # containers of arrays compare ambiguously: treat as different
        return False
