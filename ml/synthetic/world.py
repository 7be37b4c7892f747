"""The hidden world of one block of persons: who they are, their monthly latent path, their churn.

Every person is drawn once (:class:`Persons`), then the months run in order: each month's hazard
reads only the end-of-month state of the months before (:class:`LatentState`), so what the
features at an as-of date can see is what drives the churn. The steps of a month append what they
draw to :class:`LatentPath`; the tables of ``ml.synthetic.rows`` are written from it.

The latent path runs for every month after sign-up whether or not the person churns; churn is
then one draw per month against the hazards (:func:`draw_churn`) and only censors what is written.

Draw order is the data: each step draws from the block's streams in the order the steps are
called, and ``tests/ml/test_synthetic.py`` pins the result. Reordering two draws, or drawing a
different number of values, changes the world even when every distribution is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from ml.core.maths import sigmoid
from ml.synthetic.config import DAY, Grid
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
    CONTRACT_DISCOUNT,
    CONTRACT_MONTHS,
    CONTRACT_SHARE,
    ENGAGEMENT_AR,
    ENGAGEMENT_SEASON,
    EVENT_TYPES,
    HAZARD,
    INITIAL_BASE_SHARE,
    LIST_PRICE,
    LOST_CAUSE_CHURN_90D,
    ORDER_AFFINITY_SD,
    ORDER_CATEGORIES,
    ORDER_MEDIAN_EUR,
    ORDER_SHARE,
    PLAN_ENGAGEMENT,
    PLAN_ORDER_AFFINITY,
    PLAN_SHARE,
    PRICE_INCREASE,
    PRICE_INCREASE_MONTH,
    SIGNUP_SEASON,
)

NEVER = -100
"""Month index of an event that never happened (far enough back for every 'last 3 months')."""
BUMPED_BASIC_PRICE = round(LIST_PRICE[0] * (1 + PRICE_INCREASE), 2)
"""The basic plan's list price from the price increase on."""


