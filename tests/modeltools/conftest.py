"""Fixtures for the model tools: a loopback fake ModelScope hub hosting the tiny model (the
runner that starts the tools as users do is tests/support/tools.py).

    pytest tests/modeltools -q
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_hub import FakeHub
from tests.support.tools import linked_copy, make_hub


@pytest.fixture(scope="session")
def hub_models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model, and a v1.0 revision of it that carries a marker file."""
    root = tmp_path_factory.mktemp("hub-models")
    return {
        "master": tiny_model_dir,
        "v1.0": linked_copy(tiny_model_dir, root / "v1.0", {"REVISION.txt": "v1.0"}),
    }


@pytest.fixture(scope="module")
def hub(hub_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """A running fake hub with qa/tiny (master, v1.0), qa/private and qa/draft."""
    server = make_hub(tmp_path_factory.mktemp("hub-blobs"), hub_models)
    yield server
    server.stop()
