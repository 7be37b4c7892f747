"""Synthetic leads as a HubSpot-style export, with a known conversion model.

The export looks like what a marketing tool gives: its own column names ("Lead ID", "Original
Source", "Became a Customer Date"), custom properties ("Industry", "Trial Started", ...), personal
data ("Email", "First Name") that the mapping must declare, and the tool's "not filled in" values
(``""`` and ``"Select"``). ``examples/synthetic/mapping.yaml`` maps it to the ``leads``
contract.

The truth is a logit of a few drivers (:data:`TRUE_EFFECTS`)::

    logit = -3.0 + source + company size + job title
            + 0.25 * log1p(page views) + 0.10 * min(e-mails opened, 8) + 0.015 * min(minutes, 60)
            + 1.5 * trial started + 1.0 * budget confirmed + 0.5 * webinar attended
            + 0.3 * (industry == Software)

"Trial Started", "Budget Confirmed", "Webinar Attended" and "Industry" are custom properties only,
so a model that ignores custom properties measurably loses (the benchmark measures how much).
"Country" and "Preferred Language" have no effect. A lead that converts does so after a lag of
``0.5 + Gamma(1.5, 12)`` days (mean 18.5 days; about 1% beyond 60 days); conversions after the
export date are not known yet, so the newest leads are still open. The ``""``/``"Select"`` values
hide some true values from the model, not from the truth: the oracle knows them.

Everything is vectorised numpy, deterministic per seed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

from ml.core.maths import sigmoid

SOURCES: dict[str, tuple[float, float]] = {
    # name: (share of leads, effect on the log-odds)
    "Organic Search": (0.26, 0.2),
    "Paid Search": (0.20, 0.0),
    "Paid Social": (0.16, -0.7),
    "Referrals": (0.08, 1.2),
    "Email Marketing": (0.10, 0.3),
    "Direct Traffic": (0.14, 0.0),
    "Events": (0.06, 0.6),
}
COMPANY_SIZES: dict[str, tuple[float, float]] = {
    "1-10": (0.25, -0.4),
    "11-50": (0.25, 0.0),
    "51-200": (0.22, 0.2),
    "201-1000": (0.16, 0.4),
    "1000+": (0.12, 0.5),
}
JOB_TITLES: dict[str, tuple[float, float]] = {
    "Founder": (0.08, 0.6),
    "Director": (0.12, 0.6),
    "Manager": (0.22, 0.2),
    "Engineer": (0.20, 0.0),
    "Analyst": (0.16, 0.0),
    "Consultant": (0.10, -0.2),
    "Student": (0.12, -1.2),
}
INDUSTRIES: dict[str, tuple[float, float]] = {
    "Software": (0.30, 0.3),
    "Retail": (0.15, 0.0),
    "Finance": (0.15, 0.0),
    "Manufacturing": (0.15, 0.0),
    "Education": (0.10, 0.0),
    "Healthcare": (0.15, 0.0),
}
COUNTRIES: dict[str, float] = {
    "United States": 0.35,
    "United Kingdom": 0.15,
    "Germany": 0.12,
    "France": 0.08,
    "Netherlands": 0.06,
    "India": 0.12,
    "Brazil": 0.06,
    "Canada": 0.06,
}
LANGUAGES: dict[str, float] = {"English": 0.6, "German": 0.15, "French": 0.1, "Spanish": 0.15}
FIRST_NAMES = ("Alex", "Sam", "Maria", "Jan", "Priya", "Chen", "Lena", "Omar", "Julia", "Tom")

TRUE_EFFECTS: dict[str, float] = {
    "intercept": -3.0,
    "log1p_page_views": 0.25,
    "email_opens_capped_8": 0.10,
    "minutes_capped_60": 0.015,
    "trial_started": 1.5,
    "budget_confirmed": 1.0,
    "webinar_attended": 0.5,
}
LAG_SHAPE, LAG_SCALE_DAYS, LAG_MIN_DAYS = 1.5, 12.0, 0.5

# Share of values the export leaves "not filled in", per column, and the token it uses.
MISSING_SHARES: dict[str, tuple[float, str]] = {
    "Original Source": (0.02, ""),
    "Country": (0.08, ""),
    "Company Size": (0.10, ""),
    "Job Title": (0.08, "Select"),
    "Industry": (0.06, "Select"),
    "Preferred Language": (0.05, ""),
}

LEAD_ID_COLUMN = "Lead ID"
EXPORT_COLUMNS: tuple[str, ...] = (
    LEAD_ID_COLUMN,
    "First Name",
    "Email",
    "Create Date",
    "Original Source",
    "Country",
    "Company Size",
    "Job Title",
    "Marketing Emails Opened",
    "Number of Pageviews",
    "Number of Sessions",
    "Time on Site (min)",
    "Industry",
    "Preferred Language",
    "Webinar Attended",
    "Trial Started",
    "Budget Confirmed",
    "Became a Customer Date",
)


def _choice(
    rng: np.random.Generator, table: dict[str, tuple[float, float]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw categories by share; return the values and their effects on the log-odds."""
    names = np.array(list(table), dtype=object)
    shares = np.array([v[0] for v in table.values()])
    effects = np.array([v[1] for v in table.values()])
    index = rng.choice(len(names), size=n, p=shares / shares.sum())
    return names[index], effects[index]


