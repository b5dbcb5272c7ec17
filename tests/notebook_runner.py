"""Run a notebook as a user would (kernel in notebooks/) and collect what its cells showed."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat


def execute(notebook: Path, timeout: int = 600) -> tuple[list, str, str]:
    """Execute every cell (CellExecutionError on a failing one); returns the PNG outputs, the
    text outputs joined and the HTML outputs joined."""
    nb = nbformat.read(notebook, as_version=4)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    return images, text, html
