"""Write an NW-UCLA dataset pickle whose splits keep the recipe choice away from view 3.

The standard cross-view protocol trains on views 1 and 2 and tests on view 3, and NW-UCLA has
no validation split. This script adds the splits an honest run needs:

- ``v1``, ``v2``, ``v3``: every clip of one view (choose a recipe: train on ``v1``, validate
  on ``v2``; view 3 is never read for that);
- ``v12_train`` / ``v12_val``: views 1 and 2 with the clips of ``--val-subjects`` of the ten
  subjects held out (subject ``sYY`` is in the file name ``aXX_sYY_eZZ_vNN``), so ``best.pt`` is
  chosen on people the model never trained on. The subjects are drawn with ``--seed`` among the
  sets whose validation clips cover every class with at least half of its expected share
  (the stratification check); the draw looks at views 1 and 2 only.

``v3`` is then the test split, scored once. Usage (the output holds NW-UCLA content, research
use only, never committed: it goes outside the repository or into its git-ignored ``runs/``,
where ``configs/stgcn++_nwucla_protocol_*.yaml`` read it):

    python tools/nwucla_protocol.py -o runs/nwucla_protocol.pkl
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from posrec.errors import PosrecError
from posrec.io.datasets import convert
from posrec.io.pickle import save_dataset
from posrec.paths import PACKAGE_DIR, shared_data_dir

_SUBJECT = re.compile(r"_s(\d+)_")


def subject_of(frame_dir: str) -> int:
    """``aXX_sYY_eZZ_vNN`` -> YY."""
    m = _SUBJECT.search(frame_dir)
    if m is None:
        raise PosrecError(f"clip '{frame_dir}' names no subject (expected aXX_sYY_eZZ_vNN)")
    return int(m.group(1))


def choose_val_subjects(annos: list[dict], n: int, seed: int, num_classes: int) -> tuple[int, ...]:
    """``n`` subjects whose clips (in ``annos``) cover each class with at least half of its
    expected share ``n / subjects`` of that class; the first such set in a seeded shuffle."""
    subjects = sorted({subject_of(a["frame_dir"]) for a in annos})
    if not 1 <= n < len(subjects):
        raise PosrecError(f"--val-subjects must be 1..{len(subjects) - 1}, got {n}")
    per_class = Counter(a["label"] for a in annos)
    sets = list(itertools.combinations(subjects, n))
    for k in np.random.default_rng(seed).permutation(len(sets)):
        held = set(sets[k])
        got = Counter(a["label"] for a in annos if subject_of(a["frame_dir"]) in held)
        if all(got[c] >= 0.5 * per_class[c] * n / len(subjects) for c in range(num_classes)):
            return tuple(sorted(held))
    raise PosrecError(f"no set of {n} subjects covers every class in validation")


def build(src: Path, val_subjects: int, seed: int) -> tuple[dict, tuple[int, ...]]:
    """The dataset dict with splits v1, v2, v3, v12_train, v12_val; and the held-out subjects."""
    data = convert(src, "nwucla")
    annos = data["annotations"]
    split = {f"v{v}": [a["frame_dir"] for a in annos if a["view"] == v] for v in (1, 2, 3)}
    v12 = [a for a in annos if a["view"] in (1, 2)]  # the only clips the choice looks at
    held = choose_val_subjects(v12, val_subjects, seed, len(data["classes"]))
    split["v12_val"] = [a["frame_dir"] for a in v12 if subject_of(a["frame_dir"]) in held]
    split["v12_train"] = [a["frame_dir"] for a in v12 if subject_of(a["frame_dir"]) not in held]
    return {**data, "split": split}, held


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, default=shared_data_dir() / "skeleton/nw_ucla/all_sqe")
    p.add_argument("-o", "--out", type=Path, required=True, help="dataset pickle to write")
    p.add_argument("--val-subjects", type=int, default=2, help="subjects held out of views 1+2")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        repo = PACKAGE_DIR.parent
        out = args.out.resolve()
        if out.is_relative_to(repo) and not out.is_relative_to(repo / "runs"):
            raise PosrecError(f"{args.out}: inside the repository; NW-UCLA content is never "
                              "committed, write it outside or under runs/ (git-ignored)")
        data, held = build(args.src, args.val_subjects, args.seed)
        save_dataset(data, args.out)
    except PosrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    labels = {a["frame_dir"]: a["label"] for a in data["annotations"]}
    print(f"wrote {args.out}; validation subjects {', '.join(f's{s:02d}' for s in held)}")
    for name, ids in data["split"].items():
        counts = np.bincount([labels[f] for f in ids], minlength=len(data["classes"]))
        print(f"  {name:10s} {len(ids):4d} clips, per class {' '.join(map(str, counts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
