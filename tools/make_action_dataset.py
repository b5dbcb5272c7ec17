"""Build the training data of posrec's shipped action model: Penn Action + JHMDB in one file.

    python tools/make_action_dataset.py --jhmdb-split 1 -o runs/datasets/actions_jhmdb1.pkl
    python tools/make_action_dataset.py --penn-only -o runs/datasets/actions_penn.pkl
    python tools/make_action_dataset.py --jhmdb-split 1 --jhmdb-val-split 2 -o runs/datasets/actions_jhmdb1_v2.pkl

Both sets are human-annotated 2D joints mapped into ``penn13``. One class list serves both
(:data:`posrec.actions.ACTION_CLASSES`): JHMDB's ``golf`` is Penn's ``golf_swing`` and both sets
have ``pullup``, so 15 + 14 - 2 = 27 classes. Splits: ``train`` and ``val`` (10 % of each set's
official training clips, stratified by class, seeded: neither set names subjects or source
videos, so the carve is by clip; ``val_penn`` and ``val_jhmdb`` are its two parts),
``test_penn`` (Penn's official test split), ``test_jhmdb`` (the test part of the chosen JHMDB
split) and ``test`` (both). ``--jhmdb-val-split K`` carves JHMDB's part of ``val`` along
another official split instead: the training clips that split K tests, so no source video has
clips on both sides (the protocol that ranks recipes, RESULTS.md). The output is research data
(Penn Action and JHMDB terms): keep it out of the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posrec.actions import build_action_dataset  # noqa: E402
from posrec.io.pickle import save_dataset  # noqa: E402
from posrec.paths import shared_data_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jhmdb-split", type=int, default=1, choices=(1, 2, 3))
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jhmdb-val-split", type=int, choices=(1, 2, 3),
                   help="carve JHMDB's validation along this other official split (its test "
                        "clips among the training clips): grouped by source video, unlike the "
                        "default random carve")
    p.add_argument("--penn-only", action="store_true",
                   help="leave JHMDB out: the Penn-only reference of the same recipe")
    p.add_argument("-o", "--out", type=Path, required=True)
    a = p.parse_args()
    root = shared_data_dir() / "skeleton"
    data = build_action_dataset(root / "penn_action/labels", root / "jhmdb", a.jhmdb_split,
                                a.val_fraction, a.seed, a.penn_only,
                                a.jhmdb_val_split)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(data, a.out)
    print(a.out, {k: len(v) for k, v in data["split"].items()}, len(data["classes"]), "classes")


if __name__ == "__main__":
    main()
