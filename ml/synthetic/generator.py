"""Synthetic CRM generator: the embedded default data, with a hidden ground truth.

It simulates about two years of a subscription business month by month (see
docs/synthetic-world.md for the world and its dirt) and writes the raw contract tables of
``ml/data/contract.py`` into one folder, plus the truth (record -> person map and the true 90-day churn
probability of every active person on every month start) into another folder that the pipeline
never reads.

Design choices:

* Persons are simulated in fixed blocks of ``BLOCK_PERSONS``; each block has its own random
  generator seeded from ``(seed, block index)``. ``chunk_size`` only groups blocks into written row
  groups, so the data do not depend on it: chunked and unchunked runs give identical tables.
* Within a block everything is vectorised with numpy; the only Python loops run over months, event
  types and blocks.
* The latent path (engagement, tickets, plan changes, hazards) of a person is simulated for every
  month after sign-up whether or not the person churns; churn is then one draw against the
  hazards and only censors what is written. That makes the true probability at any as-of date well
  defined (``1 - prod(1 - h)`` over the realised latent path).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ml.data.contract import RAW_TABLES
from ml.synthetic.config import (
    BLOCK_PERSONS,
    DAY,
    FileFormat,
    Grid,
    SyntheticConfig,
    epoch_seconds,
    month_grid,
)
from ml.synthetic.leads import LEAD_ID_COLUMN, generate_leads_with_truth
from ml.synthetic.params import (
    BURST_START_P,
    CAMPAIGN_EFFECT,
    CAMPAIGN_EVERY_MONTHS,
    CAMPAIGN_FIRST_MONTH,
    CAMPAIGN_MONTHS_AFFECTED,
    CAMPAIGN_SAMPLE_SHARE,
    CAMPAIGN_TREATED_SHARE,
    CHANNEL_ENGAGEMENT,
    CHANNEL_SHARE,
    CHANNELS,
    CONSENT_CHANNEL_LABELS,
    CONSENT_GRANT_P,
    CONTACT_CHANNELS,
    CONTACT_PURPOSES,
    CONTRACT_DISCOUNT,
    CONTRACT_MONTHS,
    CONTRACT_SHARE,
    CONTRACTS,
    COUNTRY_CALLING,
    COUNTRY_CODES,
    COUNTRY_SHARE,
    COUNTRY_SPELLINGS,
    DIRT,
    DO_NOT_CONTACT_P,
    EMAIL_DOMAINS,
    ENGAGEMENT_AR,
    ENGAGEMENT_SEASON,
    EVENT_TYPES,
    FIRST_NAMES,
    GENDER_SHARE,
    GENDERS,
    HAZARD,
    INITIAL_BASE_SHARE,
    LAST_NAMES,
    LIST_PRICE,
    LOST_CAUSE_CHURN_90D,
    NEWSLETTER_P,
    ORDER_AFFINITY_SD,
    ORDER_CATEGORIES,
    ORDER_MEDIAN_EUR,
    ORDER_SHARE,
    PLAN_ENGAGEMENT,
    PLAN_ORDER_AFFINITY,
    PLAN_SHARE,
    PLANS,
    PRICE_INCREASE,
    PRICE_INCREASE_MONTH,
    RESPONSE_TYPES,
    SERVICE_CALL_P,
    SIGNUP_SEASON,
    TICKET_CATEGORIES,
    TICKET_PRIORITIES,
)

ERASURE_REQUESTS = "erasure_requests"
"""The raw table written last: its requests name records of the whole run."""
TRUTH_TABLES: tuple[str, ...] = ("record_persons", "churn_truth", "campaign_truth")
"""Files (``<name>.parquet``) written into the truth folder."""
LEADS_FILE = "leads.csv"
"""The synthetic lead export (HubSpot-style columns, loaded through a mapping like a real one)."""
LEAD_TRUTH_FILE = "lead_truth.parquet"
"""Each lead's true log-odds of conversion (truth folder)."""


@dataclass(frozen=True)
class GenerationResult:
    """What :func:`generate` wrote.

    Attributes:
        rows: Rows per raw table.
        truth_rows: Rows per truth table.
        paths: File per table name (raw and truth).
        persons: Simulated persons.
        seconds: Wall time of the run.
        churn_rate_90d: Share of active person-as-of rows that churned within 90 days (truth).
        oracle_auc: ROC AUC of the true probability against the realised churn over all truth rows
            (None when one class is missing).
        as_of_dates: The as-of dates of the truth (first of the month).
    """

    rows: dict[str, int]
    truth_rows: dict[str, int]
    paths: dict[str, Path]
    persons: int
    seconds: float
    churn_rate_90d: float
    oracle_auc: float | None = None
    as_of_dates: tuple[date, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# One block of persons
# --------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _uniform_in(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform integer seconds in [lo, hi) elementwise (hi > lo)."""
    return lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)


@dataclass
class _Block:
    """Raw rows of one block with block-local person/record indices, before ids are assigned."""

    n_persons: int
    n_records: int
    customers: dict[str, np.ndarray]
    subscriptions: dict[str, np.ndarray]
    orders: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    tickets: dict[str, np.ndarray]
    consents: dict[str, np.ndarray]
    campaigns: dict[str, np.ndarray]
    contacts: dict[str, np.ndarray]
    record_person: np.ndarray  # local person index per local record
    truth: dict[str, np.ndarray]
    campaign_truth: dict[str, np.ndarray]


