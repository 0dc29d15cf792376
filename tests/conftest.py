"""Shared fixtures. Tests must pass for any seed: set FASTNEWTON_TEST_SEED to vary it."""

import os

import numpy as np
import pytest

_SEED = int(os.environ.get("FASTNEWTON_TEST_SEED", "20261123"))


def pytest_report_header(config):
    return f"fastnewton test seed: FASTNEWTON_TEST_SEED={_SEED}"


@pytest.fixture
def seed():
    """The session's base seed (an int)."""
    return _SEED


@pytest.fixture
def rng(request):
    """A Generator seeded from the base seed and the test's name (independent per test)."""
    name = request.node.nodeid.encode()
    return np.random.default_rng([_SEED, int.from_bytes(name[-8:].ljust(8, b"\0"), "little")])
