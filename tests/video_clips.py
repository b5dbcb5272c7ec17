"""Short test clips cut from the real videos of ../shared/data, re-encoded with PyAV where a test
needs timestamps or rotation metadata that no shared clip has."""

from fractions import Fraction

import av
import cv2

from posrec.io.video import open_video


def real_frames(path, n, size=None):
    """The first ``n`` RGB frames of a real clip, resized to ``size`` (w, h) if given."""
    with open_video(path) as video:
        frames = [f for _, f in zip(range(n), video)]
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames] if size else frames


def make_clip(path, frames, pts_ms=None, rotation=0, fps=30):
    """An H.264 clip of ``frames``: ``pts_ms`` gives each frame's time in milliseconds (irregular:
    a variable-frame-rate clip); ``rotation`` is a display-matrix rotation in degrees
    counter-clockwise, as phones record portrait video."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = pts_ms[i] if pts_ms is not None else round(i * 1000 / fps)
            frame.time_base = Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
