"""A user's own classes, end to end through the CLI (issue: extract -> split -> train -> label):
real clips of ../shared/data cut into 2-second pieces, one folder per class."""

from __future__ import annotations

from pathlib import Path

import pytest

from posrec.cli import main

CLASSES = {"lifting": "clean_and_jerk.mp4", "taichi": "tai_chi.mp4",
           "basketball": "basketball_two_people.mp4"}


def _cut(src: Path, folder: Path, pieces: int = 4, seconds: float = 2.0) -> None:
    from posrec.io.video import open_video
    from posrec.io.video_write import write_video

    folder.mkdir(parents=True)
    with open_video(src) as r:
        frames = [(t, f) for t, f in r.timed() if t < pieces * seconds]
        fps, size = r.fps, (r.width, r.height)
    for k in range(pieces):
        part = [(t, f) for t, f in frames if k * seconds <= t < (k + 1) * seconds]
        with write_video(folder / f"{src.stem}_{k}.mp4", fps, size, preset="veryfast") as vw:
            for t, f in part:
                vw.write(f, t - k * seconds)


@pytest.mark.slow
def test_extract_split_train_label_with_own_classes(tmp_path, shared_data, capsys):
    videos = tmp_path / "videos"
    for name, clip in CLASSES.items():
        _cut(shared_data / "videos" / clip, videos / name)
    clips, split = tmp_path / "clips.pkl", tmp_path / "split.pkl"
    assert main(["extract", str(videos), "--labels-from-dirs", "-o", str(clips)]) == 0
    assert main(["data", "split", str(clips), "-o", str(split), "--val", "0.25",
                 "--test", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "val" in out and "test" in out
    run = tmp_path / "run"
    config = Path(__file__).resolve().parents[1] / "configs/custom_coco17.yaml"
    assert main(["train", str(config), "--set", f"data.source={split}", f"out_dir={run}",
                 "train.epochs=2", "train.val_interval=1", "train.threads=1"]) == 0
    assert (run / "best.pt").is_file()
    label_out = tmp_path / "labelled"
    video = videos / "lifting" / "clean_and_jerk_0.mp4"
    assert main(["label", str(video), "--model", str(run / "best.pt"), "-o", str(label_out),
                 "--no-video"]) == 0
    timeline = (label_out / "timeline.csv").read_text()
    assert timeline.startswith("track_id,start,end,label,score")
    labels = {line.split(",")[3] for line in timeline.splitlines()[1:]}
    assert labels and labels <= {"lifting", "taichi", "basketball", "no action"}
