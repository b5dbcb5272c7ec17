"""Video reading/writing on the real clips in ../shared/data/videos."""

import shutil
import warnings

import cv2
import numpy as np
import pytest

from posrec.errors import PosrecError
from posrec.io.video import (VIDEO_EXTS, VideoDecodeWarning, iter_video_files, open_camera,
                             open_video, write_video)


@pytest.fixture(scope="module")
def basketball(shared_data):
    return shared_data / "videos" / "basketball_two_people.mp4"


def _one_line_error(fn, *args) -> str:
    with pytest.raises(PosrecError) as info:
        fn(*args)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


def test_real_video_metadata_and_streaming(basketball):
    with open_video(basketball) as video:
        assert video.fps == pytest.approx(29.97, abs=0.01)
        assert (video.width, video.height) == (426, 240)
        assert video.frame_count == 300
        first = next(video)
        assert video.frames_read == 1  # lazy: one frame decoded per step
        assert first.shape == (240, 426, 3) and first.dtype == np.uint8
        n = 1 + sum(1 for _ in video)
    assert n == 300 and video.frames_read == 300
    # RGB, not OpenCV's BGR: the same picture as OpenCV decodes, channels reversed (the two
    # decoders' YUV->RGB conversions round differently by a level or two).
    ok, bgr = cv2.VideoCapture(str(basketball)).read()
    diff = np.abs(first.astype(int) - bgr[:, :, ::-1]).mean()
    assert ok and diff < 2 < np.abs(first.astype(int) - bgr).mean()


def test_batches(basketball):
    video = open_video(basketball)
    sizes = [b.shape for b in video.batches(64)]
    assert sizes == [(64, 240, 426, 3)] * 4 + [(44, 240, 426, 3)]
    assert video.frames_read == 300
    with pytest.raises(ValueError):
        next(open_video(basketball).batches(0))


@pytest.mark.parametrize("name, count", [("sports2d_demo.mp4", 230), ("ntu_A055_hugging.avi", 72)])
def test_truncated_video_yields_frames_and_one_warning(shared_data, tmp_path, name, count):
    # A real clip cut to half its bytes (these two keep their index at the start of the file).
    data = (shared_data / "videos" / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        video = open_video(cut)
        assert video.frame_count == count
        n = sum(1 for _ in video)
    assert 0 < n < count
    decode_warnings = [w for w in caught if issubclass(w.category, VideoDecodeWarning)]
    assert len(decode_warnings) == 1
    assert f"frame {n} of {count}" in str(decode_warnings[0].message)


def test_truncated_mp4_without_index_is_a_clear_error(basketball, tmp_path):
    # basketball_two_people.mp4 keeps its moov index at the end: half the bytes can't be opened.
    data = basketball.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert "cannot open" in _one_line_error(open_video, cut)


def test_bad_inputs_are_one_line_errors(tmp_path):
    assert "not found" in _one_line_error(open_video, tmp_path / "missing.mp4")
    assert "directory" in _one_line_error(open_video, tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in _one_line_error(open_video, empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    assert "cannot open" in _one_line_error(open_video, text)


def test_missing_camera_is_a_clear_error():
    assert "camera 99" in _one_line_error(open_camera, 99)


def test_write_video_round_trip(basketball, tmp_path):
    out = tmp_path / "sub" / "out.mp4"
    with open_video(basketball) as video, write_video(out, video.fps, (video.width, video.height)) as vw:
        for frame in video.batches(10).__next__():
            vw.write(frame)
    assert vw.frames_written == 10
    back = open_video(out)
    assert (back.width, back.height) == (426, 240)
    assert back.fps == pytest.approx(29.97, abs=0.01)
    frames = list(back)
    assert len(frames) == 10
    assert [p.name for p in out.parent.iterdir()] == ["out.mp4"]  # no temp file left behind
    with pytest.raises(ValueError):
        with write_video(tmp_path / "bad.mp4", 30, (426, 240)) as vw:
            vw.write(np.zeros((240, 427, 3), np.uint8))


def test_write_video_is_atomic(basketball, tmp_path):
    target = tmp_path / "keep.mp4"
    shutil.copy(basketball, target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with write_video(target, 30.0, (64, 48)) as vw:
            vw.write(np.zeros((48, 64, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]
    # Nothing written: error, and the old file stays.
    with pytest.raises(PosrecError):
        with write_video(target, 30.0, (64, 48)):
            pass
    assert target.read_bytes() == before
    with pytest.raises(PosrecError, match="use one of"):
        with write_video(tmp_path / "x.gif", 30.0, (8, 8)):
            pass


def test_iter_video_files(shared_data, tmp_path):
    real = iter_video_files(shared_data / "videos")
    assert [p.name for p in real] == sorted(p.name for p in (shared_data / "videos").iterdir()
                                            if p.suffix.lower() in VIDEO_EXTS)
    # Whatever the folder holds today (it grows): at least the clips MANIFEST.md lists.
    assert {"basketball_two_people.mp4", "ntu_A055_hugging.avi", "sports2d_demo.mp4"} <= {p.name for p in real}
    for name in ["b.AVI", "a.mp4", "notes.txt", ".a.mp4.tmp.mp4"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "deeper").mkdir()
    (tmp_path / "deeper" / "c.webm").write_bytes(b"x")
    assert [p.name for p in iter_video_files(tmp_path)] == ["a.mp4", "b.AVI"]
    assert [p.name for p in iter_video_files(tmp_path, recursive=True)] == ["a.mp4", "b.AVI", "c.webm"]
    # Explicit files pass through whatever their name; duplicates are dropped.
    listed = iter_video_files([tmp_path / "notes.txt", tmp_path, tmp_path / "a.mp4"])
    assert [p.name for p in listed] == ["notes.txt", "a.mp4", "b.AVI"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no video files" in _one_line_error(iter_video_files, empty)
    assert "not found" in _one_line_error(iter_video_files, [tmp_path / "nope.mp4"])
