"""Model cards: section order, escaping, embedded or linked plots, fairness, files on disk."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modelling.model_card import (
    SECTION_TITLES,
    FairnessGate,
    ModelCard,
    format_value,
    render_html,
    render_markdown,
    write_model_card,
)

# Not a decodable image; the card only moves bytes, so the magic number is enough to follow them.
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
MALICIOUS = "<script>alert('x')</script>"
VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input"}


@pytest.fixture
def plots(tmp_path: Path) -> dict[str, Path]:
    source = tmp_path / "run_plots"
    source.mkdir()
    calibration = source / "calibration_curve.png"
    lift = source / "lift_chart.png"
    calibration.write_bytes(PNG_BYTES)
    lift.write_bytes(PNG_BYTES[::-1])
    return {"Calibration curve": calibration, "Lift by decile": lift}


def full_card(plot_files: dict[str, Path], **overrides: object) -> ModelCard:
    fields: dict[str, object] = {
        "model_name": "churn",
        "model_version": "7",
        "alias": "champion",
        "created_at": datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
        "intended_use": "Rank active customers by 90-day churn risk for retention outreach.",
        "not_intended_for": ("Pricing or credit decisions", "Individual HR decisions"),
        "data_window": {
            "training_as_of_dates": "2025-01-01 .. 2025-10-01",
            "validation_as_of_date": "2025-12-01",
            "rows": 12000,
            "positive_rate": 0.123456,
        },
        "features": (
            ("tickets_30d", "numeric", "Support tickets in the last 30 days"),
            ("contract_type", "categorical", "Monthly | yearly | two-year"),
        ),
        "excluded": (("email", "PII"), ("gender", "protected attribute, audited only")),
        "metrics": {"roc_auc": 0.812345, "pr_auc": 0.5, "log_loss": 0.34567},
        "plots": plot_files,
        "calibration": {"brier": 0.0912, "ece": 0.00001234, "method": "isotonic"},
        "capacity": {"top_k": 500, "precision_at_k": 0.41, "lift_at_k": 3.3333333},
        "fairness_table": pd.DataFrame(
            {
                "attribute": ["gender", "gender"],
                "group": ["female", "male"],
                "n": [610, 590],
                "selection_rate": [0.1234567, 0.08],
                "tpr": [0.7, 0.55],
                "fpr": [0.05, float("nan")],
            }
        ),
        "fairness_gate": FairnessGate(
            passed=False, reasons=("tpr gap 0.15 > 0.10 on gender", "min group n 590 ok")
        ),
        "drift": {
            "drift_share": 0.4,
            "threshold": 0.3,
            "report_path": Path("/state/reports/churn_feature_drift.html"),
        },
        "promotion": "champion: AUC 0.8123 >= champion 0.8010 - margin 0.0000",
        "known_limits": ("Trained on synthetic data", "Unreliable for accounts under 30 days"),
    }
    fields.update(overrides)
    return ModelCard(**fields)  # type: ignore[arg-type]


def minimal_card() -> ModelCard:
    return ModelCard(
        model_name="churn",
        model_version="1",
        alias="challenger",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        intended_use="Rank customers by churn risk.",
    )


def md_sections(markdown: str) -> dict[str, str]:
    """h2 title -> body up to the next h2."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def html_sections(document: str) -> dict[str, str]:
    return dict(re.findall(r"<section><h2>(.+?)</h2>(.*?)</section>", document, flags=re.DOTALL))


