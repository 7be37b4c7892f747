"""What a person sees: the Dagster UI of this project, checked in a real browser.

``make ui-check`` runs ``python -m tests.ui.ui_check``. It starts ``dagster dev`` on a free
127.0.0.1 port with this ``$CRM_HOME``, opens two pages in headless Chromium (Debian's
``chromium`` and ``chromedriver``, driven by selenium) and fails unless they show what a person
needs to see:

* the asset lineage around ``serving/customer_scores`` (``ui_asset_graph.png``): the asset
  nodes and the groups they belong to;
* the checks tab of ``marts/customer_features`` (``ui_asset_checks.png``): the Great
  Expectations gate and a dbt test listed, and the gate shown as blocking.

No pipeline run is needed: the definitions alone draw the graph. The screenshots go to
``$CRM_HOME/reports/``, the log of ``dagster dev`` to ``$CRM_HOME/logs/ui_check_dagster_dev.log``.
Every wait has a deadline, and ``dagster dev`` runs in its own process group that is killed as a
whole: started from a script it ignores SIGINT/SIGTERM, and its webserver, daemon and code
server would outlive it.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from ml.core.settings import Settings
from ml.serving.tables import SERVING_TABLES

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORKSPACE = PROJECT_DIR / "workspace.yaml"
DAGSTER_YAML = PROJECT_DIR / "orchestration" / "dagster.yaml"

# Debian's packages (`make browser` installs them), or CRM_CHROMIUM and CRM_CHROMEDRIVER. Named
# explicitly so that Selenium Manager never tries to download a browser or a driver: this
# machine has no internet.
CHROMIUM = Path(os.environ.get("CRM_CHROMIUM") or "/usr/bin/chromium")
CHROMEDRIVER = Path(os.environ.get("CRM_CHROMEDRIVER") or "/usr/bin/chromedriver")
# Without the network switches Chromium keeps calling Google services (sync, component updates,
# QUIC) and the closed network refuses its connections; a fresh profile avoids first-run dialogs.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Tall enough that the lineage, which Dagster zooms to fit the width, is not cut off at the
# bottom, and wide enough that its nodes are drawn in full (with their whole names, not the
# shortened labels Dagster draws below 60 % zoom).
VIEWPORT = {"width": 1920, "height": 1700}
# Dagster's "join the community" dialog would cover the graph on a fresh browser profile;
# this is the flag its Skip button stores in the browser.
_DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', '\"1\"');"

# Text Dagster shows instead of the content when a page or a request failed, or when the
# asset asked for does not exist.
_ERROR_MARKERS = (
    "Something went wrong",
    "No assets were found",
    "No assets match",
    "Unexpected error",
    "PythonError",
    "Error loading",
    "Failed to fetch",
)

# One snapshot of a page, read in the browser: the labels drawn on the asset graph, the
# names listed on an asset page, and any error text. Dagster shortens long labels in the
# middle ("not_null_custo…_customer_id") and keeps the full name in the node's `data-tooltip`
# or the list entry's `title`: those are read, not the visible text.
_PAGE_STATE_JS = """
const label = (el) => {
  const full = el.querySelector('[data-tooltip]');
  return (full ? full.getAttribute('data-tooltip') : el.textContent || '').trim();
};
const all = (selector) => Array.from(document.querySelectorAll(selector));
const body = document.body ? document.body.innerText : '';
return {
  loading: body.includes('Loading assets') || all('[class*="Spinner"]').length > 0,
  assets: all('[class*="AssetNode_assetName"]').map(label),
  groups: all('[class*="ExpandedGroupNode_groupNodeHeaderBox"]').map(label),
  titles: all('[class*="MiddleTruncate_container"][title]').map((el) => el.getAttribute('title')),
  text: body,
  errors: arguments[0].filter((marker) => body.includes(marker)),
};
"""


class UiCheckError(RuntimeError):
    """The UI did not start, or did not show what it must."""


_FOCUS = SERVING_TABLES[0]


@dataclass(frozen=True)
class UiExpectations:
    """What the two pages must show.

    Attributes:
        focus_asset: the asset whose lineage (one step up and down) the graph page shows.
        graph_assets: asset names that must be drawn on that graph (the labels a person reads;
            Dagster labels a node with the last part of its key).
        graph_groups: asset groups that must be drawn around them.
        checked_asset: the asset whose checks tab is opened.
        checks: asset checks that must be listed on that tab.
        blocking_check: the check opened in the detail pane, which must say it is blocking.
    """

    # The first serving table of the registry (ml/serving/tables.py) and the model that scores
    # it; Dagster labels a node with the last part of its key (models/churn reads "churn").
    focus_asset: str = f"serving/{_FOCUS.name}"
    graph_assets: tuple[str, ...] = (
        "customer_features",
        str(_FOCUS.model),
        _FOCUS.name,
        "churn_drift",
    )
    graph_groups: tuple[str, ...] = ("marts", "churn", "monitoring")
    checked_asset: str = "marts/customer_features"
    checks: tuple[str, ...] = (
        "customer_features_expectations",
        "not_null_customer_features_customer_id",
    )
    blocking_check: str = "customer_features_expectations"


@dataclass
class UiCheckResult:
    """What the browser found on the two pages, and where their screenshots are.

    Attributes:
        graph_assets: asset names drawn on the lineage page.
        graph_groups: group names drawn around them.
        check_page_labels: the full names on the checks page (the asset's checks among them).
        blocking_shown: whether the opened check is described as blocking.
        screenshots: the PNG files written.
        seconds: how long each page took to render.
    """

    graph_assets: list[str] = field(default_factory=list)
    graph_groups: list[str] = field(default_factory=list)
    check_page_labels: list[str] = field(default_factory=list)
    blocking_shown: bool = False
    screenshots: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def find_problems(expected: UiExpectations, found: UiCheckResult) -> list[str]:
    """What `expected` asks for and the pages did not show, one sentence per gap."""
    problems = []
    for what, wanted, shown in (
        (
            f"the lineage of {expected.focus_asset} lacks assets",
            expected.graph_assets,
            found.graph_assets,
        ),
        (
            f"the lineage of {expected.focus_asset} lacks groups",
            expected.graph_groups,
            found.graph_groups,
        ),
        (
            f"the checks tab of {expected.checked_asset} lacks checks",
            expected.checks,
            found.check_page_labels,
        ),
    ):
        if missing := sorted(set(wanted) - set(shown)):
            problems.append(f"{what} {missing}")
    if not found.blocking_shown:
        problems.append(f"the check {expected.blocking_check} is not shown as blocking")
    return problems


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _graphql(base_url: str, query: str, timeout: float = 5.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return dict(json.load(response))


_LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


def _location_status(base_url: str) -> tuple[bool, str | None]:
    """(all code locations loaded, the load error of one that failed)."""
    data = _graphql(base_url, _LOCATIONS_QUERY)["data"]["workspaceOrError"]
    entries = data.get("locationEntries") or []
    for entry in entries:
        location = entry.get("locationOrLoadError") or {}
        if location.get("__typename") == "PythonError":
            return False, f"code location {entry['name']} failed to load: {location['message']}"
    loaded = bool(entries) and all(
        entry["loadStatus"] == "LOADED"
        and (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
        for entry in entries
    )
    return loaded, None


def wait_until_ready(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    """Wait until the webserver answers and the code location has loaded.

    Raises:
        UiCheckError: ``dagster dev`` exited, the definitions failed to load, or the deadline
            passed; the message ends with the tail of its log.
    """
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise UiCheckError(
                f"dagster dev exited with code {code} before it served {base_url}.\n"
                f"Last lines of {log_path}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/server_info", timeout=2.0):
                pass
            loaded, error = _location_status(base_url)
        except (OSError, KeyError, ValueError) as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
        else:
            if error:
                raise UiCheckError(f"{error}\nLast lines of {log_path}:\n{_tail(log_path)}")
            if loaded:
                return
            last_problem = "the code location is still loading"
        # A poll interval, not a guess at how long start-up takes: the loop ends on the answer.
        time.sleep(0.5)
    raise UiCheckError(
        f"dagster dev did not become ready at {base_url} within {timeout:.0f} s "
        f"({last_problem}).\nLast lines of {log_path}:\n{_tail(log_path)}"
    )


def _live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that have not exited yet (zombies excluded), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _stop_process_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    # dagster dev leads its own process group (start_new_session): signal the whole group, so
    # the webserver, daemon and code server stop with it. On SIGTERM the webserver and daemon
    # stop within a second, but the code server takes 10 s or more on a busy 2-core machine
    # and can outlive dagster dev: after `grace`, kill what is left, and return only when
    # nothing of the group runs any more.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    deadline = time.monotonic() + grace
    while (members := _live_members(process.pid)) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.1)
    process.wait(timeout=grace)
    if members:
        raise UiCheckError(f"dagster dev left processes {members} running after SIGKILL")


def prepare_dagster_home(settings: Settings) -> Path:
    """``$CRM_HOME/dagster`` with the project's instance settings, as ``make ui`` prepares it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        shutil.copyfile(DAGSTER_YAML, instance_yaml)
    return home


@contextlib.contextmanager
def dagster_dev(
    settings: Settings, port: int | None = None, startup_timeout: float = 180.0
) -> Iterator[str]:
    """Run ``dagster dev`` for this project on 127.0.0.1 and yield its base URL.

    Args:
        settings: the project settings; ``settings.home`` is the CRM_HOME the UI reads.
        port: the webserver port; a free one when omitted.
        startup_timeout: seconds to wait for the webserver and the code location.

    Raises:
        UiCheckError: it did not start (the message carries the tail of its log).
    """
    dagster_home = prepare_dagster_home(settings)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "ui_check_dagster_dev.log"
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CRM_HOME": str(settings.home),
        "DAGSTER_HOME": str(dagster_home),
        # dbt and dagster next to this interpreter, whatever PATH the caller had.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(WORKSPACE)]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(base_url, process, log_path, startup_timeout)
        yield base_url
    finally:
        _stop_process_group(process)


def missing_browser() -> list[Path]:
    """Which of Chromium and chromedriver are not installed (``make browser`` installs both)."""
    return [path for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]


@contextlib.contextmanager
def chromium(page_timeout: float = 60.0) -> Iterator[webdriver.Chrome]:
    """Headless Chromium from Debian's packages, on a throw-away profile.

    Raises:
        UiCheckError: chromium or chromedriver is missing (``make browser`` installs them).
    """
    if missing := missing_browser():
        raise UiCheckError(
            f"{' and '.join(map(str, missing))} not found: run `make browser` "
            "(apt-get install chromium chromium-driver)."
        )
    with tempfile.TemporaryDirectory(prefix="crm-ui-check-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={VIEWPORT['width']},{VIEWPORT['height']}")
        try:
            driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        except WebDriverException as exc:
            raise UiCheckError(f"could not start {CHROMIUM} via {CHROMEDRIVER}: {exc.msg}") from exc
        try:
            driver.set_page_load_timeout(page_timeout)
            driver.set_script_timeout(page_timeout)
            # The viewport itself, not the window: headless Chromium keeps some of the window
            # for browser chrome that a screenshot does not show.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {**VIEWPORT, "deviceScaleFactor": 1, "mobile": False},
            )
            driver.execute_cdp_cmd(
                "Page.addScriptToEvaluateOnNewDocument", {"source": _DISMISS_COMMUNITY_DIALOG}
            )
            yield driver
        finally:
            driver.quit()


