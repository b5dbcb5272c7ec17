"""`posrec pose` as a new user meets it, through the command line, on real clips and images.

Short test clips are cut from the real videos of ../shared/data (re-encoded with PyAV where a
test needs timestamps or rotation metadata that no shared clip has).
"""

import json
import re
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from posrec.cli import main
from posrec.io.video import open_video, write_video
from cli_helpers import one_error_line, run
from video_clips import make_clip, real_frames


def keypoints(doc_frame):
    return [np.array(p["keypoints"]).reshape(17, 3) for p in doc_frame["people"]]


@pytest.fixture(scope="module")
def basketball(shared_data):
    return shared_data / "videos" / "basketball_two_people.mp4"


def test_default_finds_everyone_writes_h264_and_times_from_pts(capsys, tmp_path, basketball):
    # Irregular times (a variable-frame-rate clip): gaps of 1, 2 and 4 frame periods.
    pts = np.cumsum([0] + [33, 67, 33, 133, 33, 33, 67, 33, 33, 133, 33, 33, 33, 67, 33] * 2)[:30]
    clip = make_clip(tmp_path / "vfr.mp4", real_frames(basketball, 30), pts_ms=pts.tolist())
    code, out, err = run(capsys, "pose", clip, "-o", tmp_path / "out")
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "vfr_pose.json").read_text())
    assert [f["t"] for f in doc["frames"]] == pytest.approx(pts / 1000, abs=1e-6)
    # The default (MultiPose) finds both players on most frames, with two tracks.
    people = [len(f["people"]) for f in doc["frames"]]
    assert np.mean([n >= 2 for n in people]) > 0.8, people
    assert len({p["track_id"] for f in doc["frames"] for p in f["people"]}) >= 2
    with av.open(str(tmp_path / "out" / "vfr_pose.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.format.name) == ("h264", "yuv420p")
        times = [float(f.time) for f in c.decode(s)]
    assert len(times) == len(doc["frames"]) == 30
    assert times == pytest.approx(pts / 1000, abs=1e-3)  # the overlay keeps the clock


def test_help_says_when_to_pick_a_single_person_model(capsys):
    with pytest.raises(SystemExit):
        main(["pose", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: multipose" in text and "single person" in text and "--no-video" in text


def test_rotated_phone_clip_gives_portrait_outputs_on_the_person(capsys, tmp_path, shared_data):
    # The real portrait clip, stored sideways with a display matrix that turns it upright (what a
    # phone records); the same frames stored upright are the reference.
    portrait = real_frames(shared_data / "videos" / "pose2sim_single_cam01.mp4", 8, (540, 960))
    upright = make_clip(tmp_path / "upright.mp4", portrait)
    rotated = make_clip(tmp_path / "rotated.mp4", [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in portrait],
                        rotation=90)
    for clip in (upright, rotated):
        code, _, err = run(capsys, "pose", clip, "-o", tmp_path / "out")
        assert code == 0, err
    ref = json.loads((tmp_path / "out" / "upright_pose.json").read_text())
    doc = json.loads((tmp_path / "out" / "rotated_pose.json").read_text())
    assert (doc["width"], doc["height"], doc["rotation"]) == (540, 960, 90)
    with open_video(tmp_path / "out" / "rotated_pose.mp4") as overlay:
        assert (overlay.width, overlay.height) == (540, 960)
    for f_ref, f in zip(ref["frames"], doc["frames"]):
        a, b = keypoints(f_ref)[0], keypoints(f)[0]  # the highest-scoring person: the athlete
        ok = (a[:, 2] > 0.3) & (b[:, 2] > 0.3)
        assert ok.sum() >= 10
        err = np.linalg.norm(a[ok, :2] - b[ok, :2], axis=1)
        assert np.median(err) < 0.01 * 960 and err.max() < 0.04 * 960
        assert b[0, 1] < b[15, 1] and b[0, 1] < b[16, 1]  # nose above the ankles: upright


def test_overlay_size_and_no_video(capsys, tmp_path, shared_data):
    clip = tmp_path / "hd.mp4"
    with write_video(clip, 30, (1920, 1080)) as vw:
        for f in real_frames(shared_data / "videos" / "ntu_A055_hugging.avi", 6):
            vw.write(f)
    code, _, err = run(capsys, "pose", clip, "--overlay-size", "720p", "-o", tmp_path / "small")
    assert code == 0, err
    with open_video(tmp_path / "small" / "hd_pose.mp4") as overlay:
        assert (overlay.width, overlay.height) == (1280, 720) and sum(1 for _ in overlay) == 6
    doc = json.loads((tmp_path / "small" / "hd_pose.json").read_text())
    assert (doc["width"], doc["height"]) == (1920, 1080)  # keypoints stay in video pixels
    code, out, err = run(capsys, "pose", clip, "--no-video", "-o", tmp_path / "json")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "json").iterdir()) == ["hd_pose.json"]
    code, _, err = run(capsys, "pose", clip, "--overlay-size", "big", "-o", tmp_path / "x")
    one_error_line(code, err, "--overlay-size")


def test_inputs_with_the_same_stem_keep_all_outputs(capsys, tmp_path, shared_data, basketball):
    astronaut = cv2.imread(str(shared_data / "images" / "astronaut.png"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "shot.jpg"), astronaut)
    cv2.imwrite(str(tmp_path / "b" / "shot.png"), cv2.imread(str(shared_data / "images" / "camera.png")))
    make_clip(tmp_path / "a" / "shot.mp4", real_frames(basketball, 3))
    code, out, err = run(capsys, "pose", tmp_path / "a" / "shot.jpg", tmp_path / "b" / "shot.png",
                         tmp_path / "a" / "shot.mp4", "-o", tmp_path / "out")
    assert code == 0, err
    jsons = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    assert jsons == ["shot_jpg_pose.json", "shot_mp4_pose.json", "shot_png_pose.json"]
    docs = {n: json.loads((tmp_path / "out" / n).read_text()) for n in jsons}
    assert docs["shot_jpg_pose.json"]["image"].endswith("a/shot.jpg")
    assert docs["shot_png_pose.json"]["image"].endswith("b/shot.png")
    assert len(docs["shot_mp4_pose.json"]["frames"]) == 3
    # The same name and extension in two folders: the folder tells them apart.
    cv2.imwrite(str(tmp_path / "b" / "shot.jpg"), astronaut)
    code, _, err = run(capsys, "pose", tmp_path / "a" / "shot.jpg", tmp_path / "b" / "shot.jpg",
                       "-o", tmp_path / "out2")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out2").glob("*.json")) == ["a_shot_jpg_pose.json",
                                                                        "b_shot_jpg_pose.json"]


def test_folder_tree_is_searched_and_mirrored(capsys, tmp_path, shared_data):
    (tmp_path / "tree" / "sub" / "deeper").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "tree" / "sub" / "deeper" / "astro.png"),
                cv2.imread(str(shared_data / "images" / "astronaut.png")))
    code, out, err = run(capsys, "pose", tmp_path / "tree", "-o", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "sub" / "deeper" / "astro_pose.json").exists()
    assert (tmp_path / "out" / "sub" / "deeper" / "astro_pose.png").exists()