def _yes_no(flags: np.ndarray) -> np.ndarray:
    return np.where(flags, "Yes", "No").astype(object)


def generate_leads_with_truth(
    n: int = 20_000,
    seed: int = 42,
    start: date = date(2024, 10, 1),
    end: date = date(2026, 9, 30),
) -> tuple[pd.DataFrame, np.ndarray]:
    """The export of :func:`generate_leads` and the true conversion log-odds of each row.

    Args:
        n: Number of leads.
        seed: Random seed; the same seed gives the same export.
        start: First creation day.
        end: Last creation day; the export is taken at the end of this day, so conversions after
            it are unknown.

    Returns:
        The export (columns :data:`EXPORT_COLUMNS`) and an array of the true log-odds of
        converting (at any time), aligned with the rows.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    rng = np.random.default_rng(seed)
    source, source_effect = _choice(rng, SOURCES, n)
    size, size_effect = _choice(rng, COMPANY_SIZES, n)
    title, title_effect = _choice(rng, JOB_TITLES, n)
    industry, industry_effect = _choice(rng, INDUSTRIES, n)
    country = rng.choice(
        np.array(list(COUNTRIES), dtype=object), n, p=np.array(list(COUNTRIES.values()))
    )
    language = rng.choice(
        np.array(list(LANGUAGES), dtype=object), n, p=np.array(list(LANGUAGES.values()))
    )

    sessions = 1 + rng.poisson(2.5, n)
    page_views = sessions + rng.poisson(2.0 * sessions)
    opens = rng.poisson(2.0, n)
    minutes = np.round(rng.gamma(2.0, 2.5 * sessions), 1)
    webinar = rng.random(n) < 0.2
    # Trials are likelier for engaged leads, so the attribute and the counts are not independent.
    trial = rng.random(n) < 0.12 + 0.25 * (page_views > np.median(page_views))
    budget = rng.random(n) < 0.15

    e = TRUE_EFFECTS
    logit = (
        e["intercept"]
        + source_effect
        + size_effect
        + title_effect
        + industry_effect
        + e["log1p_page_views"] * np.log1p(page_views)
        + e["email_opens_capped_8"] * np.minimum(opens, 8)
        + e["minutes_capped_60"] * np.minimum(minutes, 60)
        + e["trial_started"] * trial
        + e["budget_confirmed"] * budget
        + e["webinar_attended"] * webinar
    )

    t0 = np.datetime64(datetime.combine(start, time()), "s")
    export_at = np.datetime64(datetime.combine(end + timedelta(days=1), time()), "s")
    span = int((export_at - t0) / np.timedelta64(1, "s"))
    created = t0 + rng.integers(0, span, n).astype("timedelta64[s]")
    converts = rng.random(n) < sigmoid(logit)
    lag_seconds = (LAG_MIN_DAYS + rng.gamma(LAG_SHAPE, LAG_SCALE_DAYS, n)) * 86_400
    converted_at = created + lag_seconds.astype("timedelta64[s]")
    known = converts & (converted_at < export_at)
    converted_at = np.where(known, converted_at, np.datetime64("NaT"))

    ids = np.char.add("L", np.char.zfill(np.arange(1, n + 1).astype(str), 7)).astype(object)
    first_names = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    emails = np.char.add(np.char.add("lead", np.arange(1, n + 1).astype(str)), "@example.com")
    export = pd.DataFrame(
        {
            "Lead ID": ids,
            "First Name": first_names,
            "Email": emails.astype(object),
            "Create Date": pd.to_datetime(created),
            "Original Source": source,
            "Country": country,
            "Company Size": size,
            "Job Title": title,
            "Marketing Emails Opened": opens,
            "Number of Pageviews": page_views,
            "Number of Sessions": sessions,
            "Time on Site (min)": minutes,
            "Industry": industry,
            "Preferred Language": language,
            "Webinar Attended": _yes_no(webinar),
            "Trial Started": _yes_no(trial),
            "Budget Confirmed": _yes_no(budget),
            "Became a Customer Date": pd.to_datetime(converted_at),
        }
    )
    for column, (share, token) in MISSING_SHARES.items():
        hidden = rng.random(n) < share
        export[column] = export[column].where(~hidden, token)
    # A few sessions without a measured time on site, as trackers do.
    export["Time on Site (min)"] = export["Time on Site (min)"].where(rng.random(n) >= 0.03)
    return export[list(EXPORT_COLUMNS)], logit


def generate_leads(
    n: int = 20_000,
    seed: int = 42,
    start: date = date(2024, 10, 1),
    end: date = date(2026, 9, 30),
) -> pd.DataFrame:
    """A HubSpot-style lead export with a known conversion model (see the module docstring).

    Args:
        n: Number of leads.
        seed: Random seed; the same seed gives the same export.
        start: First creation day.
        end: Last creation day; the export is taken at the end of this day.

    Returns:
        One row per lead, columns :data:`EXPORT_COLUMNS`; dates are pandas timestamps (NaT while
        not converted), "not filled in" values are ``""`` or ``"Select"``. Write it with
        ``to_csv(index=False)``.
    """
    return generate_leads_with_truth(n, seed, start, end)[0]