def _page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    return dict(driver.execute_script(_PAGE_STATE_JS, list(_ERROR_MARKERS)))


def _wait_for(
    driver: webdriver.Chrome,
    what: str,
    rendered: Callable[[dict[str, Any]], bool],
    timeout: float,
    screenshot: Path,
) -> dict[str, Any]:
    """Poll the page until `rendered(state)` holds or it shows an error, then screenshot it.

    Returns:
        The page state once rendered.

    Raises:
        UiCheckError: the page shows an error or did not render in time (the screenshot shows
            what it showed instead).
    """

    def settled(drv: webdriver.Chrome) -> dict[str, Any] | Literal[False]:
        state = _page_state(drv)
        return state if state["errors"] or rendered(state) else False

    try:
        state: dict[str, Any] = WebDriverWait(driver, timeout, poll_frequency=0.5).until(settled)
    except TimeoutException as exc:
        _screenshot(driver, screenshot)
        text = " ".join(_page_state(driver)["text"].split())[:400]
        raise UiCheckError(
            f"{what} did not render within {timeout:.0f} s at {driver.current_url}; "
            f"the page shows: {text!r} (see {screenshot})"
        ) from exc
    _screenshot(driver, screenshot)
    if state["errors"]:
        raise UiCheckError(
            f"{what} at {driver.current_url} shows an error ({', '.join(state['errors'])}): "
            f"{' '.join(state['text'].split())[:400]!r} (see {screenshot})"
        )
    return state


