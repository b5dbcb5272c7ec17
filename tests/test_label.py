"""`posrec label` as a user meets it: video in, who does what and when out.

The clips are cut from the real videos of ../shared/data, a few seconds long, downscaled and at
10-15 fps (the machine is small and the estimator runs on every frame), and re-encoded with
PyAV (tests/video_clips.py) where a test needs irregular timestamps or rotation metadata that no
shared clip has. Synthetic data only where real data cannot reach, and each such test says so.
None of these tests depends on the shipped model's accuracy except the last one
(test_clean_and_jerk_lifter_is_labelled_clean_and_jerk: the issue's acceptance clip).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

import posrec.action_model as action_model
import posrec.label as label_module
from posrec.action_model import load_action_model
from posrec.io.pickle import load_dataset
from posrec.label import label_video
from cli_helpers import one_error_line, run
from video_clips import make_clip, real_frames

ROOT = Path(__file__).resolve().parent.parent
EPS = 1e-3  # the outputs round times to ms


def tiny_frames(path, seconds, fps, size):
    """``seconds`` of a real clip at ``fps`` (every n-th frame of its own rate), resized."""
    with av.open(str(path)) as c:
        native = float(c.streams.video[0].average_rate)
    step = max(1, round(native / fps))
    return real_frames(path, int(seconds * native), size)[::step]


def decoded_times(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, [float(f.time) for f in c.decode(s)]


def read_windows(out):
    return pd.read_csv(out / "windows.csv")


@pytest.fixture(scope="module")
def videos(shared_data):
    return shared_data / "videos"


@pytest.fixture(scope="module")
def clips(videos, tmp_path_factory):
    """Tiny real clips, made once for the module."""
    d = tmp_path_factory.mktemp("clips")
    return {
        # two players, 3 s at 10 fps, 320 px wide
        "two": make_clip(d / "two.mp4", tiny_frames(videos / "basketball_two_people.mp4", 3, 10,
                                                     (320, 180)), fps=10),
        # the lifter, 1 s at 15 fps: shorter than the model's 2 s window
        "short": make_clip(d / "short.mp4", tiny_frames(videos / "clean_and_jerk.mp4", 1, 15,
                                                         (320, 240)), fps=15),
        # the lifter, 3 s at 10 fps
        "lifter": make_clip(d / "lifter.mp4", tiny_frames(videos / "clean_and_jerk.mp4", 3, 10,
                                                           (320, 240)), fps=10),
    }


# --- 1. end to end ---------------------------------------------------------------------------

@pytest.mark.slow
def test_end_to_end_writes_every_output(capsys, clips, tmp_path):
    clip, out = clips["two"], tmp_path / "out"
    code, stdout, err = run(capsys, "label", clip, "-o", out)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"timeline.csv", "timeline.json", "windows.csv", "skeletons.pkl", "two_label.mp4",
            "timeline.png", "label.json"} <= names, names
    info = json.loads((out / "label.json").read_text())
    duration = info["duration"]
    assert duration == pytest.approx(3.0, abs=0.15)

    tl = pd.read_csv(out / "timeline.csv")
    doc = json.loads((out / "timeline.json").read_text())
    assert len(tl) == len(doc["segments"]) > 0
    assert tl["start"].min() >= 0 and tl["end"].max() <= duration + EPS
    assert (tl["end"] > tl["start"]).all()
    win = read_windows(out)
    assert len(win) > 0 and win["start"].min() >= 0 and win["end"].max() <= duration + EPS
    probs = win[[c for c in win.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape[1] == 27 and np.allclose(probs.sum(1), 1, atol=2e-3)
    # each row's probabilities are its own (two people: their windows arrive interleaved)
    assert win["track_id"].nunique() >= 2
    assert np.allclose(win["score"], probs.max(1), atol=1e-4)
    top = np.array([c[2:] for c in win.columns if c.startswith("p_")])[probs.argmax(1)]
    assert (np.where(win["score"] >= info["threshold"], top, "no action") == win["label"]).all()
    # the terminal summary names every person of the timeline
    for tid in tl["track_id"].unique():
        assert f"person {tid} (" in stdout, stdout
    assert "people in" in stdout or "person in" in stdout

    ds = load_dataset(out / "skeletons.pkl")
    (anno,) = ds["annotations"]
    assert anno["img_shape"] == (180, 320) and anno["keypoint"].shape[2:] == (17, 2)
    assert anno["keypoint"].shape[0] >= 2  # both players were tracked
    assert set(tl["track_id"]) <= set(anno["track_ids"].tolist())
    code, info_out, err = run(capsys, "data", "info", out / "skeletons.pkl")
    assert code == 0 and "coco17" in info_out, err

    codec, times = decoded_times(out / "two_label.mp4")
    _, in_times = decoded_times(clip)
    assert codec == "h264" and len(times) == len(in_times) == info["frames"] == 30
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_multipose_follow_labels_both_players(capsys, clips, tmp_path):
    """--estimator multipose-follow: MultiPose finds the players, Lightning follows each."""
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", clips["two"], "-o", out, "--no-video",
                            "--estimator", "multipose-follow")
    assert code == 0, err
    (anno,) = load_dataset(out / "skeletons.pkl")["annotations"]
    seen = (anno["keypoint_score"] > 0).any(-1).sum(1)  # frames each track holds a pose
    assert (seen >= 0.9 * anno["keypoint"].shape[1]).sum() == 2  # both players, throughout
    win = read_windows(out)
    assert win["track_id"].nunique() >= 2 and "person" in stdout


# --- 2. times follow the video's timestamps; rotation ----------------------------------------

@pytest.mark.slow
def test_variable_frame_rate_times_follow_the_timestamps(capsys, videos, tmp_path):
    # Real frames at 10 fps for 1.2 s, then the same spacing stretched x2 (5 fps) for 2.2 s:
    # index / fps would put the last frame at 2.3 s, its timestamp says 3.4 s.
    frames = tiny_frames(videos / "basketball_two_people.mp4", 2.4, 10, (320, 180))
    pts = [100 * i for i in range(12)] + [1100 + 200 * (i + 1) for i in range(len(frames) - 12)]
    clip = make_clip(tmp_path / "vfr.mp4", frames, pts_ms=pts, fps=10)
    out = tmp_path / "out"
    code, _, err = run(capsys, "label", clip, "-o", out)
    assert code == 0, err
    last = pts[-1] / 1000
    anno = load_dataset(out / "skeletons.pkl")["annotations"][0]
    assert anno["timestamps"] == pytest.approx(np.array(pts) / 1000, abs=1e-4)
    win, tl = read_windows(out), pd.read_csv(out / "timeline.csv")
    info = json.loads((out / "label.json").read_text())
    assert info["duration"] >= last
    for df in (win, tl):
        assert df["start"].min() >= 0 and df["end"].max() <= info["duration"] + EPS
    assert win["end"].max() > 3.0  # beyond what frame index / fps would give (2.3 s)
    # every window lies on its track's frames: starts and ends within the track's timestamps
    kp_t = np.asarray(anno["timestamps"])
    for tid, w in win.groupby("track_id"):
        m = list(anno["track_ids"]).index(tid)
        seen = kp_t[anno["keypoint_score"][m].sum(1) > 0]
        assert w["start"].min() >= seen[0] - EPS and w["end"].max() <= seen[-1] + EPS
        assert (np.diff(w["start"]) > 0).all()
        seg = tl[tl["track_id"] == tid]
        assert seg["start"].min() >= w["start"].min() - EPS
        assert seg["end"].max() <= w["end"].max() + EPS
    # the overlay keeps the clock
    _, times = decoded_times(next(out.glob("*_label.mp4")))
    assert times == pytest.approx(np.array(pts) / 1000, abs=2e-3)


@pytest.mark.slow
def test_rotated_phone_clip_gives_portrait_skeletons(capsys, videos, tmp_path):
    import cv2

    # The real portrait clip (1.7 s at 15 fps, 180x320), stored sideways with a display matrix
    # that turns it upright, as a phone records it.
    portrait = tiny_frames(videos / "pose2sim_single_cam01.mp4", 1.7, 15, (180, 320))
    clip = make_clip(tmp_path / "phone.mp4", [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE)
                                              for f in portrait], rotation=90, fps=15)
    out = tmp_path / "out"
    code, _, err = run(capsys, "label", clip, "-o", out)
    assert code == 0, err
    anno = load_dataset(out / "skeletons.pkl")["annotations"][0]
    assert anno["img_shape"] == (320, 180)
    sure = anno["keypoint_score"] > 0.3
    assert sure.any()
    xy = anno["keypoint"][sure]
    assert (xy[:, 0] <= 180).all() and (xy[:, 1] <= 320).all()
    assert xy[:, 1].max() > 180  # people found below the landscape frame's height: upright
    with av.open(str(out / "phone_label.mp4")) as c:
        s = c.streams.video[0]
        frame = next(c.decode(s)).to_ndarray(format="rgb24")
    assert frame.shape[0] > frame.shape[1]


@pytest.mark.slow
def test_the_overlay_is_capped_at_720p_unless_full_is_asked(capsys, videos, tmp_path):
    clip = make_clip(tmp_path / "wide.mp4", tiny_frames(videos / "basketball_two_people.mp4", 1.0, 5,
                                                        (1280, 800)), fps=5)
    for size, want in ((None, (720, 1152, 3)), ("full", (800, 1280, 3))):
        out = tmp_path / f"out_{size}"
        code, _, err = run(capsys, "label", clip, "-o", out, *(["--overlay-size", size] if size else []))
        assert code == 0, err
        with av.open(str(out / "wide_label.mp4")) as c:
            shapes = {f.to_ndarray(format="rgb24").shape for f in c.decode(video=0)}
        assert shapes == {want}


@pytest.mark.slow
def test_4k_clip_is_labelled_in_its_own_pixels(capsys, videos, tmp_path):
    import cv2

    # The real two-player clip upscaled to 3840x2160 (1.2 s at 10 fps): the estimator sees a
    # downscaled frame, the outputs keep the 4K coordinates, the overlay is 720p by default.
    frames = [cv2.resize(f, (3840, 2160), interpolation=cv2.INTER_LINEAR)
              for f in tiny_frames(videos / "basketball_two_people.mp4", 1.2, 10, (426, 240))]
    clip = make_clip(tmp_path / "uhd.mp4", frames, fps=10)
    del frames
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", clip, "-o", out)
    assert code == 0, err
    anno = load_dataset(out / "skeletons.pkl")["annotations"][0]
    assert anno["img_shape"] == (2160, 3840) and anno["keypoint"].shape[0] >= 1
    sure = anno["keypoint_score"] > 0.3
    xy = anno["keypoint"][sure]
    assert len(xy) and xy[:, 0].max() > 426  # 4K pixels, not the estimator's input's
    # on the frame, give or take the feet the estimator places just below its edge
    assert (xy >= -0.05 * 2160).all() and (xy <= np.array([3840, 2160]) + 0.05 * 2160).all()
    assert len(read_windows(out)) >= 1 and "person " in stdout
    with av.open(str(out / "uhd_label.mp4")) as c:
        shapes = [f.to_ndarray(format="rgb24").shape for f in c.decode(video=0)]
    assert shapes == [(720, 1280, 3)] * len(anno["timestamps"])


# --- 3. shorter than a window; nobody ------------------------------------------------------

@pytest.mark.slow
def test_clip_shorter_than_a_window_is_still_labelled(capsys, clips, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", clips["short"], "-o", out, "--no-video")
    assert code == 0, err
    info = json.loads((out / "label.json").read_text())
    assert info["window"] == 2.0 and info["duration"] < 1.1
    win, tl = read_windows(out), pd.read_csv(out / "timeline.csv")
    assert len(win) >= 1
    assert (win.groupby("track_id").size() == 1).all()  # one (padded) window per person
    assert ((win["end"] - win["start"]) < 2.0).all()
    assert set(tl["track_id"]) == set(win["track_id"])
    assert tl["end"].max() <= info["duration"] + EPS
    assert "person " in stdout and "nobody" not in stdout


@pytest.mark.slow
def test_video_with_nobody_gives_an_empty_timeline(capsys, tmp_path):
    # Synthetic: no real clip of ../shared/data is empty of people; 2 s of a grey, noisy frame.
    rng = np.random.default_rng(0)
    frames = [np.clip(128 + rng.normal(0, 20, (180, 320, 3)), 0, 255).astype(np.uint8)
              for _ in range(20)]
    clip = make_clip(tmp_path / "empty.mp4", frames, fps=10)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", clip, "-o", out)
    assert code == 0, err
    assert "nobody was found in the video" in stdout
    tl = pd.read_csv(out / "timeline.csv")
    assert list(tl.columns) == ["track_id", "start", "end", "label", "score"] and tl.empty
    assert json.loads((out / "timeline.json").read_text())["segments"] == []
    info = json.loads((out / "label.json").read_text())
    assert info["summary"]["people"] == 0 and info["frames"] == 20
    assert read_windows(out).empty
    assert load_dataset(out / "skeletons.pkl")["annotations"][0]["keypoint"].shape[0] == 0
    assert (out / "timeline.png").is_file()
    _, times = decoded_times(out / "empty_label.mp4")
    assert len(times) == 20


# --- 4. bad input: one line, exit 2 ----------------------------------------------------------

# (a missing video and a text file named .mp4: tests/test_cli.py, for pose and label alike)

def test_folder_with_no_videos(capsys, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "readme.txt").write_text("no videos here")
    code, _, err = run(capsys, "label", tmp_path / "d", "-o", tmp_path / "out")
    one_error_line(code, err, "no video files")


def _shipped_checkpoint():
    """The shipped model as a posrec checkpoint (.pt) dict, as `posrec train` writes one."""
    from safetensors.torch import load_file

    card = json.loads((action_model.SHIPPED_DIR / "posrec-actions-27.json").read_text())
    return {"format_version": 2, "arch": card["arch"], "flags": card["flags"],
            "num_classes": card["num_classes"], "class_names": card["class_names"],
            "in_channels": card["in_channels"], "layout": card["pipeline"]["layout"],
            "num_person": card["pipeline"]["num_person"], "pipeline": card["pipeline"],
            "config": {}, "selected_on": card["selected_on"],
            "state_dict": load_file(str(action_model.SHIPPED_DIR / "posrec-actions-27.safetensors"))}


@pytest.fixture
def bad_models(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_shipped_checkpoint(), good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "foreign.pt").write_text("print('hello')\n" * 100)
    (tmp_path / "foreign.pth").write_text("print('hello')\n" * 100)
    return tmp_path


@pytest.mark.parametrize("model, pattern", [
    ("missing.pt", "does not exist"),
    ("pyskl:missing.pth", "does not exist"),
    ("truncated.pt", "not a readable posrec checkpoint"),
    ("foreign.pt", "not a readable posrec checkpoint"),
    ("foreign.pth", "cannot read checkpoint"),
    ("no-such-model", "unknown model 'no-such-model'"),
])
def test_bad_model_files(capsys, clips, bad_models, model, pattern):
    arg = model if not model.endswith(("pt", "pth")) else (
        "pyskl:" + str(bad_models / model[6:]) if model.startswith("pyskl:")
        else str(bad_models / model))
    code, _, err = run(capsys, "label", clips["short"], "-o", bad_models / "out", "--model", arg)
    one_error_line(code, err, pattern)
    assert not (bad_models / "out" / "label.json").exists()


def test_a_good_checkpoint_loads(bad_models):
    am = load_action_model(bad_models / "good.pt")
    assert len(am.class_names) == 27 and am.spec.layout == "penn13"


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped card and weights copied into tmp_path, which becomes SHIPPED_DIR."""
    d = tmp_path / "shipped"
    d.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(action_model.SHIPPED_DIR / f"posrec-actions-27{suffix}", d)
    monkeypatch.setattr(action_model, "SHIPPED_DIR", d)
    return d / "posrec-actions-27.json"


