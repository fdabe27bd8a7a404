"""Shared test fixtures: where the real data lives, and skips when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MELD_DIR = SHARED_DATA / "meld"
RAVDESS_DIR = SHARED_DATA / "ravdess16k"


def require(present: bool, what: str) -> None:
    """Skip when ``what`` (real data, a reference package) is absent; under CI=true that is a failure."""
    if not present:
        missing(f"{what} is missing")


def missing(reason: str) -> None:
    """Skip for a missing ../shared/data or a wheel `make setup` installs; fail under CI=true,
    where a skip would hide a broken set-up."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def meld_dir() -> Path:
    if not (MELD_DIR / "dev_sent_emo.csv").is_file():
        missing(f"MELD CSVs not found at {MELD_DIR} (real data lives beside the project)")
    return MELD_DIR


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    if not (RAVDESS_DIR / "labels.csv").is_file():
        missing(f"RAVDESS not found at {RAVDESS_DIR} (real data lives beside the project)")
    return RAVDESS_DIR