def uniform_in(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform integer seconds in [lo, hi) elementwise (hi > lo)."""
    return lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Persons
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Persons:
    """What is drawn once per person of a block (arrays indexed by block-local person)."""

    n: int
    signup_month: np.ndarray  # month index of the sign-up
    signup_at: np.ndarray  # sign-up time (epoch seconds)
    plan: np.ndarray  # plan at sign-up (index into PLANS)
    contract: np.ndarray  # index into CONTRACTS; never changes
    channel: np.ndarray  # index into CHANNELS
    base_engagement: np.ndarray  # e0: expected logins per month at sign-up
    decay: np.ndarray  # monthly loss of log engagement (0 for those who keep it)
    frailty: np.ndarray  # fixed person term of the churn log-odds
    affinity: np.ndarray  # (n, order categories) log-affinity of what the person buys


SHIFT_ENGAGEMENT = 0.6
"""Engagement of a shifted person relative to the draw (``shift_acquisition``)."""


def shift_acquisition(
    rng: np.random.Generator, grid: Grid, persons: Persons, share: float, months: int
) -> Persons:
    """Persons as a changed acquisition brings them: of those signing up in the last
    ``months`` months of data, a ``share`` (drawn from ``rng``) get a monthly contract, the
    basic plan and ``SHIFT_ENGAGEMENT`` times their engagement. Churn keeps following the
    same hazard of what the CRM records, so only the mix of customers moves."""
    late = persons.signup_month >= grid.data_months - months
    shifted = late & (rng.random(persons.n) < share)
    return replace(
        persons,
        plan=np.where(shifted, 0, persons.plan),
        contract=np.where(shifted, 0, persons.contract),
        base_engagement=np.where(
            shifted, persons.base_engagement * SHIFT_ENGAGEMENT, persons.base_engagement
        ),
    )


def draw_persons(
    rng: np.random.Generator, crng: np.random.Generator, grid: Grid, n: int
) -> Persons:
    """Sign-up month and time, plan, contract, channel, engagement and frailty of ``n`` persons.

    The purchase tastes come from the campaign stream ``crng``: they were added later, and drawing
    them there left the rest of the world's draws as they were.
    """
    season = SIGNUP_SEASON[grid.month_of_year[: grid.data_months]].copy()
    season[0] = 0.0
    later = season / season.sum() * (1.0 - INITIAL_BASE_SHARE)
    signup_p = later.copy()
    signup_p[0] = INITIAL_BASE_SHARE
    signup_month = rng.choice(grid.data_months, size=n, p=signup_p / signup_p.sum())
    b = grid.bounds
    sign_hi = np.minimum(b[signup_month + 1], grid.snapshot_end)
    signup_at = uniform_in(rng, b[signup_month], sign_hi)

    plan = rng.choice(3, size=n, p=PLAN_SHARE)
    contract = rng.choice(3, size=n, p=CONTRACT_SHARE)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE)
    e0 = rng.lognormal(np.log(11.0), 0.55, n) * CHANNEL_ENGAGEMENT[channel]
    # Some persons keep their engagement, the others lose it at their own rate.
    decays = rng.random(n) < 0.55
    decay = np.where(decays, rng.uniform(0.02, 0.16, n), 0.0)
    frailty = rng.normal(0.0, HAZARD["person_sd"], n)
    affinity = crng.normal(0.0, ORDER_AFFINITY_SD, (n, len(ORDER_CATEGORIES)))
    return Persons(
        n=n,
        signup_month=signup_month,
        signup_at=signup_at,
        plan=plan,
        contract=contract,
        channel=channel,
        base_engagement=e0,
        decay=decay,
        frailty=frailty,
        affinity=affinity,
    )


# --------------------------------------------------------------------------------------------
# What the monthly path draws and keeps
# --------------------------------------------------------------------------------------------


class Periods(NamedTuple):
    """Subscription periods opened in one step: at sign-up, by a plan or by a price change."""

    person: np.ndarray
    started_at: np.ndarray
    plan: np.ndarray
    contract: np.ndarray
    price: np.ndarray
    reason: np.ndarray  # int8: 0 sign-up, 1 plan change, 2 price change


class TicketDraws(NamedTuple):
    """Support tickets opened in one month (resolved_at -1: never resolved; score -1: unrated)."""

    person: np.ndarray
    opened_at: np.ndarray
    resolved_at: np.ndarray
    score: np.ndarray
    category: np.ndarray
    priority: np.ndarray


class OrderDraws(NamedTuple):
    """Orders placed in one month (refunds are drawn when the orders table is written)."""

    person: np.ndarray
    ordered_at: np.ndarray
    category: np.ndarray
    amount: np.ndarray


class Sends(NamedTuple):
    """Campaign sends of one wave: both arms, with the response type of each person."""

    person: np.ndarray
    month: np.ndarray
    treated: np.ndarray
    sent_at: np.ndarray
    kind: np.ndarray  # index into RESPONSE_TYPES (before lost causes are told apart)


@dataclass
class LatentState:
    """End-of-month state: what next month's hazard, campaign wave and plan changes read.

    Mutable on purpose: the steps of a month replace its fields, and the next month reads them.
    """

    plan: np.ndarray  # current plan
    price: np.ndarray  # current monthly price
    ar: np.ndarray  # AR(1) wobble of log engagement
    prev_logins: np.ndarray  # logins of month m-1
    prev2_logins: np.ndarray  # logins of month m-2
    prev_visits: np.ndarray  # pricing page visits of month m-1
    prev_opens: np.ndarray  # e-mails opened in month m-1
    tick_hist: np.ndarray  # (n, 3) tickets opened in m-1, m-2, m-3
    sat_sum: np.ndarray  # (n, 3) sum of satisfaction scores of those tickets
    sat_cnt: np.ndarray  # (n, 3) rated tickets among them
    prev_open: np.ndarray  # tickets open at the end of month m-1
    never_resolved: np.ndarray  # tickets so far that will never be resolved
    burst_left: np.ndarray  # months left of the current ticket burst
    last_downgrade: np.ndarray  # month of the last downgrade (NEVER: none)
    price_bumped_at: np.ndarray  # month of the price increase (NEVER: none)

    @classmethod
    def at_signup(cls, persons: Persons) -> LatentState:
        n = persons.n
        return cls(
            plan=persons.plan,
            price=LIST_PRICE[persons.plan] * (1.0 - CONTRACT_DISCOUNT[persons.contract]),
            ar=np.zeros(n),
            prev_logins=np.zeros(n),
            prev2_logins=np.zeros(n),
            prev_visits=np.zeros(n),
            prev_opens=np.zeros(n),
            tick_hist=np.zeros((n, 3)),
            sat_sum=np.zeros((n, 3)),
            sat_cnt=np.zeros((n, 3)),
            prev_open=np.zeros(n),
            never_resolved=np.zeros(n),
            burst_left=np.zeros(n, dtype=np.int64),
            last_downgrade=np.full(n, NEVER),
            price_bumped_at=np.full(n, NEVER),
        )


@dataclass
class LatentPath:
    """What the months accumulate: counts and hazards per person and month, and drawn rows."""

    counts: dict[str, np.ndarray]  # (n, months) int32 per event type
    hazard: np.ndarray  # (n, months) churn hazard; 0 before a full month of history
    logit: np.ndarray  # (n, months) churn log-odds, campaign effect included
    effect: np.ndarray  # (n, months) campaign effect on the log-odds
    periods: list[Periods]
    tickets: list[TicketDraws] = field(default_factory=list)
    orders: list[OrderDraws] = field(default_factory=list)
    sends: list[Sends] = field(default_factory=list)

    @classmethod
    def at_signup(cls, persons: Persons, state: LatentState, months: int) -> LatentPath:
        n = persons.n
        first = Periods(
            np.arange(n),
            persons.signup_at,
            persons.plan.copy(),
            persons.contract.copy(),
            state.price.copy(),
            np.zeros(n, np.int8),
        )
        return cls(
            counts={t: np.zeros((n, months), dtype=np.int32) for t in EVENT_TYPES},
            hazard=np.zeros((n, months)),
            logit=np.zeros((n, months)),
            effect=np.zeros((n, months)),
            periods=[first],
        )


@dataclass(frozen=True)
class Month:
    """Month ``m`` as each person sees it."""

    m: int
    start: int  # first second of the month
    end: int  # first second of the next month
    signed: np.ndarray  # signed up by the end of the month
    seasoned: np.ndarray  # a full month of history exists (at risk of churn)
    lo: np.ndarray  # first second of the month as a customer
    frac: np.ndarray  # share of the month as a customer
    age: np.ndarray  # whole months since the sign-up month

    @property
    def n(self) -> int:
        """Persons in the block."""
        return len(self.signed)


class Activity(NamedTuple):
    """Engagement and the activity counts of one month that later months read."""

    engagement: np.ndarray
    logins: np.ndarray
    opens: np.ndarray
    visits: np.ndarray


# --------------------------------------------------------------------------------------------
# The steps of a month, in the order they draw
# --------------------------------------------------------------------------------------------


def _month(grid: Grid, persons: Persons, m: int) -> Month:
    """Who is a customer in month ``m``, since when, and for what share of it."""
    b = grid.bounds
    signed = persons.signup_month <= m
    lo = np.maximum(b[m], persons.signup_at)
    frac = np.where(signed, (b[m + 1] - lo) / grid.lengths[m], 0.0)
    return Month(
        m=m,
        start=int(b[m]),
        end=int(b[m + 1]),
        signed=signed,
        seasoned=persons.signup_month < m,
        lo=lo,
        frac=np.clip(frac, 0.0, 1.0),
        age=np.maximum(m - persons.signup_month, 0),
    )


def _hazard_logit(
    rng: np.random.Generator, persons: Persons, state: LatentState, month: Month
) -> np.ndarray:
    """Churn log-odds of the month from the state of the months before (no campaign yet)."""
    tenure = month.age
    contract = persons.contract
    locked = (contract > 0) & (tenure % CONTRACT_MONTHS[contract] != 0)
    renewal = (contract > 0) & ~locked
    recent_sat = state.sat_cnt.sum(axis=1)
    low_sat = (recent_sat > 0) & (state.sat_sum.sum(axis=1) <= 2.5 * recent_sat)
    since_bump = month.m - state.price_bumped_at
    since_downgrade = month.m - state.last_downgrade
    # Keep the terms in this order: float addition is not associative, so another order moves
    # the hazards in the last bit, and with them the truth files.
    return (
        HAZARD["intercept"]
        + HAZARD["log_logins"] * np.log1p(0.5 * (state.prev_logins + state.prev2_logins))
        + HAZARD["tickets_2_months"] * np.minimum(state.tick_hist[:, :2].sum(axis=1), 5)
        + HAZARD["tickets_3rd_month"] * np.minimum(state.tick_hist[:, 2], 3)
        + HAZARD["open_tickets"] * np.minimum(state.prev_open, 3)
        + HAZARD["low_satisfaction"] * low_sat
        + HAZARD["new_customer"] * np.exp(-(tenure - 1) / 3.0)
        + HAZARD["price_increase_3m"] * (since_bump <= 3)
        + HAZARD["downgrade_3m"] * (since_downgrade <= 3)
        + HAZARD["log_pricing_visits"] * np.log1p(state.prev_visits)
        + HAZARD["contract_locked"] * locked
        + HAZARD["contract_renewal"] * renewal
        + persons.frailty
        + rng.normal(0.0, HAZARD["month_sd"], persons.n)
    )


def _is_wave(grid: Grid, m: int) -> bool:
    """A campaign test runs this month (every third month from the fourth, before the snapshot)."""
    return (
        m >= CAMPAIGN_FIRST_MONTH
        and (m - CAMPAIGN_FIRST_MONTH) % CAMPAIGN_EVERY_MONTHS == 0
        and m < grid.data_months
    )


def _campaign_wave(
    crng: np.random.Generator, state: LatentState, month: Month, path: LatentPath
) -> None:
    """Sample a test, split it into arms, and set the treated arm's effect for three months."""
    m = month.m
    n = month.n
    # Response type from the state an as-of date at the start of month m sees.
    price_sensitive = (state.prev_visits >= 1) | ((m - state.price_bumped_at) <= 3)
    persuadable = price_sensitive & (state.prev_logins >= 2)
    do_not_disturb = ~persuadable & (month.age >= 12) & (state.prev_opens == 0)
    kind = np.where(persuadable, 0, np.where(do_not_disturb, 1, 2))
    sampled = np.flatnonzero(month.seasoned & (crng.random(n) < CAMPAIGN_SAMPLE_SHARE))
    treated = crng.random(len(sampled)) < CAMPAIGN_TREATED_SHARE
    sent = month.start + (crng.random(len(sampled)) * 5 * DAY).astype(np.int64)
    path.sends.append(Sends(sampled, np.full(len(sampled), m), treated, sent, kind[sampled]))
    contacted = sampled[treated]
    until = min(m + CAMPAIGN_MONTHS_AFFECTED, path.effect.shape[1])
    path.effect[contacted, m:until] = CAMPAIGN_EFFECT[kind[contacted]][:, None]


def _activity(
    rng: np.random.Generator,
    grid: Grid,
    persons: Persons,
    state: LatentState,
    month: Month,
    path: LatentPath,
) -> Activity:
    """Engagement of the month and the event counts it drives (also advances the AR wobble)."""
    m, n, frac = month.m, persons.n, month.frac
    state.ar = ENGAGEMENT_AR[0] * state.ar + rng.normal(0.0, ENGAGEMENT_AR[1], n)
    eng = (
        persons.base_engagement
        * np.exp(-persons.decay * month.age + state.ar)
        * ENGAGEMENT_SEASON[grid.month_of_year[m]]
    )
    counts = path.counts
    logins = rng.poisson(eng * frac)
    counts["login"][:, m] = logins
    counts["feature_use"][:, m] = rng.poisson(0.55 * eng * PLAN_ENGAGEMENT[state.plan] * frac)
    opens = rng.poisson(2.2 * np.sqrt(eng / 9.0) * frac)
    counts["email_open"][:, m] = opens
    counts["email_click"][:, m] = rng.binomial(opens, 0.18)
    # Visits rise with this month's churn intent.
    visits = rng.poisson((0.05 + 5.0 * path.hazard[:, m]) * frac)
    counts["pricing_page_visit"][:, m] = visits
    return Activity(engagement=eng, logins=logins, opens=opens, visits=visits)


def _tickets(rng: np.random.Generator, state: LatentState, month: Month) -> TicketDraws:
    """A Poisson stream of tickets plus bursts that last one or two months."""
    n = month.n
    starts = month.signed & (state.burst_left == 0) & (rng.random(n) < BURST_START_P)
    state.burst_left = np.where(starts, rng.integers(1, 3, n), state.burst_left)
    bursting = state.burst_left > 0
    n_tick = rng.poisson((0.10 + 1.7 * bursting) * month.frac)
    state.burst_left = np.maximum(state.burst_left - 1, 0)
    tp = np.repeat(np.arange(n), n_tick)
    t_open = uniform_in(rng, month.lo[tp], np.full(len(tp), month.end))
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
    return TicketDraws(tp, t_open, t_resolved, score, category, priority)


def _orders(
    rng: np.random.Generator,
    persons: Persons,
    state: LatentState,
    month: Month,
    engagement: np.ndarray,
) -> OrderDraws:
    """Add-ons, services and hardware, by the person's taste and the current plan."""
    plan = state.plan
    n_ord = rng.poisson(0.05 * PLAN_ENGAGEMENT[plan] * np.sqrt(engagement / 9.0) * month.frac)
    op = np.repeat(np.arange(persons.n), n_ord)
    o_ts = uniform_in(rng, month.lo[op], np.full(len(op), month.end))
    taste = np.asarray(ORDER_SHARE) * np.exp(persons.affinity + PLAN_ORDER_AFFINITY[plan])
    cum = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1)[op]
    o_cat = np.minimum((rng.random(len(op))[:, None] > cum).sum(axis=1), 2)
    o_amt = np.round(ORDER_MEDIAN_EUR[o_cat] * rng.lognormal(0.0, 0.5, len(op)), 2)
    return OrderDraws(op, o_ts, o_cat, o_amt)


