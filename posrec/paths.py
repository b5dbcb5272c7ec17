"""Where posrec finds the real test data and its shipped files."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def shared_data_dir() -> Path:
    """``$POSREC_SHARED_DATA`` or ``../shared/data`` next to the project root."""
    env = os.environ.get("POSREC_SHARED_DATA")
    if env:
        return Path(env)
    return PACKAGE_DIR.parent.parent / "shared" / "data"