def _simulate_block(config: SyntheticConfig, grid: Grid, block: int, first_person: int) -> _Block:
    n = min(BLOCK_PERSONS, config.customers - first_person)
    rng = np.random.default_rng([config.seed, block])
    # Campaigns and purchase tastes draw from their own stream, so adding them left the rest of
    # the world's random draws as they were.
    crng = np.random.default_rng([config.seed, block, 1])
    M = grid.months
    b = grid.bounds
    lengths = grid.lengths

    # ---- persons ---------------------------------------------------------------------------
    season = SIGNUP_SEASON[grid.month_of_year[: grid.data_months]].copy()
    season[0] = 0.0
    later = season / season.sum() * (1.0 - INITIAL_BASE_SHARE)
    signup_p = later.copy()
    signup_p[0] = INITIAL_BASE_SHARE
    signup_m = rng.choice(grid.data_months, size=n, p=signup_p / signup_p.sum())
    sign_hi = np.minimum(b[signup_m + 1], grid.snapshot_end)
    signup_ts = _uniform_in(rng, b[signup_m], sign_hi)

    plan = rng.choice(3, size=n, p=PLAN_SHARE)
    contract = rng.choice(3, size=n, p=CONTRACT_SHARE)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE)
    e0 = rng.lognormal(np.log(11.0), 0.55, n) * CHANNEL_ENGAGEMENT[channel]
    # Some persons keep their engagement, the others lose it at their own rate.
    decays = rng.random(n) < 0.55
    decay = np.where(decays, rng.uniform(0.02, 0.16, n), 0.0)
    frailty = rng.normal(0.0, HAZARD["person_sd"], n)
    affinity = crng.normal(0.0, ORDER_AFFINITY_SD, (n, len(ORDER_CATEGORIES)))

    # ---- latent monthly path (all persons, churn ignored) ------------------------------------
    counts = {t: np.zeros((n, M), dtype=np.int32) for t in EVENT_TYPES}
    H = np.zeros((n, M))
    ar = np.zeros(n)
    prev_logins = np.zeros(n)
    prev2_logins = np.zeros(n)
    prev_visits = np.zeros(n)
    prev_opens = np.zeros(n)
    Z = np.zeros((n, M))  # churn log-odds per month, campaign effect included
    effect = np.zeros((n, M))  # campaign effect on the log-odds per month
    send_parts: list[tuple[np.ndarray, ...]] = []
    tick_hist = np.zeros((n, 3))  # tickets opened in m-1, m-2, m-3
    sat_sum = np.zeros((n, 3))
    sat_cnt = np.zeros((n, 3))
    prev_open = np.zeros(n)
    never_resolved = np.zeros(n)
    burst_left = np.zeros(n, dtype=np.int64)
    last_downgrade = np.full(n, -100)
    price_bumped_at = np.full(n, -100)
    price = LIST_PRICE[plan] * (1.0 - CONTRACT_DISCOUNT[contract])
    price_month = PRICE_INCREASE_MONTH if grid.data_months > PRICE_INCREASE_MONTH else -1

    periods: list[tuple[np.ndarray, ...]] = [
        (np.arange(n), signup_ts, plan.copy(), contract.copy(), price.copy(), np.zeros(n, np.int8))
    ]
    ticket_parts: list[tuple[np.ndarray, ...]] = []
    order_parts: list[tuple[np.ndarray, ...]] = []

    def list_price(p: np.ndarray, month: int) -> np.ndarray:
        lp = LIST_PRICE[p].copy()
        if 0 <= price_month <= month:
            lp[p == 0] = round(LIST_PRICE[0] * (1 + PRICE_INCREASE), 2)
        return lp

    for m in range(M):
        signed = signup_m <= m
        seasoned = signup_m < m  # a full month of history exists
        lo = np.maximum(b[m], signup_ts)
        frac = np.where(signed, (b[m + 1] - lo) / lengths[m], 0.0)
        frac = np.clip(frac, 0.0, 1.0)
        age = np.maximum(m - signup_m, 0)

        # Hazard of month m from the state of month m-1.
        tenure = age
        locked = (contract > 0) & (tenure % CONTRACT_MONTHS[contract] != 0)
        renewal = (contract > 0) & ~locked
        recent_sat = sat_cnt.sum(axis=1)
        low_sat = (recent_sat > 0) & (sat_sum.sum(axis=1) <= 2.5 * recent_sat)
        z = (
            HAZARD["intercept"]
            + HAZARD["log_logins"] * np.log1p(0.5 * (prev_logins + prev2_logins))
            + HAZARD["tickets_2_months"] * np.minimum(tick_hist[:, :2].sum(axis=1), 5)
            + HAZARD["tickets_3rd_month"] * np.minimum(tick_hist[:, 2], 3)
            + HAZARD["open_tickets"] * np.minimum(prev_open, 3)
            + HAZARD["low_satisfaction"] * low_sat
            + HAZARD["new_customer"] * np.exp(-(tenure - 1) / 3.0)
            + HAZARD["price_increase_3m"] * ((m - price_bumped_at) <= 3)
            + HAZARD["downgrade_3m"] * ((m - last_downgrade) <= 3)
            + HAZARD["log_pricing_visits"] * np.log1p(prev_visits)
            + HAZARD["contract_locked"] * locked
            + HAZARD["contract_renewal"] * renewal
            + frailty
            + rng.normal(0.0, HAZARD["month_sd"], n)
        )
        wave = m >= CAMPAIGN_FIRST_MONTH and (m - CAMPAIGN_FIRST_MONTH) % CAMPAIGN_EVERY_MONTHS == 0
        if wave and m < grid.data_months:
            # Response type from the state an as-of date at the start of month m sees.
            price_sensitive = (prev_visits >= 1) | ((m - price_bumped_at) <= 3)
            persuadable = price_sensitive & (prev_logins >= 2)
            do_not_disturb = ~persuadable & (tenure >= 12) & (prev_opens == 0)
            kind = np.where(persuadable, 0, np.where(do_not_disturb, 1, 2))
            sampled = np.flatnonzero(seasoned & (crng.random(n) < CAMPAIGN_SAMPLE_SHARE))
            treated = crng.random(len(sampled)) < CAMPAIGN_TREATED_SHARE
            sent = b[m] + (crng.random(len(sampled)) * 5 * DAY).astype(np.int64)
            send_parts.append((sampled, np.full(len(sampled), m), treated, sent, kind[sampled]))
            contacted = sampled[treated]
            until = min(m + CAMPAIGN_MONTHS_AFFECTED, M)
            effect[contacted, m:until] = CAMPAIGN_EFFECT[kind[contacted]][:, None]
        z = z + effect[:, m]
        Z[:, m] = z
        H[:, m] = np.where(seasoned, _sigmoid(z), 0.0)

        # Activity of month m.
        ar = ENGAGEMENT_AR[0] * ar + rng.normal(0.0, ENGAGEMENT_AR[1], n)
        eng = e0 * np.exp(-decay * age + ar) * ENGAGEMENT_SEASON[grid.month_of_year[m]]
        logins = rng.poisson(eng * frac)
        counts["login"][:, m] = logins
        counts["feature_use"][:, m] = rng.poisson(0.55 * eng * PLAN_ENGAGEMENT[plan] * frac)
        opens = rng.poisson(2.2 * np.sqrt(eng / 9.0) * frac)
        counts["email_open"][:, m] = opens
        counts["email_click"][:, m] = rng.binomial(opens, 0.18)
        visits = rng.poisson((0.05 + 5.0 * H[:, m]) * frac)
        counts["pricing_page_visit"][:, m] = visits

        # Support tickets: a Poisson stream plus bursts that last one or two months.
        starts = signed & (burst_left == 0) & (rng.random(n) < BURST_START_P)
        burst_left = np.where(starts, rng.integers(1, 3, n), burst_left)
        bursting = burst_left > 0
        n_tick = rng.poisson((0.10 + 1.7 * bursting) * frac)
        burst_left = np.maximum(burst_left - 1, 0)
        tp = np.repeat(np.arange(n), n_tick)
        t_open = _uniform_in(rng, lo[tp], np.full(len(tp), b[m + 1]))
        t_burst = bursting[tp]
        hours = rng.lognormal(np.where(t_burst, np.log(40.0), np.log(16.0)), 1.0)
        hours = np.minimum(hours, 20 * 24)
        unresolved = rng.random(len(tp)) < 0.03
        t_resolved = np.where(unresolved, -1, t_open + (hours * 3600).astype(np.int64))
        rated = ~unresolved & (rng.random(len(tp)) < 0.65)
        score = np.clip(np.rint(rng.normal(np.where(t_burst, 2.3, 4.1), 0.9)), 1, 5)
        score = np.where(rated, score, -1).astype(np.int64)
        category = np.where(
            t_burst & (rng.random(len(tp)) < 0.7),
            1,
            rng.choice(4, size=len(tp), p=(0.3, 0.35, 0.2, 0.15)),
        )
        priority = np.where(
            t_burst,
            rng.choice(3, size=len(tp), p=(0.15, 0.5, 0.35)),
            rng.choice(3, size=len(tp), p=(0.35, 0.5, 0.15)),
        )
        ticket_parts.append((tp, t_open, t_resolved, score, category, priority))

        # Orders (add-ons, services, hardware) and their refunds.
        n_ord = rng.poisson(0.05 * PLAN_ENGAGEMENT[plan] * np.sqrt(eng / 9.0) * frac)
        op = np.repeat(np.arange(n), n_ord)
        o_ts = _uniform_in(rng, lo[op], np.full(len(op), b[m + 1]))
        taste = np.asarray(ORDER_SHARE) * np.exp(affinity + PLAN_ORDER_AFFINITY[plan])
        cum = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1)[op]
        o_cat = np.minimum((rng.random(len(op))[:, None] > cum).sum(axis=1), 2)
        o_amt = np.round(ORDER_MEDIAN_EUR[o_cat] * rng.lognormal(0.0, 0.5, len(op)), 2)
        order_parts.append((op, o_ts, o_cat, o_amt))

        # Plan changes: downgrades follow low engagement; upgrades follow high engagement.
        down_p = 0.003 + 0.05 * (prev_logins <= 2)
        up_p = 0.002 + 0.008 * (prev_logins >= 15)
        u = rng.random(n)
        down = seasoned & (plan > 0) & (u < down_p)
        up = seasoned & (plan < 2) & ~down & (u > 1 - up_p)
        changed = down | up
        if changed.any():
            plan = np.where(down, plan - 1, np.where(up, plan + 1, plan))
            price = np.where(
                changed, list_price(plan, m) * (1 - CONTRACT_DISCOUNT[contract]), price
            )
            idx = np.flatnonzero(changed)
            c_ts = _uniform_in(rng, np.full(len(idx), b[m]), np.full(len(idx), b[m + 1]))
            periods.append(
                (idx, c_ts, plan[idx], contract[idx], price[idx], np.ones(len(idx), np.int8))
            )
            last_downgrade = np.where(down, m, last_downgrade)
        if m == price_month:
            # The price increase hits month-to-month basic customers who are already there.
            bump = seasoned & (plan == 0) & (contract == 0)
            idx = np.flatnonzero(bump)
            price = np.where(bump, round(LIST_PRICE[0] * (1 + PRICE_INCREASE), 2), price)
            periods.append(
                (
                    idx,
                    np.full(len(idx), b[m]),
                    plan[idx],
                    contract[idx],
                    price[idx],
                    np.full(len(idx), 2, np.int8),
                )
            )
            price_bumped_at = np.where(bump, m, price_bumped_at)

        # State observed at the end of month m (the input of next month's hazard).
        prev2_logins = prev_logins
        prev_logins = logins.astype(float)
        prev_visits = visits.astype(float)
        prev_opens = opens.astype(float)
        n_t = np.bincount(tp, minlength=n)
        tick_hist = np.column_stack([n_t, tick_hist[:, :2]])
        s_sum = np.bincount(tp, weights=np.where(score > 0, score, 0), minlength=n)
        s_cnt = np.bincount(tp, weights=(score > 0).astype(float), minlength=n)
        sat_sum = np.column_stack([s_sum, sat_sum[:, :2]])
        sat_cnt = np.column_stack([s_cnt, sat_cnt[:, :2]])
        never_resolved += np.bincount(tp, weights=unresolved.astype(float), minlength=n)
        open_late = np.bincount(tp, weights=(t_resolved >= b[m + 1]).astype(float), minlength=n)
        prev_open = never_resolved + open_late

    # ---- churn: one draw per month against the hazard ----------------------------------------
    at_risk = signup_m[:, None] < np.arange(M)[None, :]
    hit = at_risk & (rng.random((n, M)) < H)
    churned = hit.any(axis=1)
    churn_m = np.where(churned, hit.argmax(axis=1), M)
    cm = np.minimum(churn_m, M - 1)
    churn_ts = np.where(churned, _uniform_in(rng, b[cm], b[cm + 1]), np.iinfo(np.int64).max)
    # Nothing is written at or after the churn or the snapshot.
    cut = np.minimum(churn_ts, grid.snapshot_end)

    # ---- truth --------------------------------------------------------------------------------
    truth = _truth(grid, H, signup_m, churn_m, churn_ts)
    campaigns, campaign_truth = _campaign_sends(grid, send_parts, Z, effect, churn_ts, cut)

    # ---- records (duplicates) ------------------------------------------------------------------
    has_dup = rng.random(n) < config.duplicate_share
    n_rec = 1 + has_dup * (1 + (rng.random(n) < 0.25))
    rec_person = np.repeat(np.arange(n), n_rec)
    rec_k = np.arange(len(rec_person)) - np.repeat(np.cumsum(n_rec) - n_rec, n_rec)
    life_end = np.minimum(cut, grid.snapshot_end - 1)
    rec_created = np.where(
        rec_k == 0,
        signup_ts[rec_person],
        _uniform_in(rng, signup_ts[rec_person], np.maximum(life_end, signup_ts + 1)[rec_person]),
    )
    # Records are listed in creation order, so a person's duplicates are not neighbours.
    order = np.lexsort((rec_k, rec_person, rec_created))
    rec_person, rec_k, rec_created = rec_person[order], rec_k[order], rec_created[order]
    # Slot of (person, k) in person order is first_slot[person] + k; rec_pos maps it to its row.
    rec_pos = np.empty(len(order), dtype=np.int64)
    rec_pos[order] = np.arange(len(order))
    first_slot = np.cumsum(n_rec) - n_rec

    def attach(person: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Local record row for rows of the given persons: duplicates get some of the activity."""
        k = np.zeros(len(person), dtype=np.int64)
        extra = n_rec[person] - 1
        pick = (extra > 0) & (rng.random(len(person)) < DIRT["duplicate_activity_share"])
        k[pick] = 1 + (rng.random(pick.sum()) * extra[pick]).astype(np.int64)
        rows = rec_pos[first_slot[person] + k]
        # A record cannot hold activity from before it was created.
        too_early = rec_created[rows] > ts
        rows[too_early] = rec_pos[first_slot[person[too_early]]]
        return rows

    customers = _customer_rows(rng, first_person, rec_person, rec_k, rec_created, has_dup, channel)

    # ---- subscriptions -------------------------------------------------------------------------
    sp, sts, splan, scon, sprice, sreason = (np.concatenate(x) for x in zip(*periods, strict=True))
    keep = sts < cut[sp]
    sp, sts, splan, scon, sprice, sreason = (
        x[keep] for x in (sp, sts, splan, scon, sprice, sreason)
    )
    o = np.lexsort((sreason, sts, sp))
    sp, sts, splan, scon, sprice, sreason = (x[o] for x in (sp, sts, splan, scon, sprice, sreason))
    last = np.ones(len(sp), dtype=bool)
    last[:-1] = sp[1:] != sp[:-1]
    nxt_ts = np.empty_like(sts)
    nxt_ts[:-1] = sts[1:]
    nxt_reason = np.zeros_like(sreason)
    nxt_reason[:-1] = sreason[1:]
    end_ts = np.where(last, churn_ts[sp], nxt_ts)
    end_reason = np.where(last, 3, nxt_reason)  # 1 plan_change, 2 price_change, 3 cancelled
    ended = end_ts < grid.snapshot_end
    subscriptions = {
        "record": attach(sp, sts) if len(sp) else sp,
        "person": sp,
        "plan": splan,
        "contract": scon,
        "price": sprice,
        "started_at": sts,
        "ended_at": np.where(ended, end_ts, -1),
        "end_reason": np.where(ended, end_reason, 0),
    }
    # The first period of a person always sits on the primary record: it created the record.
    first = np.r_[True, last[:-1]] if len(sp) else np.zeros(0, dtype=bool)
    subscriptions["record"][first] = rec_pos[first_slot[sp[first]]]

    # ---- events --------------------------------------------------------------------------------
    ev_p: list[np.ndarray] = []
    ev_t: list[np.ndarray] = []
    ev_ty: list[np.ndarray] = []
    # Thinning draws from its own stream and only when asked, so the default world (share 1.0)
    # is the same draw for draw.
    thin = np.random.default_rng([config.seed, block, 2]) if config.event_share < 1.0 else None
    for m in range(grid.data_months):
        lo = np.maximum(b[m], signup_ts)
        alive = lo < cut
        for ti, t in enumerate(EVENT_TYPES):
            c = np.where(alive, counts[t][:, m], 0)
            if thin is not None:
                c = thin.binomial(c, config.event_share)
            p = np.repeat(np.arange(n), c)
            ts = _uniform_in(rng, lo[p], np.full(len(p), b[m + 1]))
            ok = ts < cut[p]
            ev_p.append(p[ok])
            ev_t.append(ts[ok])
            ev_ty.append(np.full(ok.sum(), ti, dtype=np.int8))
    ep, et, ety = np.concatenate(ev_p), np.concatenate(ev_t), np.concatenate(ev_ty)
    o = np.lexsort((ety, et, ep))
    ep, et, ety = ep[o], et[o], ety[o]
    events = {"record": attach(ep, et), "event_type": ety, "occurred_at": et}

    # ---- tickets --------------------------------------------------------------------------------
    tp, t_open, t_res, score, cat, prio = (
        np.concatenate(x) for x in zip(*ticket_parts, strict=True)
    )
    keep = t_open < cut[tp]
    tp, t_open, t_res, score, cat, prio = (x[keep] for x in (tp, t_open, t_res, score, cat, prio))
    o = np.lexsort((t_open, tp))
    tp, t_open, t_res, score, cat, prio = (x[o] for x in (tp, t_open, t_res, score, cat, prio))
    open_at_snapshot = (t_res < 0) | (t_res >= grid.snapshot_end)
    tickets = {
        "record": attach(tp, t_open),
        "opened_at": t_open,
        "resolved_at": np.where(open_at_snapshot, -1, t_res),
        "satisfaction": np.where(open_at_snapshot, -1, score),
        "category": cat,
        "priority": prio,
    }

    # ---- orders and refunds --------------------------------------------------------------------
    op, o_ts, o_cat, o_amt = (np.concatenate(x) for x in zip(*order_parts, strict=True))
    keep = o_ts < cut[op]
    op, o_ts, o_cat, o_amt = op[keep], o_ts[keep], o_cat[keep], o_amt[keep]
    refund = rng.random(len(op)) < 0.06
    r_ts = o_ts[refund] + rng.integers(1 * DAY, 20 * DAY, refund.sum())
    r_ok = r_ts < grid.snapshot_end
    op = np.concatenate([op, op[refund][r_ok]])
    o_ts = np.concatenate([o_ts, r_ts[r_ok]])
    o_cat = np.concatenate([o_cat, o_cat[refund][r_ok]])
    o_amt = np.concatenate([o_amt, -o_amt[refund][r_ok]])
    o_status = np.concatenate([np.zeros(len(refund), np.int8), np.ones(r_ok.sum(), np.int8)])
    o = np.lexsort((o_ts, op))
    op, o_ts, o_cat, o_amt, o_status = op[o], o_ts[o], o_cat[o], o_amt[o], o_status[o]
    orders = {
        "record": attach(op, o_ts),
        "ordered_at": o_ts,
        "amount": o_amt,
        "category": o_cat,
        "status": o_status,
    }

    # ---- consents: per record and channel, with a few withdrawals ------------------------------
    cr = np.repeat(np.arange(len(rec_person)), 3)
    cch = np.tile(np.arange(3), len(rec_person))
    granted = rng.random(len(cr)) < CONSENT_GRANT_P[cch]
    cr, cch = cr[granted], cch[granted]
    g_ts = rec_created[cr] + rng.integers(0, 600, len(cr))
    withdraw = rng.random(len(cr)) < 0.08
    w_ts = _uniform_in(rng, g_ts[withdraw], np.full(withdraw.sum(), grid.snapshot_end))
    w_ok = w_ts > g_ts[withdraw]
    c_rec = np.concatenate([cr, cr[withdraw][w_ok]])
    c_ch = np.concatenate([cch, cch[withdraw][w_ok]])
    c_ts = np.concatenate([g_ts, w_ts[w_ok]])
    c_st = np.concatenate([np.zeros(len(cr), np.int8), np.ones(w_ok.sum(), np.int8)])
    keep = c_ts < grid.snapshot_end
    o = np.lexsort((c_ts, c_rec))
    o = o[keep[o]]
    # A few records ask not to be contacted at all (channel "all", withdrawn).
    dnc = np.flatnonzero(crng.random(len(rec_person)) < DO_NOT_CONTACT_P)
    dnc_ts = _uniform_in(crng, rec_created[dnc], np.full(len(dnc), grid.snapshot_end))
    c_rec = np.concatenate([c_rec[o], dnc])
    c_ch = np.concatenate([c_ch[o], np.full(len(dnc), 3)])
    c_st = np.concatenate([c_st[o], np.ones(len(dnc), np.int8)])
    c_ts = np.concatenate([c_ts[o], dnc_ts])
    o = np.lexsort((c_ts, c_rec))
    consents = {"record": c_rec[o], "channel": c_ch[o], "status": c_st[o], "recorded_at": c_ts[o]}

    campaigns["record"] = attach(campaigns["person"], campaigns["sent_at"])
    _add_dirt(rng, events, orders)
    contacts = _contact_log(crng, grid, rec_person, rec_created, cut, campaigns)
    return _Block(
        n_persons=n,
        n_records=len(rec_person),
        customers=customers,
        subscriptions=subscriptions,
        orders=orders,
        events=events,
        tickets=tickets,
        consents=consents,
        campaigns=campaigns,
        contacts=contacts,
        record_person=rec_person,
        truth=truth,
        campaign_truth=campaign_truth,
    )


def _contact_log(
    crng: np.random.Generator,
    grid: Grid,
    rec_person: np.ndarray,
    rec_created: np.ndarray,
    cut: np.ndarray,
    campaigns: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Outbound contacts per record: monthly newsletters, service calls, treated campaign sends.

    Newsletters ignore consent on purpose (a real contact log holds mistakes too); the policy
    reads consent from the consents table, not from this log.
    """
    months = grid.data_months
    n_rec = len(rec_person)
    record = np.repeat(np.arange(n_rec), months)
    month = np.tile(np.arange(months), n_rec)
    u = crng.random((2, len(record)))
    purpose = np.where(u[0] < NEWSLETTER_P, 0, np.where(u[1] < SERVICE_CALL_P, 1, -1))
    keep = purpose >= 0
    record, month, purpose = record[keep], month[keep], purpose[keep]
    lo = np.maximum(grid.bounds[month], rec_created[record])
    hi = np.full(len(record), 0) + grid.bounds[month + 1]
    ok = lo < np.minimum(hi, cut[rec_person[record]])
    record, purpose, lo, hi = record[ok], purpose[ok], lo[ok], hi[ok]
    at = _uniform_in(crng, lo, hi)
    ok = at < cut[rec_person[record]]
    record, purpose, at = record[ok], purpose[ok], at[ok]
    treated = campaigns["treated"].astype(bool)
    record = np.concatenate([record, campaigns["record"][treated]])
    purpose = np.concatenate([purpose, np.full(int(treated.sum()), 2)])
    at = np.concatenate([at, campaigns["sent_at"][treated]])
    channel = np.where(purpose == 1, 1, 0)  # service calls by phone, the rest by e-mail
    o = np.lexsort((at, record))
    return {
        "record": record[o],
        "channel": channel[o],
        "purpose": purpose[o],
        "contacted_at": at[o],
    }


def _campaign_sends(
    grid: Grid,
    send_parts: list[tuple[np.ndarray, ...]],
    Z: np.ndarray,
    effect: np.ndarray,
    churn_ts: np.ndarray,
    cut: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Campaign rows (sends before the person left) and each send's true uplift in retention.

    The true uplift is P(churn within the three affected months | control) minus the same under
    treatment, both from the person's hazard without any campaign effect.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not send_parts:
        parts: tuple[np.ndarray, ...] = (empty,) * 5
    else:
        parts = tuple(np.concatenate(x) for x in zip(*send_parts, strict=True))
    person, month, treated, sent, kind = parts
    keep = sent < cut[person]
    person, month, treated, sent, kind = (x[keep] for x in (person, month, treated, sent, kind))
    M = Z.shape[1]
    months = np.minimum(month[:, None] + np.arange(CAMPAIGN_MONTHS_AFFECTED)[None, :], M - 1)
    inside = (month[:, None] + np.arange(CAMPAIGN_MONTHS_AFFECTED)[None, :]) < M
    base = Z[person[:, None], months] - effect[person[:, None], months]
    tau = CAMPAIGN_EFFECT[kind][:, None]
    stay_control = np.prod(np.where(inside, 1.0 - _sigmoid(base), 1.0), axis=1)
    stay_treated = np.prod(np.where(inside, 1.0 - _sigmoid(base + tau), 1.0), axis=1)
    unaffected = kind >= 2
    kind = np.where(unaffected & (1.0 - stay_control >= LOST_CAUSE_CHURN_90D), 3, kind)
    horizon_end = sent + 90 * DAY
    known = horizon_end <= grid.snapshot_end
    retained = churn_ts[person] >= horizon_end
    campaigns = {
        "person": person,
        "month": month,
        "treated": treated,
        "sent_at": sent,
        "outcome": np.where(known, retained.astype(np.int64), -1),
    }
    truth = {"response_type": kind, "true_uplift": stay_treated - stay_control}
    return campaigns, truth


def _truth(
    grid: Grid, H: np.ndarray, signup_m: np.ndarray, churn_m: np.ndarray, churn_ts: np.ndarray
) -> dict[str, np.ndarray]:
    """True 90-day churn probability and realised outcome per active person and as-of date."""
    persons: list[np.ndarray] = []
    as_of: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    outcome: list[np.ndarray] = []
    lengths = grid.lengths / DAY
    for a in grid.as_of_index:
        active = (signup_m < a) & (churn_m >= a)
        # The label window is 90 days, not three calendar months: the third month only counts
        # for the days that fall inside the window (churn time is uniform within a month).
        f3 = (90.0 - lengths[a] - lengths[a + 1]) / lengths[a + 2]
        h = H[active]
        p = 1.0 - (1.0 - h[:, a]) * (1.0 - h[:, a + 1]) * (1.0 - f3 * h[:, a + 2])
        start = grid.bounds[a]
        ct = churn_ts[active]
        persons.append(np.flatnonzero(active))
        as_of.append(np.full(active.sum(), a))
        probs.append(p)
        outcome.append((ct >= start) & (ct < start + 90 * DAY))
    return {
        "person": np.concatenate(persons),
        "as_of": np.concatenate(as_of),
        "probability": np.concatenate(probs),
        "churned": np.concatenate(outcome),
    }


def _customer_rows(
    rng: np.random.Generator,
    first_person: int,
    rec_person: np.ndarray,
    rec_k: np.ndarray,
    rec_created: np.ndarray,
    has_dup: np.ndarray,
    channel: np.ndarray,
) -> dict[str, np.ndarray]:
    """Record attributes with the dirt of real CRMs (see docs/synthetic-world.md)."""
    n = len(has_dup)
    r = len(rec_person)
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    country = rng.choice(len(COUNTRY_CODES), size=n, p=COUNTRY_SHARE)
    birth_year = rng.integers(1945, 2007, n)
    gender = rng.choice(3, size=n, p=GENDER_SHARE)
    domain = EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), n)]
    number = (first_person + np.arange(n) + 1).astype(str)
    area = rng.integers(20, 990, n).astype(str)
    # A bijection of the person number gives each person a unique subscriber number.
    subscriber = ((first_person + np.arange(n)) * 7_919_993 + 1_234_567) % 10_000_000
    subscriber_s = np.strings.zfill(subscriber.astype(str), 7)

    s = np.strings
    name = s.add(s.add(first[rec_person], " "), last[rec_person])
    case = rng.integers(0, 4, r)
    dup_rec = rec_k > 0
    name = np.where(dup_rec & (case == 1), s.upper(name), name)
    name = np.where(dup_rec & (case == 2), s.lower(name), name)

    local = s.add(s.add(s.add(s.lower(first), "."), s.lower(last)), number)
    email = s.add(s.add(local, "@"), domain)[rec_person]
    ecase = rng.integers(0, 4, r)
    email = np.where(dup_rec & (ecase == 1), s.upper(email), email)
    email = np.where(
        dup_rec & (ecase == 2), s.add(s.capitalize(email), " "), email
    )  # e.g. "Anna.mueller12@example.com "
    email = np.where(dup_rec & (ecase == 3), s.add("  ", email), email)
    email_missing = dup_rec & (rng.random(r) < DIRT["duplicate_missing_email"])

    cc = COUNTRY_CALLING[country][rec_person]
    ar_ = area[rec_person]
    sub = subscriber_s[rec_person]
    trunk = np.where(country[rec_person] == 3, "", "0")
    formats = [
        s.add(s.add(s.add(s.add(s.add("+", cc), " "), ar_), " "), sub),  # +49 30 1234567
        s.add(s.add(s.add(trunk, ar_), "-"), sub),  # 030-1234567
        s.add(s.add(s.add(s.add("(", trunk), ar_), ") "), sub),  # (030) 1234567
        s.add(s.add(s.add("00", cc), ar_), sub),  # 0049301234567
        s.add(s.add(s.add("+", cc), ar_), sub),  # +49301234567
    ]
    fmt = np.where(
        rec_k == 0, rng.choice(5, size=r, p=(0.5, 0.2, 0.1, 0.1, 0.1)), rng.integers(0, 5, r)
    )
    phone = np.choose(fmt, formats)
    # Persons with duplicates always keep a phone so that a record without e-mail still matches.
    phone_missing = ~has_dup[rec_person] & (rng.random(r) < DIRT["missing_phone"])

    spelled = np.empty(r, dtype=object)
    variant = np.where(rec_k == 0, rng.random(r) < 0.3, True)
    rc = country[rec_person]
    for ci, spellings in enumerate(COUNTRY_SPELLINGS):
        mine = rc == ci
        choice = np.where(variant[mine], rng.integers(0, len(spellings), mine.sum()), 0)
        spelled[mine] = np.array(spellings, dtype=object)[choice]
    country_missing = rng.random(r) < DIRT["missing_country"]

    return {
        "person": rec_person,
        "full_name": name,
        "email": email,
        "email_missing": email_missing,
        "phone": phone,
        "phone_missing": phone_missing,
        "country": spelled,
        "country_missing": country_missing,
        "birth_year": birth_year[rec_person],
        "birth_year_missing": rng.random(r) < DIRT["missing_birth_year"],
        "gender": gender[rec_person],
        "gender_missing": rng.random(r) < DIRT["missing_gender"],
        "channel": channel[rec_person],
        "channel_missing": rng.random(r) < DIRT["missing_channel"],
        "signed_up_at": rec_created,
    }