def _price_month(grid: Grid) -> int:
    """Month of the price increase; -1 when the history ends before it."""
    return PRICE_INCREASE_MONTH if grid.data_months > PRICE_INCREASE_MONTH else -1


def _list_price(plan: np.ndarray, month: int, price_month: int) -> np.ndarray:
    lp = LIST_PRICE[plan].copy()
    if 0 <= price_month <= month:
        lp[plan == 0] = BUMPED_BASIC_PRICE
    return lp


def _plan_changes(
    rng: np.random.Generator,
    persons: Persons,
    state: LatentState,
    month: Month,
    path: LatentPath,
    price_month: int,
) -> None:
    """Downgrades follow low engagement; upgrades follow high engagement. Each opens a period."""
    m, plan, contract = month.m, state.plan, persons.contract
    down_p = 0.003 + 0.05 * (state.prev_logins <= 2)
    up_p = 0.002 + 0.008 * (state.prev_logins >= 15)
    u = rng.random(persons.n)
    down = month.seasoned & (plan > 0) & (u < down_p)
    up = month.seasoned & (plan < 2) & ~down & (u > 1 - up_p)
    changed = down | up
    if not changed.any():
        return
    state.plan = np.where(down, plan - 1, np.where(up, plan + 1, plan))
    state.price = np.where(
        changed,
        _list_price(state.plan, m, price_month) * (1 - CONTRACT_DISCOUNT[contract]),
        state.price,
    )
    idx = np.flatnonzero(changed)
    c_ts = uniform_in(rng, np.full(len(idx), month.start), np.full(len(idx), month.end))
    path.periods.append(
        Periods(
            idx,
            c_ts,
            state.plan[idx],
            contract[idx],
            state.price[idx],
            np.ones(len(idx), np.int8),
        )
    )
    state.last_downgrade = np.where(down, m, state.last_downgrade)