def _edit_card(card_path, edit):
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))


def test_copied_shipped_model_loads(shipped_copy):
    assert load_action_model("posrec-actions-27").class_names[6] == "clean_and_jerk"


def _fewer_classes(card):
    card["num_classes"] = 26
    card["class_names"] = card["class_names"][:26]


def _other_layout(card):
    card["pipeline"]["layout"] = "coco17"


@pytest.mark.parametrize("edit, pattern", [
    (_fewer_classes, "weights do not fit the model card"),
    (lambda c: c.update(num_classes=28), "card names 27 classes but the model has 28"),
    (_other_layout, "weights do not fit the model card"),
    (lambda c: c.pop("threshold"), "model card lacks threshold"),
])
def test_card_that_does_not_fit_its_weights(capsys, clips, shipped_copy, tmp_path, edit, pattern):
    _edit_card(shipped_copy, edit)
    code, _, err = run(capsys, "label", clips["short"], "-o", tmp_path / "out",
                       "--model", "posrec-actions-27")
    one_error_line(code, err, pattern)


def test_weights_whose_sha256_differs_from_the_card(capsys, clips, shipped_copy, tmp_path):
    weights = shipped_copy.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit pattern in the last weight
    weights.write_bytes(bytes(data))
    code, _, err = run(capsys, "label", clips["short"], "-o", tmp_path / "out")
    one_error_line(code, err, "sha256 differs from the model card")


