"""What a person sees: ``dagster dev`` opened in headless Chromium (``make ui-check``).

One ``dagster dev`` serves the whole module (it takes 25-70 s to load the definitions); the
fixture drives it through the same functions as ``make ui-check`` and stops it before the tests
look at what was found. No pipeline run is needed: the definitions alone draw the graph.
Without Chromium and chromedriver (``make browser``, root on Debian) the tests are skipped.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from ml.core.settings import Settings
from tests.ui.ui_check import (
    VIEWPORT,
    UiCheckError,
    UiCheckResult,
    UiExpectations,
    check_ui,
    dagster_dev,
    find_problems,
    missing_browser,
)

# Generous for a busy 2-core machine (start-up took 72 s there with the full suite running);
# every wait in ui_check has its own deadline, so nothing here can hang.
STARTUP_TIMEOUT = 240.0
RENDER_TIMEOUT = 60.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# `make test` needs no root: without the browser the module is skipped, and a skip mark (not
# skipif) gives one line in the -ra summary for all its tests.
_MISSING_BROWSER = missing_browser()
pytestmark = (
    [
        pytest.mark.skip(
            reason=f"{' and '.join(map(str, _MISSING_BROWSER))} not found: `make browser` "
            "installs Chromium for the UI test (root, Debian)"
        )
    ]
    if _MISSING_BROWSER
    else []
)


@dataclass(frozen=True)
class UiSession:
    home: Path
    result: UiCheckResult | None
    failure: UiCheckError | None
    error_page: UiCheckError | None
    error_page_seconds: float
    listening_after_stop: bool
    processes_after_stop: list[str]


def _listening(base_url: str) -> bool:
    address = urllib.parse.urlsplit(base_url)
    with socket.socket() as sock:
        sock.settimeout(2.0)
        return sock.connect_ex((address.hostname or "", address.port or 0)) == 0


def _processes_mentioning(path: Path) -> list[str]:
    """Live processes whose command line names `path` (dagster passes DAGSTER_HOME to each)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if str(path) in text:
            found.append(f"{cmdline.parent.name}: {text[:120]}")
    return found


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> UiSession:
    """Start dagster dev on a fresh CRM_HOME, check its pages, open a missing asset, stop it."""
    home = tmp_path_factory.mktemp("crm_home")
    settings = Settings(home=home)
    result = failure = error_page = None
    with dagster_dev(settings, startup_timeout=STARTUP_TIMEOUT) as base_url:
        try:
            result = check_ui(base_url, settings.reports_dir, render_timeout=RENDER_TIMEOUT)
        except UiCheckError as exc:
            failure = exc
        started = time.monotonic()
        try:
            check_ui(
                base_url,
                home / "error_page",
                UiExpectations(focus_asset="serving/no_such_asset"),
                render_timeout=RENDER_TIMEOUT,
            )
        except UiCheckError as exc:
            error_page = exc
        error_page_seconds = time.monotonic() - started
    return UiSession(
        home=home,
        result=result,
        failure=failure,
        error_page=error_page,
        error_page_seconds=error_page_seconds,
        listening_after_stop=_listening(base_url),
        processes_after_stop=_processes_mentioning(home),
    )


def _passed(ui: UiSession) -> UiCheckResult:
    assert ui.failure is None, f"the UI check failed: {ui.failure}"
    assert ui.result is not None
    return ui.result


def test_lineage_shows_the_key_assets_in_their_groups(ui: UiSession) -> None:
    result = _passed(ui)
    expected = UiExpectations()
    assert set(expected.graph_assets) <= set(result.graph_assets)
    assert set(expected.graph_groups) <= set(result.graph_groups)
    # One step up and down from serving/customer_scores, not the whole graph: no raw tables.
    assert "customers" not in result.graph_assets
    assert "ingest" not in result.graph_groups


def test_checks_tab_lists_the_gx_gate_and_dbt_tests_as_blocking(ui: UiSession) -> None:
    result = _passed(ui)
    assert {"customer_features_expectations", "not_null_customer_features_customer_id"} <= set(
        result.check_page_labels
    )
    assert result.blocking_shown


def test_screenshots_are_pngs_of_rendered_pages(ui: UiSession) -> None:
    result = _passed(ui)
    reports = ui.home / "reports"
    assert [path.name for path in result.screenshots] == [
        "ui_asset_graph.png",
        "ui_asset_checks.png",
    ]
    for path in result.screenshots:
        assert path.parent == reports
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        assert path.stat().st_size > 50_000, path
        rgb = (image.imread(path)[..., :3] * 255).astype(np.uint32)
        assert rgb.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"]), path
        # A capture taken before the page painted is one or two colours; these pages have about
        # 2,000 (anti-aliased text). What they show is asserted on the DOM in the tests above.
        # One integer per pixel keeps np.unique fast.
        colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
        assert len(colours) > 200, f"{path} looks blank ({len(colours)} colours)"


def test_a_missing_asset_group_or_check_is_reported(ui: UiSession) -> None:
    """What would happen if an asset or a check were removed from the definitions."""
    result = _passed(ui)
    expected = UiExpectations(
        graph_assets=(*UiExpectations().graph_assets, "no_such_asset"),
        graph_groups=(*UiExpectations().graph_groups, "no_such_group"),
        checks=(*UiExpectations().checks, "no_such_check"),
    )
    problems = find_problems(expected, result)
    assert len(problems) == 3
    assert "['no_such_asset']" in problems[0]
    assert "['no_such_group']" in problems[1]
    assert "['no_such_check']" in problems[2]
    assert find_problems(UiExpectations(), result) == []


def test_a_page_without_the_asset_fails_at_once(ui: UiSession) -> None:
    assert ui.error_page is not None, "opening a missing asset's lineage did not fail"
    assert "shows an error" in str(ui.error_page)
    assert "No assets match" in str(ui.error_page)
    # The screenshot of what the page showed instead is kept, and named in the message.
    screenshot = ui.home / "error_page" / "ui_asset_graph.png"
    assert screenshot.stat().st_size > 0
    assert str(screenshot) in str(ui.error_page)
    # It failed on what the page said, not by waiting out the render deadline.
    assert ui.error_page_seconds < RENDER_TIMEOUT


def test_dagster_dev_is_stopped_with_all_its_processes(ui: UiSession) -> None:
    assert not ui.listening_after_stop
    assert ui.processes_after_stop == []
    assert (ui.home / "logs" / "ui_check_dagster_dev.log").stat().st_size > 0
    assert os.path.exists(ui.home / "dagster" / "dagster.yaml")