def _price_increase(persons: Persons, state: LatentState, month: Month, path: LatentPath) -> None:
    """The price increase hits month-to-month basic customers who are already there."""
    bump = month.seasoned & (state.plan == 0) & (persons.contract == 0)
    idx = np.flatnonzero(bump)
    state.price = np.where(bump, BUMPED_BASIC_PRICE, state.price)
    path.periods.append(
        Periods(
            idx,
            np.full(len(idx), month.start),
            state.plan[idx],
            persons.contract[idx],
            state.price[idx],
            np.full(len(idx), 2, np.int8),
        )
    )
    state.price_bumped_at = np.where(bump, month.m, state.price_bumped_at)


def _end_of_month(
    state: LatentState, month: Month, activity: Activity, tickets: TicketDraws
) -> None:
    """Shift in what the month showed: the input of next month's hazard."""
    n = month.n
    tp, score = tickets.person, tickets.score
    state.prev2_logins = state.prev_logins
    state.prev_logins = activity.logins.astype(float)
    state.prev_visits = activity.visits.astype(float)
    state.prev_opens = activity.opens.astype(float)
    n_t = np.bincount(tp, minlength=n)
    state.tick_hist = np.column_stack([n_t, state.tick_hist[:, :2]])
    s_sum = np.bincount(tp, weights=np.where(score > 0, score, 0), minlength=n)
    s_cnt = np.bincount(tp, weights=(score > 0).astype(float), minlength=n)
    state.sat_sum = np.column_stack([s_sum, state.sat_sum[:, :2]])
    state.sat_cnt = np.column_stack([s_cnt, state.sat_cnt[:, :2]])
    unresolved = tickets.resolved_at < 0  # opening times are positive, so -1 marks only these
    state.never_resolved += np.bincount(tp, weights=unresolved.astype(float), minlength=n)
    late = tickets.resolved_at >= month.end
    open_late = np.bincount(tp, weights=late.astype(float), minlength=n)
    state.prev_open = state.never_resolved + open_late


