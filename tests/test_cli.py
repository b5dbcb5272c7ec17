"""The command line: bad inputs give one clear line and exit code 2 (or a correct result)."""

import json
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

from posrec.cli import main
from posrec.io.pickle import load_dataset
from posrec.io.video import VideoDecodeWarning
from cli_helpers import assert_clean_error, one_error_line, run


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("pose", "extract", "data"):
        assert command in out


@pytest.mark.parametrize("command", ["pose", "label"])
def test_missing_path(capsys, tmp_path, command):
    code, _, err = run(capsys, command, tmp_path / "nope.mp4", "-o", tmp_path / "out")
    one_error_line(code, err, "not found")


@pytest.mark.parametrize("command", ["pose", "label"])
def test_text_file_named_mp4(capsys, tmp_path, command):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    code, _, err = run(capsys, command, fake, "-o", tmp_path / "out")
    one_error_line(code, err, "cannot open")
    assert fake.read_text().startswith("these are my notes")  # input untouched


def test_zero_byte_video(capsys, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, _, err = run(capsys, "pose", empty, "-o", tmp_path / "out")
    assert_clean_error(code, err, "empty")


def test_clip_cut_to_half_its_bytes(capsys, tmp_path, shared_data):
    # MP4 keeps its index at the end: half a file cannot be opened, and says so.
    src = (shared_data / "videos" / "basketball_two_people.mp4").read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(src[: len(src) // 2])
    code, _, err = run(capsys, "pose", half, "-o", tmp_path / "out")
    assert_clean_error(code, err, "half.mp4")
    # AVI streams: half a file gives what decodes, with a warning naming the first bad frame.
    src = (shared_data / "videos" / "ntu_A055_hugging.avi").read_bytes()
    half = tmp_path / "half.avi"
    half.write_bytes(src[: len(src) // 2])
    with pytest.warns(VideoDecodeWarning, match="stopped at frame 26"):
        code, out, err = run(capsys, "pose", half, "-o", tmp_path / "out", "--model", "lightning")
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "half_pose.json").read_text())
    assert 0 < len(doc["frames"]) < 72
    cap = cv2.VideoCapture(str(tmp_path / "out" / "half_pose.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(doc["frames"])


@pytest.mark.parametrize("kind", ["grey", "rgba", "1x1", "8000x6000"])
def test_unusual_images_give_results(capsys, tmp_path, shared_data, kind):
    camera = cv2.imread(str(shared_data / "images" / "camera.png"), cv2.IMREAD_UNCHANGED)
    astro = cv2.imread(str(shared_data / "images" / "astronaut.png"))
    path = tmp_path / f"{kind}.png"
    if kind == "grey":
        assert camera.ndim == 2  # the real file is single-channel
        cv2.imwrite(str(path), camera)
    elif kind == "rgba":
        cv2.imwrite(str(path), np.dstack([astro, np.full(astro.shape[:2], 255, np.uint8)]))
    elif kind == "1x1":
        cv2.imwrite(str(path), astro[:1, :1])
    else:  # synthetic: the real astronaut scaled up to a 48-megapixel frame
        cv2.imwrite(str(path), cv2.resize(astro, (8000, 6000)), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    code, out, err = run(capsys, "pose", path, "-o", tmp_path / "out")
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / f"{kind}_pose.json").read_text())
    overlay = cv2.imread(str(tmp_path / "out" / f"{kind}_pose.png"))
    assert overlay.shape[:2] == (doc["height"], doc["width"])
    if kind in ("grey", "rgba", "8000x6000"):
        assert len(doc["people"]) == 1
        nose_x, nose_y = doc["people"][0]["keypoints"][:2]
        if kind == "8000x6000":  # the astronaut's face, scaled from the 512 px original
            assert 170 * 8000 / 512 < nose_x < 285 * 8000 / 512
            assert 75 * 6000 / 512 < nose_y < 200 * 6000 / 512


def test_directory_without_videos(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no videos here")
    code, _, err = run(capsys, "extract", tmp_path / "empty", "-o", tmp_path / "x.pkl")
    assert_clean_error(code, err, "no video files")
    code, _, err = run(capsys, "pose", tmp_path / "empty", "-o", tmp_path / "out")
    assert_clean_error(code, err, "no images or videos")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_and_not_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"split": {}, "annotations": [_Evil()]}))
    code, _, err = run(capsys, "data", "info", evil)
    assert_clean_error(code, err, "refusing")
    assert not (tmp_path / "pwned").exists()


def test_outputs_never_overwrite_inputs(capsys, tmp_path, shared_data):
    img = tmp_path / "x_pose.png"
    cv2.imwrite(str(img), cv2.imread(str(shared_data / "images" / "astronaut.png")))
    before = img.read_bytes()
    code, _, err = run(capsys, "pose", img, "-o", tmp_path)  # would write x_pose_pose.png: fine
    assert code == 0 and img.read_bytes() == before
    code, _, err = run(capsys, "data", "merge", tmp_path / "a.pkl", "-o", tmp_path / "a.pkl")
    assert_clean_error(code, err, "")


def _class_folders(tmp_path, shared_data):
    videos = shared_data / "videos"
    for cls, name in (("basketball", "basketball_two_people.mp4"), ("hug", "ntu_A055_hugging.avi")):
        (tmp_path / "clips" / cls).mkdir(parents=True)
        os.symlink(videos / name, tmp_path / "clips" / cls / name)


@pytest.mark.slow
def test_extract_resumes_after_an_interruption(capsys, tmp_path, shared_data, monkeypatch):
    import posrec.extract as extract_module

    _class_folders(tmp_path, shared_data)
    real, calls = extract_module.clip_annotation, []

    def interrupted_on_second_clip(path, *a, **k):
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(extract_module, "clip_annotation", interrupted_on_second_clip)
    args = ["extract", tmp_path / "clips", "--labels-from-dirs", "--model", "lightning",
            "-o", tmp_path / "ds.pkl"]
    code, _, _ = run(capsys, *args)
    assert code == 130 and not (tmp_path / "ds.pkl").exists()
    assert len(list((tmp_path / "ds.pkl.parts").iterdir())) == 1  # the finished clip is kept
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert calls == ["basketball_two_people.mp4", "ntu_A055_hugging.avi", "ntu_A055_hugging.avi"]
    assert len(load_dataset(tmp_path / "ds.pkl")["annotations"]) == 2
    assert not (tmp_path / "ds.pkl.parts").exists()


@pytest.mark.slow
def test_extract_shards_and_merge(capsys, tmp_path, shared_data):
    """Two class folders of real clips -> two shards -> one labelled dataset."""
    _class_folders(tmp_path, shared_data)
    for i in (0, 1):
        code, _, err = run(capsys, "extract", tmp_path / "clips", "--labels-from-dirs",
                           "--shard", f"{i}/2", "-o", tmp_path / "part{i}.pkl")
        assert code == 0, err
    code, _, err = run(capsys, "data", "merge", tmp_path / "part0.pkl", tmp_path / "part1.pkl",
                       "-o", tmp_path / "all.pkl")
    assert code == 0, err
    ds = load_dataset(tmp_path / "all.pkl")
    with open(tmp_path / "all.pkl", "rb") as f:  # readable as PYSKL reads it: plain pickle
        raw = pickle.load(f)
    assert raw["classes"] == ds["classes"] == ["basketball", "hug"]
    by_name = {a["frame_dir"]: a for a in ds["annotations"]}
    bb, hug = by_name["basketball_two_people"], by_name["ntu_A055_hugging"]
    assert (bb["label"], hug["label"]) == (0, 1)
    assert bb["keypoint"].shape[1:] == (300, 17, 2) and bb["keypoint"].shape[0] >= 2
    assert hug["keypoint"].shape[1:] == (72, 17, 2) and hug["img_shape"] == (1080, 1920)
    assert hug["keypoint_score"].shape == hug["keypoint"].shape[:3]
    assert bb["layout"] == "coco17" and abs(bb["fps"] - 29.97) < 0.01


@pytest.mark.parametrize("content", [None, b"", b"not a video" * 100])
def test_console_script_prints_one_line_and_no_library_noise(tmp_path, content):
    """In a real process, OpenCV/FFmpeg's own log lines would surround ours: they must not."""
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "posrec.cli", "pose", str(path), "-o", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("posrec: error:"), proc.stderr


def test_show_without_a_display_says_so_and_still_writes(capsys, tmp_path, shared_data, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = run(capsys, "pose", shared_data / "images" / "camera.png", "--show", "-o", tmp_path)
    assert code == 0
    assert "no display found" in err
    assert (tmp_path / "camera_pose.png").exists() and (tmp_path / "camera_pose.json").exists()


# --- train / test / ensemble --------------------------------------------------------------------


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    from train_runs import ci_run, penn_pickle

    base = tmp_path_factory.getbasetemp()
    return ci_run(base)[0], penn_pickle(base)


def _test_args(ci, ckpt, *sets):
    from train_runs import CI_CONFIG

    run, penn = ci
    return ["test", CI_CONFIG, ckpt, "--set", f"data.source={penn}", "data.format=pickle",
            "data.train_per_class=3", "data.test_per_class=2", *sets]


@pytest.mark.slow
def test_test_refuses_inputs_the_checkpoint_was_not_trained_on(capsys, ci):
    last = ci[0] / "last.pt"  # joint stream, 32-frame clips, penn13
    for sets, words in [(["data.feats=[b]"], "feats ('b',) != ('j',)"),
                        (["data.clip_len=16"], "clip_len 16 != 32"),
                        (["data.normalize=person"], "normalize 'person' != 'image'"),
                        (["data.layout=coco17"], "layout")]:
        code, _, err = run(capsys, *_test_args(ci, last, *sets))
        assert_clean_error(code, err, words)
    assert not (ci[0] / "test_last").exists()  # nothing was written


@pytest.mark.slow
def test_test_refuses_a_checkpoint_selected_on_the_test_split(capsys, ci, tmp_path):
    import torch

    ck = torch.load(ci[0] / "best.pt", weights_only=True)
    torch.save({**ck, "selected_on": {**ck["selected_on"], "split": "test"}}, tmp_path / "x.pt")
    code, _, err = run(capsys, *_test_args(ci, tmp_path / "x.pt"))
    assert_clean_error(code, err, "was selected on split 'test'")
    # a checkpoint from before format 2 named best.pt was chosen on data.val_split, which then
    # defaulted to the test split
    old = {k: v for k, v in ck.items() if k not in ("format_version", "selected_on")}
    old["config"] = {**ck["config"], "data": {**ck["config"]["data"], "val_split": None}}
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / "best.pt")
    code, _, err = run(capsys, *_test_args(ci, tmp_path / "old" / "best.pt"))
    assert_clean_error(code, err, "was selected on split 'test'")
    assert not list(tmp_path.glob("*/test_*"))


@pytest.mark.slow
def test_test_writes_beside_the_checkpoint_and_never_over_a_result(capsys, ci, tmp_path):
    import shutil

    shutil.copy(ci[0] / "last.pt", tmp_path / "last.pt")
    code, out, err = run(capsys, *_test_args(ci, tmp_path / "last.pt"))
    assert code == 0, err
    m = json.loads((tmp_path / "test_last" / "metrics.json").read_text())
    assert m["checkpoint"] == str(tmp_path / "last.pt") and m["split"] == "test"
    assert f"top1={m['top1']:.4f}" in out and m["num_samples"] == 30
    code, _, err = run(capsys, *_test_args(ci, tmp_path / "last.pt"))
    assert_clean_error(code, err, "already holds a result")
    # another split of the dataset: its own folder
    code, _, err = run(capsys, *_test_args(ci, tmp_path / "last.pt"), "--split", "train")
    assert code == 0, err
    assert json.loads((tmp_path / "train_last" / "metrics.json").read_text())["split"] == "train"
