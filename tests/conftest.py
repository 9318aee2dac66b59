import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository beside ../shared; a checkout elsewhere simply skips the real-data tests.
SHARED_DATA = REPO.parent / "shared" / "data"
BROKEN = Path(__file__).resolve().parent / "data" / "broken"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA


# LATENTCOT_TEST_THREADS=N runs the suite with N intra-op threads (torch caps OMP_NUM_THREADS at the core
# count), so a machine with few cores can still check that no test depends on the thread count.
if os.environ.get("LATENTCOT_TEST_THREADS"):
    torch.set_num_threads(int(os.environ["LATENTCOT_TEST_THREADS"]))


@pytest.fixture(autouse=True)
def notes_as_the_cli_writes_them():
    """Library calls in tests write their notes as ``latentcot``'s main configures them (latentcot.logs)."""
    from latentcot.logs import configure

    configure()
