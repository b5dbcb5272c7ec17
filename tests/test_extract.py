"""`posrec extract` keeps its promises: failed clips are listed, the cache knows what it holds.

Clips are short cuts of the real videos in ../shared/data (10 frames, re-encoded), so that each
run takes seconds; the corrupt one is a real clip cut to half its bytes.
"""

import os
import re

import numpy as np
import pytest

import posrec.extract as extract_module
from posrec.estimate.estimators import load_estimator
from posrec.io.pickle import load_dataset
from posrec.io.video import open_video, write_video
from cli_helpers import run


def cut(src, dst, n=10):
    with open_video(src) as video, write_video(dst, video.fps, (video.width, video.height)) as vw:
        for _, (t, frame) in zip(range(n), video.timed()):
            vw.write(frame, t)
    return dst


@pytest.fixture()
def clips(tmp_path, shared_data):
    folder = tmp_path / "clips"
    folder.mkdir()
    cut(shared_data / "videos" / "basketball_two_people.mp4", folder / "a_basketball.mp4")
    cut(shared_data / "videos" / "clean_and_jerk.mp4", folder / "c_lift.mp4")
    return folder


def test_corrupt_clip_is_listed_and_the_good_ones_kept(capsys, tmp_path, shared_data, clips):
    data = (shared_data / "videos" / "basketball_two_people.mp4").read_bytes()
    (clips / "b_broken.mp4").write_bytes(data[: len(data) // 2])  # index at the end: unreadable
    code, out, err = run(capsys, "extract", clips, "--model", "lightning", "-o", tmp_path / "ds.pkl")
    assert code == 1, err
    shown = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)  # tqdm's cursor moves, as a terminal applies them
    failed_lines = [l.strip() for l in shown.splitlines() if l.strip().startswith("posrec: failed:")]
    assert len(failed_lines) == 1 and "b_broken.mp4" in failed_lines[0], shown[-2000:]
    ds = load_dataset(tmp_path / "ds.pkl")
    assert [a["frame_dir"] for a in ds["annotations"]] == ["a_basketball", "c_lift"]
    assert len(ds["failed"]) == 1 and ds["failed"][0].startswith(str(clips / "b_broken.mp4"))
    for ann in ds["annotations"]:
        with open_video(ann["source"]) as video:
            times = [t for t, _ in video.timed()]
        assert ann["timestamps"].dtype == np.float32 and ann["timestamps"].shape == (ann["total_frames"],)
        assert ann["timestamps"] == pytest.approx(times, abs=1e-6)
    assert "2 clips" in out


def test_all_clips_failing_is_an_error(capsys, tmp_path, shared_data):
    (tmp_path / "bad").mkdir()
    data = (shared_data / "videos" / "basketball_two_people.mp4").read_bytes()
    (tmp_path / "bad" / "x.mp4").write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "extract", tmp_path / "bad", "--model", "lightning", "-o", tmp_path / "ds.pkl")
    assert code == 2 and "no clip could be extracted" in err
    assert not (tmp_path / "ds.pkl").exists()


class CountingExtractor:
    """Stands in for clip_annotation: records each clip it is asked for; with ``stop_at`` it
    raises KeyboardInterrupt (a killed run) on that call."""

    def __init__(self, stop_at=None):
        self.real, self.calls, self.stop_at = extract_module.clip_annotation, [], stop_at

    def __call__(self, path, *a, **k):
        self.calls.append(path.name)
        if len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        return self.real(path, *a, **k)


def test_changed_estimator_invalidates_the_cache(capsys, tmp_path, clips, monkeypatch):
    args = ["extract", clips, "-o", tmp_path / "ds.pkl"]
    killed = CountingExtractor(stop_at=2)
    monkeypatch.setattr(extract_module, "clip_annotation", killed)
    code, _, _ = run(capsys, *args, "--model", "lightning")
    assert code == 130 and len(list((tmp_path / "ds.pkl.parts").iterdir())) == 1  # one clip cached
    again = CountingExtractor()
    monkeypatch.setattr(extract_module, "clip_annotation", again)
    code, _, err = run(capsys, *args, "--model", "thunder")
    assert code == 0, err
    assert again.calls == ["a_basketball.mp4", "c_lift.mp4"]  # lightning's cached clip redone
    assert len(load_dataset(tmp_path / "ds.pkl")["annotations"]) == 2


def test_cache_key_follows_clip_estimator_and_options(tmp_path, clips):
    clip = clips / "a_basketball.mp4"
    light, thunder = load_estimator("lightning", follow_person=True), load_estimator("thunder", follow_person=True)
    key = extract_module.cache_key(clip, light, None)
    assert key == extract_module.cache_key(clip, load_estimator("lightning", follow_person=True), None)
    assert key != extract_module.cache_key(clip, thunder, None)
    assert key != extract_module.cache_key(clip, load_estimator("lightning", follow_person=True,
                                                                min_person_score=0.5), None)
    assert key != extract_module.cache_key(clip, light, 2)
    # multipose-follow: its finder's settings are part of its own
    follow = extract_module.cache_key(clip, load_estimator("multipose-follow"), None)
    assert follow == extract_module.cache_key(clip, load_estimator("multipose-follow"), None)
    assert follow != extract_module.cache_key(clip, load_estimator("multipose-follow",
                                                                   min_person_score=0.3), None)
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the clip was replaced
    assert key != extract_module.cache_key(clip, light, None)


def test_merged_shards_keep_every_failed_clip(tmp_path):
    """Shard files as extract writes them (tiny synthetic annotations: only the lists matter)."""
    from posrec.io.pickle import merge_datasets, save_dataset

    for i, failed in enumerate((["x.mp4: cannot open"], ["y.mp4: cannot open"])):
        ann = {"frame_dir": f"clip{i}", "total_frames": 1, "img_shape": (4, 4),
               "keypoint": np.zeros((1, 1, 17, 2), np.float32), "keypoint_score": np.zeros((1, 1, 17), np.float32)}
        save_dataset({"split": {"all": [f"clip{i}"]}, "annotations": [ann], "failed": failed}, tmp_path / f"p{i}.pkl")
    merged = merge_datasets([tmp_path / "p0.pkl", tmp_path / "p1.pkl"])
    assert merged["failed"] == ["x.mp4: cannot open", "y.mp4: cannot open"]
