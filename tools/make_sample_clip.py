"""Regenerate the bundled sample clip data/samples/sports2d_walk.mp4.

    python tools/make_sample_clip.py [--src ../shared/data/videos/sports2d_demo.mp4]

The source is Sports2D's demo video (``Sports2D/Demo/demo.mp4`` in the ``sports2d`` 0.8.34 wheel
on PyPI, BSD-3-Clause; see data/samples/NOTICE). It is re-encoded as H.264 at 640 px wide, all
frames, same timestamps, so the README's first command runs quickly on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posrec.io.video import open_video  # noqa: E402
from posrec.io.video_write import write_video  # noqa: E402
from posrec.paths import shared_data_dir  # noqa: E402

WIDTH = 640


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", type=Path, default=shared_data_dir() / "videos/sports2d_demo.mp4")
    p.add_argument("-o", "--out", type=Path,
                   default=Path(__file__).resolve().parents[1] / "data/samples/sports2d_walk.mp4")
    a = p.parse_args()
    with open_video(a.src) as r:
        h = round(r.height * WIDTH / r.width / 2) * 2
        with write_video(a.out, r.fps, (WIDTH, h)) as vw:
            for t, rgb in r.timed():
                vw.write(cv2.resize(rgb, (WIDTH, h), interpolation=cv2.INTER_AREA), t)
    print(a.out, a.out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