@pytest.mark.parametrize("args, pattern", [
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--threads", "-1"], "--threads must be a positive number"),
    (["--threads", "0"], "--threads must be a positive number"),
    (["--batch", "-3"], "--batch must be a positive number"),
])
def test_bad_options_are_one_line_and_exit_2(capsys, tmp_path, shared_data, args, pattern):
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    code, _, err = run(capsys, "pose", shared_data / "images" / "astronaut.png", *args, "-o", tmp_path / "o")
    one_error_line(code, err, pattern)


def test_output_folder_that_is_a_file(capsys, tmp_path, shared_data):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    code, _, err = run(capsys, "pose", shared_data / "images" / "astronaut.png", "-o", existing)
    one_error_line(code, err, "that is a file")
    assert existing.read_text() == "keep me"


def test_missing_camera_prints_only_posrecs_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "posrec.cli", "pose", "--camera", "0", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("posrec: error: cannot open camera 0"), proc.stderr


def test_json_numbers_carry_no_float32_noise(capsys, tmp_path, shared_data, basketball):
    make_clip(tmp_path / "clip.mp4", real_frames(basketball, 4))
    code, _, err = run(capsys, "pose", shared_data / "images" / "astronaut.png", tmp_path / "clip.mp4",
                       "--model", "lightning", "-o", tmp_path / "out")
    assert code == 0, err
    for name in ("astronaut_pose.json", "clip_pose.json"):
        text = (tmp_path / "out" / name).read_text()
        people_text = text[text.index('"people"' if name.startswith("astro") else '"frames"'):]
        assert not re.search(r"\d\.\d{7,}", people_text), re.search(r"\d\.\d{7,}", people_text)
        doc = json.loads(text)
        people = doc["people"] if "people" in doc else [p for f in doc["frames"] for p in f["people"]]
        values = [v for p in people for v in p["keypoints"] + p["bbox"]]
        assert values and all(v == round(v, 2) for v in values)