def simulate_latent_path(
    rng: np.random.Generator, crng: np.random.Generator, grid: Grid, persons: Persons
) -> LatentPath:
    """Run every month for every person, churn ignored (:func:`draw_churn` censors later)."""
    state = LatentState.at_signup(persons)
    path = LatentPath.at_signup(persons, state, grid.months)
    price_month = _price_month(grid)
    for m in range(grid.months):
        month = _month(grid, persons, m)
        z = _hazard_logit(rng, persons, state, month)
        if _is_wave(grid, m):
            _campaign_wave(crng, state, month, path)
        z = z + path.effect[:, m]
        path.logit[:, m] = z
        path.hazard[:, m] = np.where(month.seasoned, sigmoid(z), 0.0)

        activity = _activity(rng, grid, persons, state, month, path)
        tickets = _tickets(rng, state, month)
        path.tickets.append(tickets)
        path.orders.append(_orders(rng, persons, state, month, activity.engagement))
        _plan_changes(rng, persons, state, month, path, price_month)
        if m == price_month:
            _price_increase(persons, state, month, path)
        _end_of_month(state, month, activity, tickets)
    return path


# --------------------------------------------------------------------------------------------
# Churn and the truth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Churn:
    """One churn draw per person against the hazards of the latent path."""

    month: np.ndarray  # month of the churn; the number of months when the person stays
    at: np.ndarray  # churn time; int64 max when the person stays
    cut: np.ndarray  # nothing is written at or after it: the churn or the snapshot