def _check_list_complete(state: dict[str, Any]) -> bool:
    """The checks tab has drawn its whole list and the opened check's details.

    The heading ("Checks (28)") comes before the list entries and the detail pane; reading the
    page before both are drawn reported present checks as missing on a busy machine.
    """
    heading = re.search(r"Checks \((\d+)\)", state["text"])
    return (
        heading is not None
        and len(set(state["titles"])) > int(heading.group(1))
        and "asset check." in state["text"]
    )


def _asset_groups(base_url: str) -> list[str]:
    data = _graphql(base_url, "{ assetNodes { groupName } }")["data"]["assetNodes"]
    return sorted({node["groupName"] for node in data if node.get("groupName")})


def graph_url(base_url: str, focus_asset: str, groups: list[str]) -> str:
    """The global lineage page showing `focus_asset` one step up and down, groups expanded.

    The path form is Dagster's own (``/asset-groups~<selection>/``, as its "View lineage" links
    build it); ``expanded`` opens the groups, which the UI collapses on a graph this size.
    """
    selection = urllib.parse.quote(f'1+key:"{focus_asset}"+1', safe="")
    expanded = urllib.parse.quote(",".join(f"global@global:{group}" for group in groups))
    return f"{base_url}/asset-groups~{selection}/?expanded={expanded}"


