"""Model cards of registered model versions, rendered as Markdown and as self-contained HTML.

A :class:`ModelCard` holds what a reader needs to judge one registered version: what it is for,
the data it saw, its features and the columns it must never see, metrics and plots, calibration,
what it achieves at the capacity the team can act on, the fairness audit, drift and the promotion
decision. Both renderings are built from one list of sections (:func:`_sections`), so the
Markdown and the HTML cannot drift apart in content or order.

HTML is built with the standard library only (``html.escape``); every user-provided string is
escaped, because feature descriptions and reasons come from code and config the card does not
control, and the HTML is opened in browsers and the MLflow UI.
"""

from __future__ import annotations

import base64
import html
import math
import mimetypes
import numbers
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np
import pandas as pd

NOT_AVAILABLE = "Not available."
PLOTS_DIRNAME = "plots"
MARKDOWN_NAME = "model_card.md"
HTML_NAME = "model_card.html"

# The h2 headings of both renderings, in order; tests and readers can rely on them.
SECTION_TITLES: tuple[str, ...] = (
    "Intended use",
    "Data window",
    "Features",
    "Metrics",
    "Plots",
    "Calibration",
    "Capacity",
    "Fairness",
    "Drift",
    "Promotion",
    "Known limits",
)


class GateOutcome(Protocol):
    """Anything with a pass/fail verdict and its reasons (e.g. :class:`FairnessGate`).

    Read-only properties, so frozen dataclasses from other modules satisfy it too.
    """

    @property
    def passed(self) -> bool: ...

    @property
    def reasons(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FairnessGate:
    """Verdict of the fairness gate.

    Attributes:
        passed: Whether the version passed the gate.
        reasons: Why it passed or failed, one finding per entry (with the numbers).
    """

    passed: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelCard:
    """Everything shown on the card of one registered model version.

    Empty mappings and tuples, and ``None``, mean "not known"; the section then reads
    "Not available." instead of disappearing, so a reader sees what is missing.

    Attributes:
        model_name: Registered model name.
        intended_use: What the scores are for, in a sentence or two.
        model_version: Registered version, as the registry gives it (filled in by
            ``ml.modelling.registry.register``, like ``alias``, ``created_at`` and ``promotion``).
        alias: ``champion`` or ``challenger``.
        created_at: When the version was registered (or the card built).
        not_intended_for: Uses the model must not be put to.
        data_window: Training as-of dates, validation date, rows, positive rate, ...
        features: ``(name, kind, description)`` per model input.
        excluded: ``(column, why)`` per column that is never a feature (PII, protected
            attributes, leaky columns).
        metrics: Out-of-time metrics (AUC, PR AUC, log loss, ...).
        plots: Plot title -> PNG file.
        calibration: Brier score, ECE, calibration method, ...
        capacity: Precision and lift at the top-k the team can act on, ...
        fairness_table: One row per (attribute, group): ``n``, ``selection_rate``, ``tpr``,
            ``fpr``, ...; ``None`` when not audited.
        fairness_gate: The fairness gate's verdict, or ``None`` when not evaluated.
        drift: Drift share, threshold, report path, ...; ``None`` when not measured.
        promotion: The promotion decision and its reason.
        known_limits: Known weaknesses and conditions under which scores mislead.
    """

    model_name: str
    intended_use: str
    model_version: str = ""
    alias: str = ""
    created_at: datetime | None = None
    not_intended_for: tuple[str, ...] = ()
    data_window: Mapping[str, object] = field(default_factory=dict)
    features: tuple[tuple[str, str, str], ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    plots: Mapping[str, Path] = field(default_factory=dict)
    calibration: Mapping[str, float | str] = field(default_factory=dict)
    capacity: Mapping[str, float] = field(default_factory=dict)
    fairness_table: pd.DataFrame | None = None
    fairness_gate: GateOutcome | None = None
    drift: Mapping[str, object] | None = None
    promotion: str = ""
    known_limits: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """The card's one top-level heading."""
        return f"Model card: {self.model_name} version {self.model_version} ({self.alias})"


# Blocks: the format-neutral content of a section. Text inside is raw; each renderer escapes.


@dataclass(frozen=True)
class _Paragraph:
    text: str
    label: str | None = None  # rendered bold before the text


@dataclass(frozen=True)
class _Subheading:
    text: str


@dataclass(frozen=True)
class _Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Figure:
    title: str
    source: Path
    relative: str  # path under the card's folder, e.g. "plots/lift_chart.png"


_Block = _Paragraph | _Subheading | _Bullets | _Table | _Figure


def format_value(value: object) -> str:
    """Format one value for a card: numbers to 4 decimals, whole numbers without decimals.

    Args:
        value: A number, bool, date, path, string or missing value.

    Returns:
        ``"n/a"`` for ``None`` and NaN, ``"yes"``/``"no"`` for booleans, ``12,000`` for whole
        numbers, ``0.8123`` for other numbers, ``1.234e-05`` for tiny ones, else ``str(value)``.
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "n/a"
        if math.isinf(number):
            return str(number)
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,}"
        # Four decimals would print a tiny but non-zero value as 0.0000.
        return f"{number:.4f}" if abs(number) >= 1e-4 else f"{number:.3e}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _key_values(mapping: Mapping[str, object], headers: tuple[str, str]) -> list[_Block]:
    if not mapping:
        return [_Paragraph(NOT_AVAILABLE)]
    rows = tuple((str(key), format_value(value)) for key, value in mapping.items())
    return [_Table(headers, rows)]


def _bullets_or_missing(items: Sequence[str]) -> _Block:
    return _Bullets(tuple(items)) if items else _Paragraph(NOT_AVAILABLE)


def _plot_figures(plots: Mapping[str, Path]) -> list[_Block]:
    if not plots:
        return [_Paragraph(NOT_AVAILABLE)]
    figures: list[_Block] = []
    seen: dict[str, str] = {}
    for title, path in plots.items():
        name = Path(path).name
        # Plots are copied flat into plots/, so two files of one name would overwrite each other.
        if name in seen:
            raise ValueError(f"plots {seen[name]!r} and {title!r} share the file name {name!r}")
        seen[name] = title
        figures.append(_Figure(title, Path(path), f"{PLOTS_DIRNAME}/{name}"))
    return figures


def _fairness(table: pd.DataFrame | None, gate: GateOutcome | None) -> list[_Block]:
    blocks: list[_Block] = []
    if table is None or table.empty:
        blocks.append(_Paragraph("Not audited: fairness table not available."))
    else:
        headers = tuple(str(column) for column in table.columns)
        rows = tuple(
            tuple(format_value(value) for value in row)
            for row in table.itertuples(index=False, name=None)
        )
        blocks.append(_Table(headers, rows))
    if gate is None:
        blocks.append(_Paragraph("not evaluated.", label="Gate:"))
    else:
        blocks.append(_Paragraph("passed." if gate.passed else "FAILED.", label="Gate:"))
        if gate.reasons:
            blocks.append(_Bullets(tuple(gate.reasons)))
    return blocks


def _drift_status(drift: Mapping[str, object]) -> _Paragraph | None:
    share, threshold = drift.get("drift_share"), drift.get("threshold")
    if not isinstance(share, numbers.Real) or not isinstance(threshold, numbers.Real):
        return None
    # Same rule as ml.modelling.retraining.should_retrain: at or above the threshold is drift.
    shown = f"share {format_value(share)}, threshold {format_value(threshold)}"
    text = f"drifted ({shown})." if share >= threshold else f"stable ({shown})."
    return _Paragraph(text, label="Status:")


def _drift(drift: Mapping[str, object] | None) -> list[_Block]:
    if not drift:
        return [_Paragraph(NOT_AVAILABLE)]
    status = _drift_status(drift)
    return [*([status] if status else []), *_key_values(drift, ("measure", "value"))]


def _sections(card: ModelCard) -> list[tuple[str, list[_Block]]]:
    """The card's content in :data:`SECTION_TITLES` order, independent of the output format."""
    features: list[_Block] = (
        [_Table(("feature", "kind", "description"), tuple(card.features))]
        if card.features
        else [_Paragraph(NOT_AVAILABLE)]
    )
    excluded: list[_Block] = (
        [_Table(("column", "why it is never a feature"), tuple(card.excluded))]
        if card.excluded
        else [_Paragraph(NOT_AVAILABLE)]
    )
    sections: list[tuple[str, list[_Block]]] = [
        (
            "Intended use",
            [
                _Paragraph(card.intended_use or NOT_AVAILABLE),
                _Subheading("Not intended for"),
                _bullets_or_missing(card.not_intended_for),
            ],
        ),
        ("Data window", _key_values(card.data_window, ("item", "value"))),
        ("Features", [*features, _Subheading("Excluded columns"), *excluded]),
        ("Metrics", _key_values(card.metrics, ("metric", "value"))),
        ("Plots", _plot_figures(card.plots)),
        ("Calibration", _key_values(card.calibration, ("measure", "value"))),
        ("Capacity", _key_values(card.capacity, ("measure", "value"))),
        ("Fairness", _fairness(card.fairness_table, card.fairness_gate)),
        ("Drift", _drift(card.drift)),
        ("Promotion", [_Paragraph(card.promotion or NOT_AVAILABLE)]),
        ("Known limits", [_bullets_or_missing(card.known_limits)]),
    ]
    return sections


# Markdown


def _md(text: str) -> str:
    # Markdown renderers pass raw HTML through; without "<" no tag can open, and leaving ">" and
    # "&" alone keeps reasons such as "tpr gap 0.15 > 0.10" readable in the raw file.
    return text.replace("<", "&lt;")


def _md_cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_block(block: _Block) -> str:
    match block:
        case _Paragraph(text, label):
            return f"**{_md(label)}** {_md(text)}" if label else _md(text)
        case _Subheading(text):
            return f"### {_md_cell(text)}"
        case _Bullets(items):
            return "\n".join(f"- {_md_cell(item)}" for item in items)
        case _Table(headers, rows):
            lines = [
                "| " + " | ".join(_md_cell(h) for h in headers) + " |",
                "|" + "|".join("---" for _ in headers) + "|",
                *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows),
            ]
            return "\n".join(lines)
        case _Figure(title, _, relative):
            alt = _md_cell(title).replace("[", "\\[").replace("]", "\\]")
            return f"![{alt}]({quote(relative)})"
    raise TypeError(f"unknown block {block!r}")


def render_markdown(card: ModelCard) -> str:
    """Render the card as Markdown; plots are relative links ``plots/<file>``.

    Args:
        card: The card.

    Returns:
        The Markdown text, ending in a newline.

    Raises:
        ValueError: Two plots share a file name.
    """
    parts = [f"# {_md_cell(card.title)}", f"Created {format_value(card.created_at)}."]
    for title, blocks in _sections(card):
        parts.append(f"## {title}")
        parts.extend(_md_block(block) for block in blocks)
    return "\n\n".join(parts) + "\n"


# HTML

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
img { max-width: 100%; }
.missing { color: #a00; }
"""


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_figure(figure: _Figure, embed_images: bool) -> str:
    caption = f"<figcaption>{_e(figure.title)}</figcaption>"
    if embed_images:
        if not figure.source.is_file():
            # A missing PNG should not cost the whole card; the gap is shown instead.
            return (
                f'<figure><p class="missing">Plot file missing: {_e(str(figure.source))}</p>'
                f"{caption}</figure>"
            )
        src = _data_uri(figure.source)
    else:
        src = quote(figure.relative)
    return f'<figure><img src="{_e(src)}" alt="{_e(figure.title)}">{caption}</figure>'


def _html_block(block: _Block, embed_images: bool) -> str:
    match block:
        case _Paragraph(text, label):
            return (
                f"<p><strong>{_e(label)}</strong> {_e(text)}</p>" if label else f"<p>{_e(text)}</p>"
            )
        case _Subheading(text):
            return f"<h3>{_e(text)}</h3>"
        case _Bullets(items):
            return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"
        case _Table(headers, rows):
            head = "".join(f"<th>{_e(h)}</th>" for h in headers)
            body = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{_e(c)}</td>' if _is_number(c) else f"<td>{_e(c)}</td>"
                    for c in row
                )
                + "</tr>"
                for row in rows
            )
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        case _Figure():
            return _html_figure(block, embed_images)
    raise TypeError(f"unknown block {block!r}")


def render_html(card: ModelCard, embed_images: bool = True) -> str:
    """Render the card as one HTML page.

    Args:
        card: The card.
        embed_images: Embed the plots as base64 data URIs, so the single file is
            self-contained (e.g. as an MLflow artifact); otherwise link ``plots/<file>``.

    Returns:
        The HTML document.

    Raises:
        ValueError: Two plots share a file name.
    """
    body: list[str] = [
        f"<h1>{_e(card.title)}</h1>",
        f"<p>Created {_e(format_value(card.created_at))}.</p>",
    ]
    for title, blocks in _sections(card):
        body.append(f"<section><h2>{_e(title)}</h2>")
        body.extend(_html_block(block, embed_images) for block in blocks)
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(card.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# Files


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_bytes(data)
        # Readers (a browser, the Dagster UI link, an MLflow upload) see the old file or the new.
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_plots(plots: Iterable[_Figure], directory: Path) -> None:
    for figure in plots:
        if figure.source.is_file():
            target = directory / figure.relative
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(target, figure.source.read_bytes())


def write_model_card(card: ModelCard, directory: Path) -> tuple[Path, Path]:
    """Write ``model_card.md`` and a self-contained ``model_card.html`` into ``directory``.

    The plots are copied to ``directory/plots/`` so the Markdown's relative links resolve; the
    whole folder can be logged to MLflow as one artifact directory. Missing plot files are
    skipped here and shown as missing in the HTML.

    Args:
        card: The card.
        directory: Target folder (created if needed).

    Returns:
        The paths of the Markdown and the HTML file.

    Raises:
        ValueError: Two plots share a file name.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = [block for block in _plot_figures(card.plots) if isinstance(block, _Figure)]
    _copy_plots(figures, directory)
    markdown_path, html_path = directory / MARKDOWN_NAME, directory / HTML_NAME
    _write_atomic(markdown_path, render_markdown(card).encode("utf-8"))
    _write_atomic(html_path, render_html(card, embed_images=True).encode("utf-8"))
    return markdown_path, html_path


def markdown_table(frame: pd.DataFrame) -> str:
    """A small frame as a Markdown table (floats to 3 decimals, NaN as n/a), for run pages.

    Hand-written so the UI does not need the optional ``tabulate`` dependency of
    ``DataFrame.to_markdown``.
    """

    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return "n/a" if math.isnan(value) else f"{value:.3f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