@pytest.mark.parametrize("fps, every", [(30.0, 3), (30000 / 1001, 3), (60.0, 6), (60000 / 1001, 6),
                                        (25.0, 2), (12.0, 1), (9.0, 1)])
def test_auto_pose_rate_keeps_at_least_the_cards_rate_of_the_nominal_frame_rate(fps, every):
    """min_pose_fps 10: a 29.97 fps clip is estimated like the 30 fps one it stands for."""
    assert label_module._every(10.0, fps, "auto") == every
    assert label_module._every(10.0, fps, 4) == 4


@pytest.mark.parametrize("flag, value, pattern", [
    ("--every", "0", "--every must be a positive integer"),
    ("--every", "x", "--every must be a positive integer"),
    ("--window", "-1", "window"),
    ("--window", "0", "window"),
    ("--stride", "0", "stride"),
    ("--threshold", "2", "threshold"),
    ("--threshold", "-0.1", "threshold"),
])
def test_bad_options_fail_before_any_work(capsys, clips, tmp_path, monkeypatch, flag, value,
                                          pattern):
    def no_video(*a, **k):
        raise AssertionError("the video was opened before the options were checked")

    monkeypatch.setattr("posrec.io.video.open_video", no_video)
    code, _, err = run(capsys, "label", clips["short"], "-o", tmp_path / "out", flag, value)
    one_error_line(code, err, pattern)