def test_warnings_print_above_the_progress_bar(tmp_path, shared_data):
    """A truncated clip's warning arrives while the bar is drawn: it must get its own line."""
    data = (shared_data / "videos" / "ntu_A055_hugging.avi").read_bytes()
    half = tmp_path / "half.avi"
    half.write_bytes(data[: len(data) // 2])
    proc = subprocess.run([sys.executable, "-m", "posrec.cli", "pose", str(half), "--model", "lightning",
                           "--no-video", "-o", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = re.split(r"[\r\n]", proc.stderr)
    warned = [l for l in lines if "posrec: warning:" in l]
    assert len(warned) == 1 and warned[0].startswith("posrec: warning:") and "frame 26 of 72" in warned[0], proc.stderr
    assert any("half_pose" in l and "frame" in l for l in lines)  # the bar was there


def test_overlay_marks_are_sized_to_each_person(capsys, tmp_path, shared_data):
    """The real astronaut photo pasted at 300 px and at 1000 px on the same 2048 px canvas
    (synthetic composition): the marks' ink covers the same share of each person's box, so a
    small person is not buried under marks sized for the frame (those covered 29 % of the small
    box against 7.5 % of the big one)."""
    astro = cv2.imread(str(shared_data / "images" / "astronaut.png"))
    share = {}
    for size in (300, 1000):
        canvas = np.full((2048, 2048, 3), 40, np.uint8)
        canvas[100:100 + size, 100:100 + size] = cv2.resize(astro, (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp_path / f"p{size}.png"), canvas)
        code, _, err = run(capsys, "pose", tmp_path / f"p{size}.png", "-o", tmp_path / "out")
        assert code == 0, err
        (person,) = json.loads((tmp_path / "out" / f"p{size}_pose.json").read_text())["people"]
        overlay = cv2.imread(str(tmp_path / "out" / f"p{size}_pose.png"))
        ink = (np.abs(overlay.astype(int) - canvas).max(-1) > 30).sum()
        share[size] = ink / (person["bbox"][2] * person["bbox"][3])
    assert 0.5 < share[300] / share[1000] < 2, share


def test_multipose_follow_is_multipose_on_photos_and_follows_in_videos(capsys, tmp_path, shared_data,
                                                                       basketball):
    photos = [shared_data / "images" / f"{n}.png" for n in ("astronaut", "camera")]
    make_clip(tmp_path / "clip.mp4", real_frames(basketball, 12))
    for model in ("multipose", "multipose-follow"):
        code, _, err = run(capsys, "pose", *photos, tmp_path / "clip.mp4", "--model", model,
                           "--no-video", "-o", tmp_path / model)
        assert code == 0, err
    for name in ("astronaut_pose.json", "camera_pose.json"):  # no crop carried from photo to photo
        ours, theirs = (json.loads((tmp_path / m / name).read_text())["people"]
                        for m in ("multipose-follow", "multipose"))
        assert ours == theirs
    frames = json.loads((tmp_path / "multipose-follow" / "clip_pose.json").read_text())["frames"]
    assert len(frames) == 12 and all(len(f["people"]) == 2 for f in frames)  # both players, throughout
