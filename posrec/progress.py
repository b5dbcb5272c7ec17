"""Progress bars whose neighbours' messages (warnings, prints to stderr) appear above the bar."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from tqdm import tqdm
from tqdm.contrib import DummyTqdmFile


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "frame", enabled: bool = True,
                 leave: bool = True) -> Iterator[tqdm]:
    """A tqdm bar on stderr; while it is open, anything written to ``sys.stderr`` (a
    ``warnings.warn`` from a decoding thread, for instance) goes through ``tqdm.write``, so it
    prints on its own line above the bar instead of inside the bar's line."""
    if not enabled:
        with tqdm(total=total, disable=True) as bar:
            yield bar
        return
    real = sys.stderr
    with contextlib.redirect_stderr(DummyTqdmFile(real)):
        bar = tqdm(total=total or None, unit=unit, desc=desc, file=real, leave=leave,
                   dynamic_ncols=True)
        try:
            yield bar
        finally:
            bar.close()