def _pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Row indices for a dirt kind: about ``rate * n`` rows, at least one when there are rows."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(n, max(1, round(rate * n)))
    return np.sort(rng.choice(n, size=k, replace=False))


def _add_dirt(
    rng: np.random.Generator, events: dict[str, np.ndarray], orders: dict[str, np.ndarray]
) -> None:
    """Future-dated rows (a year typo, 2031+), invalid completed orders, exact duplicate events."""
    future_years = rng.integers(7, 10, 1)[0]
    for table, rate, col in (
        (events, DIRT["future_events"], "occurred_at"),
        (orders, DIRT["future_orders"], "ordered_at"),
    ):
        idx = _pick(rng, len(table[col]), rate)
        table[col][idx] += int(future_years * 365.25 * DAY)
    completed = np.flatnonzero(orders["status"] == 0)
    bad = completed[_pick(rng, len(completed), DIRT["negative_completed_orders"])]
    orders["amount"][bad] = -orders["amount"][bad]
    # Exact duplicates are marked here and materialised once event ids exist.
    events["duplicate"] = np.zeros(len(events["occurred_at"]), dtype=bool)
    events["duplicate"][_pick(rng, len(events["occurred_at"]), DIRT["duplicate_events"])] = True


# --------------------------------------------------------------------------------------------
# Arrow tables
# --------------------------------------------------------------------------------------------


