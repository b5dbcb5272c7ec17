"""MoveNet's network on ONNX Runtime: the same weights, two to three times as fast on a CPU.

PyTorch's eager CPU convolutions spend much of MoveNet's small MobileNetV2 in per-op overhead;
ONNX Runtime fuses the graph (conv + bias + ReLU6, depthwise kernels) and runs network and
decoding together 1.6-3.1x faster (benchmarks/RESULTS.md, "MoveNet on ONNX Runtime"). Only the network runs there: the
decoding stays in :class:`~posrec.estimate.movenet.MoveNet`, so outputs match the PyTorch path
to float32 rounding (about 1e-4 on the raw head outputs).

The graph is exported from the loaded PyTorch model once per weight file and cached under
``$POSREC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/posrec`` or ``~/.cache/posrec``), keyed by the
weights' sha256 and the exporter's version; where the cache cannot be written it is exported in
memory each time (about 2 s). The cached file is checked against the sha256 stored beside it.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write, file_sha256

# Bump when the exported graph changes (inputs, outputs or the export itself).
EXPORT_VERSION = 1


def available() -> bool:
    """Whether ONNX Runtime and the exporter's ``onnx`` package can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    env = os.environ.get("POSREC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "posrec"


class _Features(torch.nn.Module):
    """``MoveNet.features`` with its outputs as a tuple in name order (what ONNX exports)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.names = sorted(model.heads)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.features(images)
        return tuple(out[name] for name in self.names)


def export(model, size: tuple[int, int]) -> bytes:
    """The network of ``model`` as ONNX bytes; batch, height and width stay free.

    Traced at ``size`` (H, W); valid for any input whose sides are multiples of 32, where every
    stride-2 layer sees an even size and TF's 'SAME' padding is the traced (0, 1) pad.
    """
    example = torch.zeros(1, *size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on the constant pads and the exporter
        warnings.simplefilter("ignore")
        torch.onnx.export(_Features(model), (example,), buffer, dynamo=False,
                          input_names=["images"], output_names=sorted(model.heads),
                          dynamic_axes={"images": {0: "n", 1: "h", 2: "w"}}, opset_version=17)
    return buffer.getvalue()


class OnnxNetwork:
    """Callable: uint8 images (N, H, W, 3), H and W multiples of 32 -> the head outputs
    ``{name: float32 tensor (N, C, H/4, W/4)}``, as ``MoveNet.features`` returns them.

    Args:
        model: the loaded PyTorch MoveNet (its weights are exported).
        weights_sha256: the weight file's sha256, the cache key.

    The session is made at the first call with ``torch.get_num_threads()`` threads, so a
    ``--threads`` set after construction still counts.
    """

    def __init__(self, model, weights_sha256: str):
        self.model, self.sha256 = model, weights_sha256
        self.names = sorted(model.heads)
        self._session = None

    def cache_path(self) -> Path:
        return cache_dir() / (f"movenet_{self.model.variant}-{self.sha256[:16]}"
                              f"-export{EXPORT_VERSION}-torch{torch.__version__.split('+')[0]}.onnx")

    def _graph(self) -> bytes | str:
        """The cached ONNX file's path, or the exported bytes where the cache is not writable.

        The cache holds the graph's sha256 beside it; a file that does not match (damaged,
        half copied, altered) is exported again, so a bad cache can never change the poses."""
        path = self.cache_path()
        digest = path.with_name(path.name + ".sha256")
        try:
            if path.is_file() and digest.read_text().strip() == file_sha256(path):
                return str(path)
        except OSError:
            pass
        side = self.model.input_size or 256
        graph = export(self.model, (side, side))
        try:
            with atomic_write(path, "wb") as f:
                f.write(graph)
            with atomic_write(digest, "w") as f:
                f.write(hashlib.sha256(graph).hexdigest() + "\n")
        except (PosrecError, OSError):  # a read-only home or cache: export each time instead
            return graph
        return str(path)

    def session(self):
        """The ONNX Runtime session, made at the first call; PosrecError if it cannot be."""
        if self._session is None:
            try:
                self._session = self._new_session()
            except PosrecError:
                raise
            except Exception as err:  # the exporter or the runtime: one line, not a traceback
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise PosrecError(f"cannot run MoveNet on ONNX Runtime ({first}); "
                                  f"--backend torch runs it in PyTorch") from None
        return self._session

    def _new_session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: a busy neighbour (a training, another
        # process) then slows the estimator a little instead of stalling it (RESULTS).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self._graph(), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray) -> dict[str, torch.Tensor]:
        outputs = self.session().run(None, {"images": np.ascontiguousarray(images, np.uint8)})
        return {name: torch.from_numpy(o) for name, o in zip(self.names, outputs)}