def checks_url(base_url: str, asset: str, check: str) -> str:
    """The checks tab of `asset` with `check` opened in the detail pane."""
    query = urllib.parse.urlencode({"view": "checks", "checkDetail": check})
    return f"{base_url}/assets/{urllib.parse.quote(asset)}?{query}"


def check_ui(
    base_url: str,
    reports_dir: Path,
    expected: UiExpectations = UiExpectations(),
    render_timeout: float = 60.0,
) -> UiCheckResult:
    """Open the lineage and checks pages, assert what they show, save their screenshots.

    Args:
        base_url: a running Dagster webserver, e.g. from `dagster_dev`.
        reports_dir: where ``ui_asset_graph.png`` and ``ui_asset_checks.png`` are written
            (also when a page fails, so the failure can be seen).
        expected: the assets, groups and checks that must be shown.
        render_timeout: seconds each page may take to render.

    Returns:
        What was found on the pages and the screenshot paths.

    Raises:
        UiCheckError: a page showed an error, did not render, or lacked something expected.
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    result = UiCheckResult()
    with chromium(page_timeout=render_timeout) as driver:
        started = time.monotonic()
        driver.get(graph_url(base_url, expected.focus_asset, _asset_groups(base_url)))
        # Rendered: nodes are drawn and the layout is done.
        graph_png = reports_dir / "ui_asset_graph.png"
        state = _wait_for(
            driver,
            "the asset lineage",
            lambda s: bool(s["assets"]) and not s["loading"],
            render_timeout,
            graph_png,
        )
        result.screenshots.append(graph_png)
        result.graph_assets = sorted(set(state["assets"]))
        result.graph_groups = sorted(set(state["groups"]))
        result.seconds["asset_graph"] = round(time.monotonic() - started, 1)

        started = time.monotonic()
        driver.get(checks_url(base_url, expected.checked_asset, expected.blocking_check))
        name = expected.checked_asset.rsplit("/", 1)[-1]
        # Rendered: the asset's page (its name in the heading) lists its checks.
        checks_png = reports_dir / "ui_asset_checks.png"
        state = _wait_for(
            driver,
            f"the checks of {expected.checked_asset}",
            lambda s: name in s["titles"] and _check_list_complete(s),
            render_timeout,
            checks_png,
        )
        result.screenshots.append(checks_png)
        result.check_page_labels = sorted(set(state["titles"]))
        result.blocking_shown = "This is a blocking asset check." in state["text"]
        result.seconds["asset_checks"] = round(time.monotonic() - started, 1)
    if problems := find_problems(expected, result):
        screenshots = ", ".join(str(path) for path in result.screenshots)
        raise UiCheckError(f"{'; '.join(problems)} (see {screenshots})")
    return result


def _screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    if not driver.save_screenshot(str(path)):
        raise UiCheckError(f"could not save a screenshot to {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="webserver port (default: a free one)")
    parser.add_argument(
        "--startup-timeout", type=float, default=180.0, help="seconds for dagster dev to start"
    )
    parser.add_argument(
        "--render-timeout", type=float, default=60.0, help="seconds for each page to render"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    started = time.monotonic()
    try:
        with dagster_dev(settings, args.port, args.startup_timeout) as base_url:
            ready = time.monotonic() - started
            result = check_ui(base_url, settings.reports_dir, render_timeout=args.render_timeout)
    except UiCheckError as exc:
        print(f"UI check FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"UI check passed in {time.monotonic() - started:.0f} s "
        f"(dagster dev ready after {ready:.0f} s).\n"
        f"  lineage of {UiExpectations.focus_asset}: {', '.join(result.graph_assets)}\n"
        f"  checks of {UiExpectations.checked_asset}: {', '.join(UiExpectations.checks)} "
        f"listed; {UiExpectations.blocking_check} shown as blocking\n"
        + "\n".join(f"  screenshot: {path}" for path in result.screenshots)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
