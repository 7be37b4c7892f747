"""Committed benchmark results name no path of the machine they ran on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
# An absolute path starts a value or follows a space, quote, bracket, "=" or ":"; "70/30" or
# "examples/x_education" do not match. The kernel's interfaces (/proc, /sys, /dev) are the same
# on every machine and may be named.
_ABSOLUTE = re.compile(r"""(?:^|[\s'"(\[=:,])(?:/(?!(?:proc|sys|dev)/)|~/|[A-Za-z]:\\)\w""")


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every key and string value of a JSON document, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key} (key)", str(key)
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


@pytest.mark.parametrize("name", ["/work/shared/data", "x: /tmp/crm-1", "C:\\data", "~/data"])
def test_the_pattern_finds_absolute_paths(name: str) -> None:
    assert _ABSOLUTE.search(name)


@pytest.mark.parametrize(
    "name",
    [
        "../shared/data",
        "examples/x_education/mapping.yaml",
        "70/30",
        "T / X",
        "reset every 0.2 s (/proc/self/clear_refs)",
    ],
)
def test_the_pattern_leaves_relative_paths_and_text(name: str) -> None:
    assert not _ABSOLUTE.search(name)


def test_no_result_records_an_absolute_path() -> None:
    files = sorted(RESULTS.glob("*.json"))
    assert files
    found = [
        f"{path.name}: {where} = {text[:120]!r}"
        for path in files
        for where, text in _strings(json.loads(path.read_text()), "$")
        if _ABSOLUTE.search(text)
    ]
    assert not found, "absolute paths in benchmarks/results: " + "; ".join(found)


def test_quality_records_the_data_folder_relative_to_the_repository(
    quality: ModuleType, tmp_path: Path
) -> None:
    assert quality.recorded_path(quality.ROOT.parent / "shared" / "data") == "../shared/data"
    # A folder elsewhere is recorded by its name alone (tmp_path is not beside the repository).
    elsewhere = tmp_path / "public"
    if elsewhere.resolve().is_relative_to(quality.ROOT.parent):
        pytest.skip("the temporary folder lies beside the repository")
    assert quality.recorded_path(elsewhere) == "public"