@pytest.mark.parametrize("flag, value", [("--window", "-1"), ("--threshold", "2")])
def test_bad_options_in_folder_mode_are_one_error_not_a_failure_per_video(
        capsys, clips, tmp_path, flag, value):
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(clips["short"], tree / "a.mp4")
    code, _, err = run(capsys, "label", tree, "-o", tmp_path / "out", flag, value)
    one_error_line(code, err, flag.lstrip("-"))


# --- 5. folders: per-video run directories, summary, resume, kill, shards --------------------

@pytest.fixture
def tree(clips, tmp_path):
    """Three tiny real clips in a folder tree (two in sub-folders)."""
    root = tmp_path / "videos"
    for rel in ("a/lift.mp4", "b/c/two.mp4", "top.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(clips["short"], root / "a" / "lift.mp4")
    shutil.copy(clips["short"], root / "top.mp4")
    shutil.copy(clips["two"], root / "b" / "c" / "two.mp4")
    return root


RUNS = ("a/lift", "b/c/two", "top")


def _mtimes(out):
    return {r: (out / r / "label.json").stat().st_mtime_ns for r in RUNS}


def _check_tree_outputs(out):
    for r in RUNS:
        info = json.loads((out / r / "label.json").read_text())
        for name in info["files"]:
            assert (out / r / name).is_file(), (r, name)
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["video"]) == ["a/lift.mp4", "b/c/two.mp4", "top.mp4"]
    assert list(summary.columns) == ["video", "duration", "people", "top_label", "top_share",
                                     "segments"]
    return summary


