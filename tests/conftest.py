from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository beside ../shared; a checkout elsewhere simply skips the real-data tests.
SHARED_DATA = REPO.parent / "shared" / "data"
BROKEN = Path(__file__).resolve().parent / "data" / "broken"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA
