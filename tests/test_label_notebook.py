"""notebooks/label_video.ipynb runs top to bottom on the bundled sample clip with the shipped
model, as a user runs it (kernel in notebooks/), and shows what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_runner import execute

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "label_video.ipynb"


@pytest.mark.slow
def test_label_video_notebook_executes():
    images, text, html = execute(NOTEBOOK)
    assert len(images) >= 2  # the timeline plot and the overlay frames
    assert "230 frames" in text  # the whole sample clip streamed through
    assert "track_id" in html and "label" in html and "top3" in html
