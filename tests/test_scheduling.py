"""The test scheduling of tests/conftest.py really reaches xdist (it broke silently twice)."""

from __future__ import annotations

import pytest


def test_each_test_is_scheduled_with_its_group(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only meaningful under `pytest -n 2 --dist loadgroup` (make test)")
    # xdist's load-group scheduler sends tests with the same "@group" suffix to one worker.
    assert request.node.nodeid.endswith("@test_scheduling.py"), request.node.nodeid