def _ids(prefix: str, start: int, n: int, width: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _ts_array(seconds: np.ndarray, unit: str, missing: np.ndarray | None = None) -> pa.Array:
    values = seconds.astype("datetime64[s]").astype(f"datetime64[{unit}]")
    return pa.array(values, pa.timestamp(unit), mask=missing)


def _labels(values: np.ndarray, codes: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    arr = pc.take(pa.array(values.tolist(), pa.string()), pa.array(codes.astype(np.int64)))
    if missing is not None and missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)
    return arr


def _strings(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(values.astype(str) if values.dtype != object else values, pa.string())
    if missing is not None and missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)
    return arr


@dataclass
class _Counters:
    """Global id counters; ids are sequential over blocks in block order."""

    persons: int = 0
    records: int = 0
    subscriptions: int = 0
    orders: int = 0
    events: int = 0
    tickets: int = 0
    consents: int = 0
    campaigns: int = 0
    contacts: int = 0


def _block_tables(blk: _Block, c: _Counters, grid: Grid, unit: str) -> dict[str, pa.Table]:
    """Turn a simulated block into Arrow tables in contract column order, assigning global ids."""
    rec_ids = _ids("R", c.records, blk.n_records, 7)
    person_ids = _ids("P", c.persons, blk.n_persons, 7)

    def rid(local: np.ndarray) -> pa.Array:
        return pc.take(rec_ids, pa.array(local.astype(np.int64)))

    cu = blk.customers
    cols: dict[str, dict[str, Any]] = {}
    cols["customers"] = {
        "customer_record_id": rec_ids,
        "full_name": _strings(cu["full_name"]),
        "email": _strings(cu["email"], cu["email_missing"]),
        "phone": _strings(cu["phone"], cu["phone_missing"]),
        "country": _strings(cu["country"], cu["country_missing"]),
        "birth_year": pa.array(cu["birth_year"], pa.int32(), mask=cu["birth_year_missing"]),
        "gender": _labels(GENDERS, cu["gender"], cu["gender_missing"]),
        "acquisition_channel": _labels(CHANNELS, cu["channel"], cu["channel_missing"]),
        "signed_up_at": _ts_array(cu["signed_up_at"], unit),
    }
    su = blk.subscriptions
    n_sub = len(su["started_at"])
    cols["subscriptions"] = {
        "subscription_id": _ids("S", c.subscriptions, n_sub, 8),
        "customer_record_id": rid(su["record"]),
        "plan": _labels(PLANS, su["plan"]),
        "contract_type": _labels(CONTRACTS, su["contract"]),
        "monthly_price": pa.array(np.round(su["price"], 2), pa.float64()),
        "started_at": _ts_array(su["started_at"], unit),
        "ended_at": _ts_array(su["ended_at"], unit, su["ended_at"] < 0),
        "end_reason": _labels(
            np.array(["", "plan_change", "price_change", "cancelled"]),
            su["end_reason"],
            su["end_reason"] == 0,
        ),
    }
    od = blk.orders
    n_ord = len(od["ordered_at"])
    cols["orders"] = {
        "order_id": _ids("O", c.orders, n_ord, 8),
        "customer_record_id": rid(od["record"]),
        "ordered_at": _ts_array(od["ordered_at"], unit),
        "amount": pa.array(od["amount"], pa.float64()),
        "product_category": _labels(ORDER_CATEGORIES, od["category"]),
        "status": _labels(np.array(["completed", "refunded"]), od["status"]),
    }
    ev = blk.events
    n_ev = len(ev["occurred_at"])
    # Exact duplicate rows: the same event (same id) exported twice, next to each other.
    take = np.sort(np.concatenate([np.arange(n_ev), np.flatnonzero(ev["duplicate"])]))
    cols["events"] = {
        "event_id": pc.take(_ids("E", c.events, n_ev, 10), pa.array(take)),
        "customer_record_id": rid(ev["record"][take]),
        "event_type": _labels(np.array(EVENT_TYPES), ev["event_type"][take]),
        "occurred_at": _ts_array(ev["occurred_at"][take], unit),
    }
    tk = blk.tickets
    n_tk = len(tk["opened_at"])
    cols["support_tickets"] = {
        "ticket_id": _ids("T", c.tickets, n_tk, 8),
        "customer_record_id": rid(tk["record"]),
        "opened_at": _ts_array(tk["opened_at"], unit),
        "category": _labels(TICKET_CATEGORIES, tk["category"]),
        "priority": _labels(TICKET_PRIORITIES, tk["priority"]),
        "resolved_at": _ts_array(tk["resolved_at"], unit, tk["resolved_at"] < 0),
        "satisfaction_score": pa.array(tk["satisfaction"], pa.int32(), mask=tk["satisfaction"] < 0),
    }
    co = blk.consents
    n_co = len(co["recorded_at"])
    cols["consents"] = {
        "consent_id": _ids("C", c.consents, n_co, 8),
        "customer_record_id": rid(co["record"]),
        "channel": _labels(CONSENT_CHANNEL_LABELS, co["channel"]),
        "status": _labels(np.array(["granted", "withdrawn"]), co["status"]),
        "recorded_at": _ts_array(co["recorded_at"], unit),
    }
    ca = blk.campaigns
    n_ca = len(ca["sent_at"])
    wave_names = np.array(
        [f"retention-{datetime.fromtimestamp(t, UTC):%Y-%m}" for t in grid.bounds[:-1]]
    )
    cols["campaigns"] = {
        "send_id": _ids("X", c.campaigns, n_ca, 8),
        "customer_record_id": rid(ca["record"]),
        "campaign_id": _labels(wave_names, ca["month"]),
        "campaign_type": _labels(np.array(["retention_offer"]), np.zeros(n_ca, np.int64)),
        "sent_at": _ts_array(ca["sent_at"], unit),
        "arm": _labels(np.array(["control", "treatment"]), ca["treated"].astype(np.int64)),
        "outcome": pa.array(ca["outcome"], pa.int32(), mask=ca["outcome"] < 0),
    }
    ct = blk.contacts
    n_ct = len(ct["contacted_at"])
    cols["contacts"] = {
        "contact_id": _ids("M", c.contacts, n_ct, 9),
        "customer_record_id": rid(ct["record"]),
        "channel": _labels(CONTACT_CHANNELS, ct["channel"]),
        "contacted_at": _ts_array(ct["contacted_at"], unit),
        "purpose": _labels(CONTACT_PURPOSES, ct["purpose"]),
    }
    out = {name: _to_table(name, cols[name]) for name in cols}

    tr = blk.truth
    as_of_days = np.array([(d - date(1970, 1, 1)).days for d in grid.as_of_dates], dtype=np.int32)[
        tr["as_of"] - grid.as_of_index[0]
    ]
    out["record_persons"] = pa.table(
        {
            "customer_record_id": rec_ids,
            "person_id": pc.take(person_ids, pa.array(blk.record_person.astype(np.int64))),
        }
    )
    out["churn_truth"] = pa.table(
        {
            "person_id": pc.take(person_ids, pa.array(tr["person"].astype(np.int64))),
            "as_of_date": pa.array(as_of_days, pa.date32()),
            "churn_probability_90d": pa.array(tr["probability"], pa.float64()),
            "churned_within_90d": pa.array(tr["churned"], pa.bool_()),
        }
    )
    ct = blk.campaign_truth
    out["campaign_truth"] = pa.table(
        {
            "send_id": cols["campaigns"]["send_id"],
            "person_id": pc.take(person_ids, pa.array(ca["person"].astype(np.int64))),
            "response_type": _labels(RESPONSE_TYPES, ct["response_type"]),
            "true_uplift": pa.array(ct["true_uplift"], pa.float64()),
        }
    )
    c.persons += blk.n_persons
    c.records += blk.n_records
    c.subscriptions += n_sub
    c.orders += n_ord
    c.events += n_ev
    c.tickets += n_tk
    c.consents += n_co
    c.campaigns += n_ca
    c.contacts += n_ct
    return out


def _to_table(name: str, columns: dict[str, Any]) -> pa.Table:
    table = RAW_TABLES[name]
    if tuple(columns) != table.column_names:  # a bug here, never a data problem
        raise RuntimeError(f"{name}: columns {tuple(columns)} != contract {table.column_names}")
    return pa.table(columns)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class _Sink:
    """Append row groups to ``<final>.tmp`` and move it to ``<final>`` only when complete."""

    def __init__(self, final: Path, file_format: FileFormat) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        self.file_format = file_format
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._schema = table.schema
            if self.file_format == "parquet":
                self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.tmp, table.schema)
        assert self._schema is not None
        table = table.cast(self._schema)
        if self.file_format == "parquet":
            # One row group per chunk keeps readers' memory bounded too.
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        else:
            self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        assert self._writer is not None
        self._writer.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        if self._writer is not None:
            # Already failing: the original error matters more than one from closing.
            with contextlib.suppress(Exception):
                self._writer.close()
        self.tmp.unlink(missing_ok=True)


