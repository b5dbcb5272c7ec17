"""MoveNet on ONNX Runtime (the default on the CPU) gives PyTorch's poses, and its export cache
behaves: one file per weight file, reused, and a cache that cannot be written is no error."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from posrec.errors import PosrecError
from posrec.estimate import onnx_backend
from posrec.estimate.estimators import MoveNetEstimator, load_estimator
from posrec.extract import estimator_settings
from posrec.io.images import read_image

pytestmark = pytest.mark.skipif(not onnx_backend.available(), reason="onnxruntime not installed")


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    """The two test photos and the four COCO sample images (1 to 5 people each)."""
    paths = sorted((shared_data / "images").glob("*.png"))
    paths += sorted((shared_data / "keypoints" / "coco").glob("*.jpg"))
    return [read_image(p) for p in paths]


@pytest.mark.parametrize("variant, options", [
    ("multipose", {}),                      # "auto" input size: probes several sizes
    ("multipose", {"input_size": 640}),
    ("lightning", {"follow_person": True}),  # the video path, crop by crop
    ("thunder", {}),
])
def test_onnxruntime_gives_pytorchs_poses_on_real_images(frames, variant, options):
    fast = MoveNetEstimator(variant, backend="onnxruntime", **options)
    ref = MoveNetEstimator(variant, backend="torch", **options)
    assert fast.network is not None and ref.network is None
    people = 0
    for frame in frames:
        # each photo on its own, twice: a follower's second pass runs on the crop around its
        # first pose, given to both (a crop 1e-5 off resamples the pixels and moves scores 1e-3)
        fast.reset(), ref.reset()
        fast([frame]), ref([frame])
        ref._crop = fast._crop
        a, b = fast([frame])[0], ref([frame])[0]
        assert len(a.keypoints) == len(b.keypoints)
        people += len(a.keypoints)
        # float32 rounding of the raw heads: a small fraction of a pixel, never a different peak
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
        np.testing.assert_allclose(a.box_scores, b.box_scores, atol=1e-4)
    assert people >= len(frames)


def test_auto_backend_is_onnxruntime_on_the_cpu_and_torch_elsewhere():
    assert load_estimator("lightning").network is not None
    assert load_estimator("lightning", backend="torch").network is None
    # the backend that runs is part of the estimator's settings, hence of extract's resume key
    assert estimator_settings(load_estimator("lightning"))["backend"] == "onnxruntime"
    assert estimator_settings(load_estimator("lightning", backend="torch"))["backend"] == "torch"
    with pytest.raises(PosrecError, match="unknown backend 'tensorrt'"):
        load_estimator("lightning", backend="tensorrt")


def test_export_is_cached_once_per_weight_file(monkeypatch, tmp_path, frames):
    monkeypatch.setenv("POSREC_CACHE_DIR", str(tmp_path / "cache"))
    MoveNetEstimator("lightning", backend="onnxruntime")([frames[0]])
    cached = sorted((tmp_path / "cache").glob("movenet_lightning-*.onnx"))
    assert len(cached) == 1 and cached[0].stat().st_size > 1_000_000
    stamp = cached[0].stat().st_mtime_ns

    def no_export(*args):
        raise AssertionError("exported again although the cache holds the graph")
    monkeypatch.setattr(onnx_backend, "export", no_export)
    poses = MoveNetEstimator("lightning", backend="onnxruntime")([frames[0]])[0]
    assert len(poses.keypoints) == 1
    assert cached[0].stat().st_mtime_ns == stamp


def test_a_cache_that_cannot_be_written_exports_in_memory(monkeypatch, tmp_path, frames):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("POSREC_CACHE_DIR", str(blocker))
    poses = MoveNetEstimator("lightning", backend="onnxruntime")([frames[0]])[0]
    assert len(poses.keypoints) == 1
    assert blocker.read_text() == "a file where the cache folder should be"


def test_an_export_that_fails_falls_back_to_pytorch_under_auto_only(monkeypatch, tmp_path, frames):
    monkeypatch.setenv("POSREC_CACHE_DIR", str(tmp_path / "empty_cache"))

    def broken_export(*args):
        raise RuntimeError("Exporting the operator 'aten::pad' to ONNX opset 17 is not supported")
    monkeypatch.setattr(onnx_backend, "export", broken_export)
    auto = MoveNetEstimator("lightning")
    with pytest.warns(UserWarning, match="falling back to PyTorch"):
        poses = auto([frames[0]])[0]
    assert auto.network is None and len(poses.keypoints) == 1
    explicit = MoveNetEstimator("lightning", backend="onnxruntime")
    with pytest.raises(PosrecError, match=r"cannot run MoveNet on ONNX Runtime \(Exporting the "
                                          r"operator .*\); --backend torch runs it in PyTorch"):
        explicit([frames[0]])


def test_a_damaged_cache_file_is_exported_again(monkeypatch, tmp_path, frames):
    monkeypatch.setenv("POSREC_CACHE_DIR", str(tmp_path / "cache"))
    good = MoveNetEstimator("lightning", backend="onnxruntime")([frames[0]])[0]
    cached = next((tmp_path / "cache").glob("movenet_lightning-*.onnx"))
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    cached.write_bytes(bytes(data))
    again = MoveNetEstimator("lightning", backend="onnxruntime")([frames[0]])[0]
    np.testing.assert_array_equal(again.keypoints, good.keypoints)
    assert cached.read_bytes() != bytes(data)  # replaced by a fresh export


# --- the action model on ONNX Runtime (what `posrec label` runs by default) -----------------

class _Replay:
    """An estimator that estimates once and then replays the same poses: two labelling runs
    of one video then differ only in their action model."""

    def __init__(self, estimator):
        self.estimator, self.recorded, self.replaying = estimator, [], False

    def reset(self):
        if not self.replaying:
            self.estimator.reset()

    def __call__(self, frames):
        if self.replaying:
            return self.recorded.pop(0)
        out = self.estimator(frames)
        self.recorded.append(out)
        return out


@pytest.mark.slow
def test_the_action_model_on_onnxruntime_labels_as_pytorch_does(monkeypatch, tmp_path):
    from posrec.action_model import load_action_model
    from posrec.label import label_video

    monkeypatch.setenv("POSREC_CACHE_DIR", str(tmp_path / "cache"))
    sample = Path(__file__).resolve().parents[1] / "data" / "samples" / "sports2d_walk.mp4"
    est = _Replay(load_estimator("multipose"))
    fast = load_action_model(backend="onnxruntime")
    ref = load_action_model(backend="torch")
    assert (fast.backend, ref.backend) == ("onnxruntime", "torch")
    a = label_video(sample, model=fast, estimator=est, progress=False)
    est.replaying = True
    b = label_video(sample, model=ref, estimator=est, progress=False)
    assert len(a.windows) >= 8 and a.probs.shape == b.probs.shape  # 9 windows of 3 people
    assert np.abs(a.probs - b.probs).max() < 1e-4
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=False, atol=1e-4)
    assert len(list((tmp_path / "cache").glob("module-*.onnx"))) == 1


def _stgcn(seed: int):
    import torch

    from posrec.models import build_model

    torch.manual_seed(seed)
    return build_model("stgcn++", 5, "penn13", in_channels=3, num_person=1, base_channels=8).eval()


def test_a_recogniser_is_exported_once_per_set_of_weights(monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("POSREC_CACHE_DIR", str(tmp_path / "cache"))
    x = torch.randn(3, 1, 40, 13, 3)  # synthetic: the cache's behaviour, not accuracy
    net = _stgcn(0)
    first = onnx_backend.OnnxModule(net)
    assert torch.allclose(first(x), net(x).detach(), atol=1e-4)
    assert torch.allclose(first(x[:1]), net(x[:1]).detach(), atol=1e-4)  # batch size is free

    def no_export(*args):
        raise AssertionError("exported again although the cache holds the graph")
    monkeypatch.setattr(onnx_backend.OnnxModule, "_export", no_export)
    again = onnx_backend.OnnxModule(_stgcn(0))
    assert again.key == first.key and torch.allclose(again(x), first(x))
    other = onnx_backend.OnnxModule(_stgcn(1))  # other weights: another graph
    assert other.key != first.key
    with pytest.raises(PosrecError, match="exported again"):  # the export's error, in one line
        other(x)


def test_a_graph_that_differs_from_pytorch_is_never_used(monkeypatch, tmp_path):
    import torch

    from posrec.action_model import load_action_model

    monkeypatch.setenv("POSREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_backend.OnnxModule, "_run",
                        staticmethod(lambda session, x: np.zeros((len(x), 27), np.float32)))
    auto = load_action_model()
    x = torch.randn(2, 1, 40, 13, auto.card["in_channels"])  # synthetic: only the check is under test
    with pytest.warns(UserWarning, match="differs from PyTorch.*falling back to PyTorch"):
        got = auto.probabilities(x)
    assert auto.backend == "torch"
    assert np.allclose(got, load_action_model(backend="torch").probabilities(x), atol=1e-6)
    explicit = load_action_model(backend="onnxruntime")
    with pytest.raises(PosrecError, match="action model posrec-actions-27 on ONNX Runtime "
                                          "differs from PyTorch by"):
        explicit.probabilities(x)
