"""tools/ship_action_model.py's pose-rate rule: the card's min_pose_fps is the sparsest rate whose
validation accuracy (the mean of the noise draws) is within half a point of the full rate's, and a
rate that fails stops the search (a sparser one that passes by chance is not taken)."""

import importlib.util
from pathlib import Path

import pytest

from posrec.data.pipeline import InputSpec

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("ship_action_model", ROOT / "tools" / "ship_action_model.py")
ship_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ship_tool)

SPEC = InputSpec(layout="penn13", sampling="window", fps=20.0, clip_len=40, source_fps=30.0)


@pytest.mark.parametrize("every2, every3, rate", [
    (0.9660, 0.9684, 10.0),   # C's five-draw figures (before drift removal): every 3rd allowed
    (0.9612, 0.9612, 10.0),   # 0.49 points down at both: within the tolerance
    (0.9660, 0.9599, 15.0),   # every 3rd loses 0.62 points: every 2nd is the sparsest
    (0.9590, 0.9700, 20.0),   # every 2nd fails: every 3rd is not tried, the model's own rate
])
def test_min_pose_fps_is_the_sparsest_rate_within_half_a_point(every2, every3, rate):
    accuracy = {"every1": 0.9661, "every2": every2, "every3": every3}
    assert ship_tool.min_pose_fps(SPEC, accuracy) == rate