class StrictParser(HTMLParser):
    """Records every start tag and every close tag that does not match the open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append(tag)
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(document: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(document)
    parser.close()
    return parser


@pytest.mark.parametrize("render", ["markdown", "html"])
def test_title_then_every_section_in_order(render: str, plots: dict[str, Path]) -> None:
    card = full_card(plots)
    if render == "markdown":
        text = render_markdown(card)
        headings = [f"# {card.title}", *(f"## {t}" for t in SECTION_TITLES)]
    else:
        text = render_html(card)
        headings = [f"<h1>{card.title}</h1>", *(f"<h2>{t}</h2>" for t in SECTION_TITLES)]
    positions = [text.find(heading) for heading in headings]
    assert -1 not in positions, dict(zip(headings, positions, strict=True))
    assert positions == sorted(positions)
    assert "Model card: churn version 7 (champion)" in text


def test_html_escapes_user_strings(plots: dict[str, Path]) -> None:
    card = full_card(
        plots,
        model_name="churn<b>",
        features=(("tickets_30d", "numeric", MALICIOUS),),
        known_limits=('"quoted" & <i>tagged</i>',),
    )
    document = render_html(card)
    assert "<script" not in document
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in document
    assert "<b>" not in document and "<i>" not in document
    assert "&quot;quoted&quot; &amp; &lt;i&gt;tagged&lt;/i&gt;" in document
    # Escaped text still reads as the original once parsed.
    assert MALICIOUS in "".join(parse(document).text)
    assert "<script" not in render_markdown(card)


def test_markdown_table_cells_cannot_break_the_table(plots: dict[str, Path]) -> None:
    markdown = render_markdown(full_card(plots))
    row = next(line for line in markdown.splitlines() if line.startswith("| contract_type"))
    assert row == "| contract_type | categorical | Monthly \\| yearly \\| two-year |"


def test_html_embeds_plots_as_data_uris(plots: dict[str, Path]) -> None:
    document = render_html(full_card(plots), embed_images=True)
    for path in plots.values():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in document
    assert 'src="plots/' not in document
    assert "<figcaption>Lift by decile</figcaption>" in document


def test_html_links_plots_when_not_embedding(plots: dict[str, Path]) -> None:
    document = render_html(full_card(plots), embed_images=False)
    assert 'src="plots/calibration_curve.png"' in document
    assert 'src="plots/lift_chart.png"' in document
    assert "data:image" not in document


def test_markdown_links_plots_relatively(plots: dict[str, Path]) -> None:
    markdown = render_markdown(full_card(plots))
    assert "![Calibration curve](plots/calibration_curve.png)" in markdown
    assert "![Lift by decile](plots/lift_chart.png)" in markdown
    assert str(plots["Lift by decile"].parent) not in markdown


def test_plots_sharing_a_file_name_are_rejected(tmp_path: Path, plots: dict[str, Path]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "lift_chart.png").write_bytes(PNG_BYTES)
    card = full_card(plots, plots={**plots, "Old lift": other / "lift_chart.png"})
    with pytest.raises(ValueError, match=r"lift_chart\.png"):
        render_markdown(card)
    with pytest.raises(ValueError, match=r"lift_chart\.png"):
        write_model_card(card, tmp_path / "card")


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_fairness_rows_and_failing_gate_reasons(
    render: Callable[[ModelCard], str], plots: dict[str, Path]
) -> None:
    text = render(full_card(plots))
    sections = md_sections(text) if render is render_markdown else html_sections(text)
    fairness = sections["Fairness"]
    for expected in ("female", "male", "610", "0.1235", "0.0800", "n/a", "selection_rate"):
        assert expected in fairness
    assert "FAILED" in fairness and "passed." not in fairness
    assert "tpr gap 0.15 > 0.10 on gender" in html.unescape(fairness)
    assert "min group n 590 ok" in fairness


def test_fairness_table_has_one_row_per_group(plots: dict[str, Path]) -> None:
    fairness = html_sections(render_html(full_card(plots)))["Fairness"]
    parser = parse(fairness)
    # One header row plus one row per (attribute, group).
    assert parser.starts.count("tr") == 3
    assert parser.starts.count("th") == 6


def test_passing_gate_says_passed(plots: dict[str, Path]) -> None:
    card = full_card(plots, fairness_gate=FairnessGate(passed=True, reasons=("all gaps small",)))
    fairness = md_sections(render_markdown(card))["Fairness"]
    assert "**Gate:** passed." in fairness and "all gaps small" in fairness
    assert "FAILED" not in fairness


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_missing_optional_parts_say_not_available(render: Callable[[ModelCard], str]) -> None:
    text = render(minimal_card())
    sections = md_sections(text) if render is render_markdown else html_sections(text)
    assert list(sections) == list(SECTION_TITLES)
    for title, body in sections.items():
        assert "not available" in body.lower(), title
    assert "Rank customers by churn risk." in sections["Intended use"]
    assert "Not audited" in sections["Fairness"]
    assert "not evaluated" in sections["Fairness"]
    # Features and excluded columns each say so.
    assert sections["Features"].lower().count("not available") == 2


@pytest.mark.parametrize(
    ("drift", "status"),
    [
        ({"drift_share": 0.4, "threshold": 0.3}, "drifted (share 0.4000, threshold 0.3000)"),
        ({"drift_share": 0.3, "threshold": 0.3}, "drifted (share 0.3000, threshold 0.3000)"),
        ({"drift_share": 0.1, "threshold": 0.3}, "stable (share 0.1000, threshold 0.3000)"),
    ],
)
def test_drift_status_follows_the_retraining_threshold(
    drift: dict[str, float], status: str, plots: dict[str, Path]
) -> None:
    section = md_sections(render_markdown(full_card(plots, drift=drift)))["Drift"]
    assert f"**Status:** {status}" in section


def test_drift_without_threshold_lists_values_without_status(plots: dict[str, Path]) -> None:
    section = md_sections(render_markdown(full_card(plots, drift={"drift_share": 0.2})))["Drift"]
    assert "Status" not in section and "| drift_share | 0.2000 |" in section


def test_metrics_are_formatted_to_four_decimals(plots: dict[str, Path]) -> None:
    sections = md_sections(render_markdown(full_card(plots)))
    assert "| roc_auc | 0.8123 |" in sections["Metrics"]
    assert "| pr_auc | 0.5000 |" in sections["Metrics"]
    assert "| ece | 1.234e-05 |" in sections["Calibration"]
    assert "| method | isotonic |" in sections["Calibration"]
    assert "| top_k | 500 |" in sections["Capacity"]
    assert "| lift_at_k | 3.3333 |" in sections["Capacity"]
    assert "| rows | 12,000 |" in sections["Data window"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.812345, "0.8123"),
        (1.0, "1"),
        (12000, "12,000"),
        (0.00001234, "1.234e-05"),
        (0.0, "0"),
        (float("nan"), "n/a"),
        (None, "n/a"),
        (True, "yes"),
        (np.bool_(False), "no"),
        (np.int64(3), "3"),
        (np.float64(0.5), "0.5000"),
        ("isotonic", "isotonic"),
        (datetime(2026, 3, 1, 6, 0, 0, 123), "2026-03-01T06:00:00"),
    ],
)
def test_format_value(value: object, expected: str) -> None:
    assert format_value(value) == expected


@pytest.mark.parametrize("card_kind", ["full", "minimal"])
def test_html_is_well_formed_with_one_h1(card_kind: str, plots: dict[str, Path]) -> None:
    card = full_card(plots) if card_kind == "full" else minimal_card()
    parser = parse(render_html(card))
    assert parser.errors == []
    assert parser.stack == []
    assert parser.starts.count("h1") == 1
    assert parser.starts.count("h2") == len(SECTION_TITLES)


def test_write_model_card_writes_both_files_and_copies_plots(
    tmp_path: Path, plots: dict[str, Path]
) -> None:
    card = full_card(plots)
    directory = tmp_path / "cards" / "churn" / "7"
    markdown_path, html_path = write_model_card(card, directory)

    assert (markdown_path, html_path) == (
        directory / "model_card.md",
        directory / "model_card.html",
    )
    assert markdown_path.read_text(encoding="utf-8") == render_markdown(card)
    assert html_path.read_text(encoding="utf-8") == render_html(card, embed_images=True)
    for source in plots.values():
        assert (directory / "plots" / source.name).read_bytes() == source.read_bytes()
    # Every relative link of the Markdown resolves next to it.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown_path.read_text(encoding="utf-8"))
    assert len(links) == len(plots)
    assert all((directory / link).is_file() for link in links)
    assert not list(directory.rglob("*.tmp"))


def test_write_model_card_overwrites_a_previous_card(
    tmp_path: Path, plots: dict[str, Path]
) -> None:
    write_model_card(full_card(plots, promotion="first"), tmp_path)
    markdown_path, _ = write_model_card(full_card(plots, promotion="second"), tmp_path)
    text = markdown_path.read_text(encoding="utf-8")
    assert "second" in text and "first" not in text


def test_missing_plot_file_is_shown_not_fatal(tmp_path: Path, plots: dict[str, Path]) -> None:
    card = full_card(plots, plots={**plots, "Gone": tmp_path / "gone.png"})
    markdown_path, html_path = write_model_card(card, tmp_path / "card")
    assert "Plot file missing" in html_path.read_text(encoding="utf-8")
    assert not (tmp_path / "card" / "plots" / "gone.png").exists()
    assert "![Gone](plots/gone.png)" in markdown_path.read_text(encoding="utf-8")