def draw_churn(rng: np.random.Generator, grid: Grid, persons: Persons, hazard: np.ndarray) -> Churn:
    """The first month whose draw hits its hazard, and a uniform time inside it."""
    M = grid.months
    b = grid.bounds
    at_risk = persons.signup_month[:, None] < np.arange(M)[None, :]
    hit = at_risk & (rng.random((persons.n, M)) < hazard)
    churned = hit.any(axis=1)
    churn_m = np.where(churned, hit.argmax(axis=1), M)
    cm = np.minimum(churn_m, M - 1)
    churn_ts = np.where(churned, uniform_in(rng, b[cm], b[cm + 1]), np.iinfo(np.int64).max)
    # Nothing is written at or after the churn or the snapshot.
    return Churn(month=churn_m, at=churn_ts, cut=np.minimum(churn_ts, grid.snapshot_end))


def churn_truth(
    grid: Grid, hazard: np.ndarray, signup_month: np.ndarray, churn: Churn
) -> dict[str, np.ndarray]:
    """True 90-day churn probability and realised outcome per active person and as-of date."""
    persons: list[np.ndarray] = []
    as_of: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    outcome: list[np.ndarray] = []
    lengths = grid.lengths / DAY
    for a in grid.as_of_index:
        active = (signup_month < a) & (churn.month >= a)
        # The label window is 90 days, not three calendar months: the third month only counts
        # for the days that fall inside the window (churn time is uniform within a month).
        f3 = (90.0 - lengths[a] - lengths[a + 1]) / lengths[a + 2]
        h = hazard[active]
        p = 1.0 - (1.0 - h[:, a]) * (1.0 - h[:, a + 1]) * (1.0 - f3 * h[:, a + 2])
        start = grid.bounds[a]
        ct = churn.at[active]
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


