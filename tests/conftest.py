from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny import FAMILIES, build_tiny_host

# One thread by default: on a shared 2-core box two threads can be 10x slower. Override with PROBEGUARD_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("PROBEGUARD_TEST_THREADS", "1")))


@pytest.fixture
def seed() -> int:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def tiny_hosts(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """family -> folder of a tiny random host, built once per session."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_host(tmp_path_factory.mktemp(f"host-{family}"), family)
        return built[family]

    return get


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return request.param