def _chunks(config: SyntheticConfig) -> Iterator[list[int]]:
    """Blocks grouped into chunks of about ``chunk_size`` persons."""
    n_blocks = -(-config.customers // BLOCK_PERSONS)
    per_chunk = max(1, -(-config.chunk_size // BLOCK_PERSONS))
    for start in range(0, n_blocks, per_chunk):
        yield list(range(start, min(n_blocks, start + per_chunk)))


def generate(config: SyntheticConfig, raw_dir: Path, truth_dir: Path) -> GenerationResult:
    """Simulate the synthetic CRM and write the raw contract tables and the hidden truth.

    Raw tables go to ``raw_dir/<table>.<parquet|csv>`` (columns in the order of
    ``ml.data.contract.RAW_TABLES``); the truth goes to ``truth_dir/record_persons.parquet`` and
    ``truth_dir/churn_truth.parquet``. Every file is written under a temporary name and renamed
    when all files are complete, so a crash never leaves a half-written file under a final name.
    A file of the other raw format for the same table is removed so the folder holds one source.

    Args:
        config: What to generate.
        raw_dir: Folder for the raw tables (created if missing).
        truth_dir: Folder for the truth (created if missing); the pipeline never reads it.

    Returns:
        Row counts, paths, timing, the truth's churn rate and oracle AUC.
    """
    started = time.perf_counter()
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    grid = month_grid(config)
    ext = "parquet" if config.file_format == "parquet" else "csv"
    unit = "us" if config.file_format == "parquet" else "s"
    sinks: dict[str, _Sink] = {
        name: _Sink(raw_dir / f"{name}.{ext}", config.file_format)
        for name in RAW_TABLES
        if name != ERASURE_REQUESTS
    }
    sinks.update({name: _Sink(truth_dir / f"{name}.parquet", "parquet") for name in TRUTH_TABLES})
    counters = _Counters()
    chunks = list(_chunks(config))
    positives = 0.0
    truth_rows = 0
    auc_parts: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        bar = _progress(config, sum(len(ch) for ch in chunks))
        for chunk in chunks:
            parts: dict[str, list[pa.Table]] = {name: [] for name in sinks}
            for block in chunk:
                blk = _simulate_block(config, grid, block, block * BLOCK_PERSONS)
                positives += float(blk.truth["churned"].sum())
                truth_rows += len(blk.truth["churned"])
                auc_parts.append((blk.truth["probability"], blk.truth["churned"]))
                for name, tbl in _block_tables(blk, counters, grid, unit).items():
                    parts[name].append(tbl)
                if bar is not None:
                    bar.update(1)
            for name, tables in parts.items():
                sinks[name].write(pa.concat_tables(tables))
        if bar is not None:
            bar.close()
        requests = _erasure_requests(config, counters.records, unit)
        sinks[ERASURE_REQUESTS] = _Sink(raw_dir / f"{ERASURE_REQUESTS}.{ext}", config.file_format)
        sinks[ERASURE_REQUESTS].write(requests)
        for sink in sinks.values():
            sink.close()
        for sink in sinks.values():
            sink.commit()
    except BaseException:
        for sink in sinks.values():
            sink.discard()
        raise
    # Ingest refuses a table with two candidate files, so stale files of other formats go.
    for name in RAW_TABLES:
        for other in ("parquet", "csv", "csv.gz"):
            if other != ext:
                (raw_dir / f"{name}.{other}").unlink(missing_ok=True)
    if config.leads:
        _write_leads(config, raw_dir, truth_dir)
    probs = np.concatenate([p for p, _ in auc_parts])
    labels = np.concatenate([y for _, y in auc_parts])
    return GenerationResult(
        rows={name: sinks[name].rows for name in RAW_TABLES},
        truth_rows={name: sinks[name].rows for name in TRUTH_TABLES},
        paths={name: sink.final for name, sink in sinks.items()},
        persons=counters.persons,
        seconds=time.perf_counter() - started,
        churn_rate_90d=positives / truth_rows if truth_rows else 0.0,
        oracle_auc=_auc(probs, labels),
        as_of_dates=grid.as_of_dates,
    )


def _erasure_requests(config: SyntheticConfig, records: int, unit: str) -> pa.Table:
    """A few people asked to be forgotten: one request each, naming one of their records.

    Drawn from their own random stream, so the rest of the world does not change with them.
    """
    rng = np.random.default_rng([config.seed, 0xE7A5E])
    n = min(config.erasure_requests, records)
    chosen = np.sort(rng.choice(records, size=n, replace=False)).astype(np.int64)
    end = epoch_seconds(config.end_date)
    asked = end - rng.integers(1, 60, size=n) * DAY
    return _to_table(
        ERASURE_REQUESTS,
        {
            "request_id": _ids("ER", 0, n, 5),
            "customer_record_id": pc.take(_ids("R", 0, records, 7), pa.array(chosen)),
            "requested_at": _ts_array(asked, unit),
        },
    )


def _write_leads(config: SyntheticConfig, raw_dir: Path, truth_dir: Path) -> None:
    """The lead export as CSV (as CRMs export it) and each lead's true log-odds, atomically."""
    export, true_logit = generate_leads_with_truth(
        config.leads, config.seed, config.start_date, config.end_date
    )
    final = raw_dir / LEADS_FILE
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    export.to_csv(tmp, index=False, date_format="%Y-%m-%d %H:%M:%S")
    truth = pa.table(
        {"lead_id": pa.array(export[LEAD_ID_COLUMN].astype(str)), "true_logit": true_logit}
    )
    pq.write_table(truth, truth_dir / LEAD_TRUTH_FILE)
    os.replace(tmp, final)


def _progress(config: SyntheticConfig, total: int) -> Any:
    if not config.progress:
        return None
    from tqdm import tqdm  # imported lazily: only the CLI shows a bar

    return tqdm(total=total, unit="block", desc=f"synthetic CRM ({BLOCK_PERSONS} persons/block)")


def _auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC via the rank-sum formula (ties get average ranks); no sklearn import needed."""
    pos = int(labels.sum())
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m ml.synthetic.generator --customers N --seed S --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.synthetic.generator",
        description="Generate the synthetic CRM (raw + truth).",
    )
    parser.add_argument("--customers", type=int, default=SyntheticConfig.customers)
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument("--out", type=Path, required=True, help="Folder for the raw tables.")
    parser.add_argument(
        "--truth", type=Path, default=None, help="Folder for the truth (default: OUT/../truth)."
    )
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--chunk-size", type=int, default=SyntheticConfig.chunk_size)
    parser.add_argument("--start-date", type=date.fromisoformat, default=SyntheticConfig.start_date)
    parser.add_argument("--end-date", type=date.fromisoformat, default=SyntheticConfig.end_date)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--event-share",
        type=float,
        default=SyntheticConfig.event_share,
        help="Share of the simulated events written (1.0: all, about 188 per person).",
    )
    args = parser.parse_args(argv)
    config = SyntheticConfig(
        customers=args.customers,
        seed=args.seed,
        start_date=args.start_date,
        end_date=args.end_date,
        chunk_size=args.chunk_size,
        file_format=args.format,
        progress=not args.no_progress,
        event_share=args.event_share,
    )
    out: Path = args.out.expanduser().resolve()
    truth: Path = args.truth.expanduser().resolve() if args.truth else out.parent / "truth"
    result = generate(config, out, truth)
    print(
        f"{result.persons} persons in {result.seconds:.1f} s; "
        + ", ".join(f"{k} {v}" for k, v in result.rows.items())
        + f"; churn within 90 days {result.churn_rate_90d:.3f}; oracle AUC {result.oracle_auc:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
