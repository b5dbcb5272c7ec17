"""Video reading/writing on the real clips in ../shared/data/videos."""

import itertools
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


# --- PyAV: H.264 output, timestamps, rotation, the OpenCV fallback ---------------------------

import av  # noqa: E402

import posrec.io.video as video_module  # noqa: E402
import posrec.io.video_write as video_write_module  # noqa: E402
from posrec.io.video import VideoEncodeWarning  # noqa: E402
from video_clips import make_clip  # noqa: E402


def _real_frames(path, n):
    with open_video(path) as video:
        return [f for _, f in zip(range(n), video)]


def test_written_video_is_h264_mp4_with_index_first(basketball, tmp_path):
    frames = _real_frames(basketball, 25)
    out = tmp_path / "out.mp4"
    with write_video(out, 29.97, (426, 240)) as vw:
        for f in frames:
            vw.write(f)
    assert vw.codec == "h264"
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.format.name) == ("h264", "yuv420p")
        assert sum(1 for _ in c.decode(s)) == 25
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    back = _real_frames(out, 25)
    assert np.abs(back[10].astype(int) - frames[10]).mean() < 4  # the same picture, lossy


def test_odd_frame_size_drops_the_last_row_and_column(basketball, tmp_path):
    frame = _real_frames(basketball, 1)[0][:239, :425]
    with write_video(tmp_path / "odd.mp4", 30, (425, 239)) as vw:
        vw.write(frame)
    with open_video(tmp_path / "odd.mp4") as back:
        assert (back.width, back.height) == (424, 238)


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_irregular_timestamps_come_from_pts(basketball, tmp_path, decoder):
    pts = [0, 33, 66, 150, 183, 400, 433, 466, 700, 733, 1000, 1033]
    clip = make_clip(tmp_path / "vfr.mp4", _real_frames(basketball, len(pts)), pts_ms=pts)
    with open_video(clip, decoder) as video:
        assert video.backend == decoder
        times = [t for t, _ in video.timed()]
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-6)
    # Written back with those times, the overlay keeps them.
    with open_video(clip) as video, write_video(tmp_path / "again.mp4", video.fps,
                                                (video.width, video.height)) as vw:
        for t, f in video.timed():
            vw.write(f, t)
    with open_video(tmp_path / "again.mp4") as back:
        assert [t for t, _ in back.timed()] == pytest.approx([p / 1000 for p in pts], abs=1e-4)


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_rotation_metadata_gives_the_displayed_orientation(shared_data, tmp_path, decoder):
    # The real portrait clip, stored sideways (landscape) with a display matrix that turns it back.
    portrait = [cv2.resize(f, (270, 480)) for f in _real_frames(shared_data / "videos" / "pose2sim_single_cam01.mp4", 3)]
    stored = [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in portrait]
    clip = make_clip(tmp_path / "phone.mp4", stored, rotation=90)
    with open_video(clip, decoder) as video:
        assert (video.width, video.height, video.rotation) == (270, 480, 90)
        frames = list(video)
    assert frames[0].shape == (480, 270, 3)
    assert np.abs(frames[1].astype(int) - portrait[1]).mean() < 4


def test_opencv_fallback_without_pyav(basketball, tmp_path, monkeypatch):
    """As on a machine where `import av` fails: reading and writing still work, through OpenCV,
    and writing says once that the output is MPEG-4 Part 2."""
    monkeypatch.setattr(video_module, "av", None)
    monkeypatch.setattr(video_write_module, "av", None)
    monkeypatch.setattr(video_write_module, "_warned_fallback", False)
    with open_video(basketball, "pyav") as video:  # asked for PyAV, which is not there
        assert video.backend == "opencv" and video.frame_count == 300
        timed = list(itertools.islice(video.timed(), 3))
    assert [round(t, 4) for t, _ in timed] == [0.0, 0.0334, 0.0667]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a.mp4", "b.mp4"):
            with write_video(tmp_path / name, 30, (426, 240)) as vw:
                for _, f in timed:
                    vw.write(f)
            assert vw.codec == "mp4v"
    assert sum(issubclass(w.category, VideoEncodeWarning) for w in caught) == 1
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


@pytest.mark.parametrize("broken, other", [("pyav", "opencv"), ("opencv", "pyav")])
def test_a_decoder_that_cannot_open_a_file_hands_it_to_the_other(basketball, monkeypatch, broken, other):
    if broken == "pyav":
        def refuse(*a, **k):
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

        monkeypatch.setattr(video_module.av, "open", refuse)
    else:
        unopened = cv2.VideoCapture
        monkeypatch.setattr(video_module.cv2, "VideoCapture", lambda *a: unopened())  # never opens
    with open_video(basketball, broken) as video:
        assert video.backend == other and sum(1 for _ in video) == 300


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_truncated_video_warns_once_with_either_decoder(shared_data, tmp_path, decoder):
    data = (shared_data / "videos" / "ntu_A055_hugging.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_video(cut, decoder) as video:
            assert video.backend == decoder
            times = [t for t, _ in video.timed()]
    assert len(times) == 26 and times[-1] == pytest.approx(25 / 30)
    msgs = [str(w.message) for w in caught if issubclass(w.category, VideoDecodeWarning)]
    assert msgs == [f"{cut}: decoding stopped at frame 26 of 72 (truncated or corrupt video); "
                    "using the 26 frames before it"]


def test_unknown_decoder_is_a_clear_error(basketball):
    assert "unknown video decoder" in _one_line_error(open_video, basketball, "gstreamer")