def campaign_sends(
    grid: Grid, path: LatentPath, churn: Churn
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Campaign rows (sends before the person left) and each send's true uplift in retention.

    The true uplift is P(churn within the three affected months | control) minus the same under
    treatment, both from the person's hazard without any campaign effect.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not path.sends:
        parts: tuple[np.ndarray, ...] = (empty,) * 5
    else:
        parts = tuple(np.concatenate(x) for x in zip(*path.sends, strict=True))
    person, month, treated, sent, kind = parts
    keep = sent < churn.cut[person]
    person, month, treated, sent, kind = (x[keep] for x in (person, month, treated, sent, kind))
    Z, effect = path.logit, path.effect
    M = Z.shape[1]
    months = np.minimum(month[:, None] + np.arange(CAMPAIGN_MONTHS_AFFECTED)[None, :], M - 1)
    inside = (month[:, None] + np.arange(CAMPAIGN_MONTHS_AFFECTED)[None, :]) < M
    base = Z[person[:, None], months] - effect[person[:, None], months]
    tau = CAMPAIGN_EFFECT[kind][:, None]
    stay_control = np.prod(np.where(inside, 1.0 - sigmoid(base), 1.0), axis=1)
    stay_treated = np.prod(np.where(inside, 1.0 - sigmoid(base + tau), 1.0), axis=1)
    unaffected = kind >= 2
    kind = np.where(unaffected & (1.0 - stay_control >= LOST_CAUSE_CHURN_90D), 3, kind)
    horizon_end = sent + 90 * DAY
    known = horizon_end <= grid.snapshot_end
    retained = churn.at[person] >= horizon_end
    campaigns = {
        "person": person,
        "month": month,
        "treated": treated,
        "sent_at": sent,
        "outcome": np.where(known, retained.astype(np.int64), -1),
    }
    truth = {"response_type": kind, "true_uplift": stay_treated - stay_control}
    return campaigns, truth