@pytest.mark.slow
def test_folder_labels_every_video_and_resumes(capsys, tree, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", tree, "-o", out, "--no-video")
    assert code == 0, err
    assert "3 labelled, 0 already done, 0 failed" in stdout
    summary = _check_tree_outputs(out)
    two = summary.set_index("video").loc["b/c/two.mp4"]
    assert two["people"] >= 2 and two["duration"] == pytest.approx(3.0, abs=0.15)
    before = _mtimes(out)
    code, stdout, err = run(capsys, "label", tree, "-o", out, "--no-video")
    assert code == 0, err
    assert "0 labelled, 3 already done, 0 failed" in stdout
    assert _mtimes(out) == before
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary)


@pytest.mark.slow
def test_folder_killed_and_restarted_loses_and_redoes_nothing(capsys, tree, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "posrec.cli", "label", str(tree), "-o",
                             str(out), "--no-video", "--threads", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / RUNS[0] / "label.json"
    try:
        deadline = time.monotonic() + 300
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.exists(), "the first video was never finished"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = {r: (out / r / "label.json").stat().st_mtime_ns for r in RUNS
                if (out / r / "label.json").exists()}
    assert len(finished) < len(RUNS), "killed too late to test the restart"
    code, stdout, err = run(capsys, "label", tree, "-o", out, "--no-video")
    assert code == 0, err
    assert (f"{len(RUNS) - len(finished)} labelled, {len(finished)} already done, 0 failed"
            in stdout)
    assert {r: m for r, m in _mtimes(out).items() if r in finished} == finished  # not redone
    _check_tree_outputs(out)  # nothing lost, summary complete


@pytest.mark.slow
def test_shards_cover_every_video_once(capsys, tree, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", tree, "-o", out, "--no-video", "--shard", "0/2")
    assert code == 0, err
    first = {r for r in RUNS if (out / r / "label.json").exists()}
    n0 = int(stdout.split(" labelled")[0].split()[-1])
    assert n0 == len(first) == 2  # videos 0 and 2 of 3
    before = _mtimes_of(out, first)
    code, stdout, err = run(capsys, "label", tree, "-o", out, "--no-video", "--shard", "1/2")
    assert code == 0, err
    assert "1 labelled, 0 already done" in stdout
    assert _mtimes_of(out, first) == before  # shard 1 did not touch shard 0's videos
    _check_tree_outputs(out)


def _mtimes_of(out, runs):
    return {r: (out / r / "label.json").stat().st_mtime_ns for r in runs}


@pytest.mark.slow
def test_out_inside_the_tree_does_not_label_its_own_outputs(capsys, tree):
    out = tree / "label_out"  # e.g. `cd videos && posrec label .`
    code, stdout, err = run(capsys, "label", tree, "-o", out)
    assert code == 0, err
    assert any(out.rglob("*_label.mp4"))
    code, stdout, err = run(capsys, "label", tree, "-o", out)
    assert code == 0, err
    assert "0 labelled, 3 already done, 0 failed" in stdout
    assert len(pd.read_csv(out / "summary.csv")) == 3


# --- 6. the camera's rolling window, fed by a video file -------------------------------------

@pytest.mark.slow
def test_rolling_window_draws_the_latest_label_without_lag(clips, tmp_path, monkeypatch):
    import posrec.label_overlay as ov  # where the overlay looks draw_labels up
    from posrec.label_overlay import LabelOverlay as Overlay

    decided = []  # (t, frames pushed so far, track ids, labels) of each overlay frame, in order
    drawn = []  # the labels drawn on each overlay frame (in the overlay's own thread), in order
    pushed, flushed = [], []
    orig_push, orig_labels, real_draw = Overlay.push, Overlay._labels, ov.draw_labels
    orig_flush = label_module.WindowCutter.flush

    def push(self, t, frame, poses, when):
        pushed.append(t)
        orig_push(self, t, frame, poses, when)

    def labels(self, t, poses):
        out = orig_labels(self, t, poses)
        decided.append((t, len(pushed), [int(i) for i in poses.track_ids], out))
        return out

    def labels_spy(frame, poses, labels, scale=1.0):
        drawn.append(labels)
        return real_draw(frame, poses, labels, scale=scale)

    def flush(self, store):
        windows = orig_flush(self, store)
        flushed.extend(windows)
        return windows

    monkeypatch.setattr(ov, "draw_labels", labels_spy)
    monkeypatch.setattr(Overlay, "push", push)
    monkeypatch.setattr(Overlay, "_labels", labels)
    monkeypatch.setattr(label_module.WindowCutter, "flush", flush)
    res = label_video(clips["lifter"], rolling=True, out_dir=tmp_path / "out", progress=False)
    _, in_times = decoded_times(clips["lifter"])
    _, out_times = decoded_times(tmp_path / "out" / "lifter_label.mp4")
    assert len(out_times) == len(in_times) == res.frames == len(decided) == len(drawn)
    # no lag: each frame's labels are fixed as soon as it arrives, before the next one is read
    assert [n for _, n, _, _ in decided] == list(range(1, len(decided) + 1))
    assert drawn == [lab for *_, lab in decided]  # and those are the labels drawn on it
    assert len(res.windows) > 0
    assert np.allclose(res.windows["score"], res.probs.max(1))
    late = {(w.track_id, round(w.start, 6), round(w.end, 6)) for w in
            pd.DataFrame(flushed, columns=["track_id", "start", "end"]).itertuples()}
    streamed = res.windows[[(r.track_id, round(r.start, 6), round(r.end, 6)) not in late
                            for r in res.windows.itertuples()]]
    assert len(streamed) > 0
    checked = 0
    for t, _, tids, labels in decided:
        for tid, lab in zip(tids, labels):
            w = streamed[(streamed.track_id == tid) & (streamed.end <= t + 1e-6)]
            if w.empty:
                continue
            latest = w.iloc[-1]
            assert lab is not None, (t, tid)
            assert lab[0] == latest["label"] and lab[1] == pytest.approx(latest["score"], abs=1e-5)
            checked += 1
    assert checked >= 5  # frames after the first window carry its label


# --- 7. posrec models; PYSKL checkpoints -------------------------------------------------------

def test_models_lists_the_shipped_model_and_its_classes(capsys):
    code, stdout, err = run(capsys, "models")
    assert code == 0, err
    card = json.loads((action_model.SHIPPED_DIR / "posrec-actions-27.json").read_text())
    assert "posrec-actions-27 (default): 27 classes, penn13" in stdout
    for name in card["class_names"]:
        assert name in stdout
    assert "pyskl:FILE.pth" in stdout


def _pyskl_file(path):
    """A PYSKL-style ST-GCN++ COCO-17 NTU-60 state dict: posrec's model with PYSKL's key names
    (random weights: the test checks the import and the pipeline, not the accuracy)."""
    from posrec.models import build_model

    net = build_model("stgcn++", 60, "coco17", in_channels=3, num_person=2)
    inverse = (("blocks.", "backbone.gcn."), ("data_bn.", "backbone.data_bn."),
               ("fc.", "cls_head.fc_cls."))
    sd = {}
    for key, value in net.state_dict().items():
        new = next(n + key[len(o):] for o, n in inverse if key.startswith(o))
        sd[new] = value
    torch.save({"state_dict": sd, "meta": {"epoch": 16}}, path)
    return net


@pytest.mark.slow
def test_pyskl_checkpoint_labels_a_clip(capsys, clips, tmp_path):
    net = _pyskl_file(tmp_path / "stgcnpp_ntu60.pth")
    am = load_action_model(f"pyskl:{tmp_path / 'stgcnpp_ntu60.pth'}")
    assert am.class_names == [str(i) for i in range(60)] and am.spec.layout == "coco17"
    for name, value in net.state_dict().items():
        assert torch.equal(am.net.state_dict()[name], value), name
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "label", clips["short"], "-o", out, "--no-video",
                            "--model", f"pyskl:{tmp_path / 'stgcnpp_ntu60.pth'}")
    assert code == 0, err
    win = read_windows(out)
    assert len(win) >= 1
    assert [c for c in win.columns if c.startswith("p_")] == [f"p_{i}" for i in range(60)]
    assert set(win["label"]) <= {str(i) for i in range(60)} | {"no action"}
    assert json.loads((out / "label.json").read_text())["model"] == "stgcnpp_ntu60"


# --- 8. the acceptance clip (depends on the shipped model's accuracy) -------------------------

@pytest.mark.slow
def test_clean_and_jerk_lifter_is_labelled_clean_and_jerk(videos):
    res = label_video(videos / "clean_and_jerk.mp4", progress=False)
    win = res.windows
    spans = win.groupby("track_id").agg(first=("start", "min"), last=("end", "max"))
    lifter = (spans["last"] - spans["first"]).idxmax()
    a, b = spans.loc[lifter, "first"], spans.loc[lifter, "last"]
    seg = res.timeline[res.timeline.track_id == lifter]
    lift = seg[seg.label == "clean_and_jerk"]
    share = float((lift.end.clip(a, b) - lift.start.clip(a, b)).sum() / (b - a))
    print(f"lifter track {lifter}: {a:.2f}-{b:.2f} s, clean_and_jerk {share:.0%}; "
          f"timeline:\n{seg.to_string()}")
    assert share > 0.5, seg.to_string()
