"""A first try at int8 MultiPose on ONNX Runtime: speed and how far the raw outputs move.

    python benchmarks/try_int8.py

Static quantisation (QDQ, per-channel int8 weights, uint8 activations) calibrated on 16 frames
of ``videos/sports2d_demo.mp4`` scaled to 640x480 (a 192x256 input); then the fp32 and int8
networks at one thread, batch 8, and the largest difference of each raw head output. Not used by
posrec: RESULTS.md says why.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posrec.paths import shared_data_dir  # noqa: E402


def main() -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from posrec.estimate.movenet import load_movenet
    from posrec.estimate.onnx_backend import export
    from posrec.estimate.preprocess import resize_pad_to_32
    from posrec.io.video import open_video

    frames = []
    with open_video(shared_data_dir() / "videos" / "sports2d_demo.mp4") as reader:
        for i, (_, rgb) in enumerate(reader.timed()):
            if i % 10 == 0:
                frames.append(resize_pad_to_32(cv2.resize(rgb, (640, 480)), 256)[0])
            if len(frames) == 16:
                break

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.it = iter(frames)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"images": x[None]}

    model = load_movenet("multipose")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre, int8 = (str(Path(tmp) / n) for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        Path(fp32).write_bytes(export(model, (256, 256)))
        quant_pre_process(fp32, pre, skip_symbolic_shape=True)
        quantize_static(pre, int8, Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        sessions = {n: ort.InferenceSession(p, options) for n, p in (("fp32", fp32), ("int8", int8))}
        x = {"images": np.stack(frames[:8])}

        def ms_per_frame(name: str) -> float:
            for _ in range(2):
                sessions[name].run(None, x)
            t = time.perf_counter()
            for _ in range(5):
                sessions[name].run(None, x)
            return (time.perf_counter() - t) / 40 * 1000

        times = {n: ms_per_frame(n) for n in ("fp32", "int8", "fp32")}  # fp32 last: the later of two
        a, b = sessions["fp32"].run(None, x), sessions["int8"].run(None, x)
    print(f"ms per frame, 1 thread, batch 8: fp32 {times['fp32']:.1f}, int8 {times['int8']:.1f} "
          f"({times['fp32'] / times['int8']:.2f}x)")
    for name, p, q in zip(sorted(model.heads), a, b):
        print(f"{name:10} max |fp32 - int8| {np.abs(p - q).max():8.3f}   (fp32 range {p.min():.1f}..{p.max():.1f})")


if __name__ == "__main__":
    main()
