import os
from pathlib import Path

import pytest

from posrec.paths import shared_data_dir

DATA = shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real third-party data in ../shared/data; tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (set POSREC_SHARED_DATA)")
    return DATA


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    # One thread: tests run beside other work on a 2-core machine, where OpenMP spinning on a
    # second thread costs far more than it gains.
    import torch

    torch.set_num_threads(int(os.environ.get("POSREC_TEST_THREADS", "1")))
