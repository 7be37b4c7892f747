"""The raw rows of one block: its latent world as a CRM records it, with the CRM's dirt.

:func:`simulate_block` draws the world of a block (``ml.synthetic.world``), then the customer
records (with duplicates), then one function per table turns the latent path into rows with
block-local person and record indices. Global ids are assigned when the rows become Arrow tables
(``ml.synthetic.tables``).

Every block has its own random streams, seeded from ``(seed, block)``: ``rng`` for the world and
its rows, ``crng`` (``(seed, block, 1)``) for what was added later (campaigns, purchase tastes,
do-not-contact requests, the contact log) so that adding it left the other draws as they were,
and ``(seed, block, 2)`` for thinning events. The functions draw in the order
:func:`simulate_block` calls them; that order is the data (pinned in tests/ml/test_synthetic.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ml.synthetic.config import BLOCK_PERSONS, DAY, SHIFT_MONTHS, Grid, SyntheticConfig
from ml.synthetic.params import (
    CONSENT_GRANT_P,
    COUNTRY_CALLING,
    COUNTRY_CODES,
    COUNTRY_SHARE,
    COUNTRY_SPELLINGS,
    DIRT,
    DO_NOT_CONTACT_P,
    EMAIL_DOMAINS,
    EVENT_TYPES,
    FIRST_NAMES,
    GENDER_SHARE,
    LAST_NAMES,
    NEWSLETTER_P,
    SERVICE_CALL_P,
)
from ml.synthetic.world import (
    Churn,
    LatentPath,
    OrderDraws,
    Periods,
    Persons,
    TicketDraws,
    campaign_sends,
    churn_truth,
    draw_churn,
    draw_persons,
    shift_acquisition,
    simulate_latent_path,
    uniform_in,
)

Columns = dict[str, np.ndarray]
_Draws = TypeVar("_Draws", Periods, TicketDraws, OrderDraws)


def _concat(parts: list[_Draws]) -> _Draws:
    """One set of columns from the parts the months appended."""
    return type(parts[0])(*(np.concatenate(x) for x in zip(*parts, strict=True)))


def _take(rows: _Draws, index: np.ndarray) -> _Draws:
    return type(rows)(*(x[index] for x in rows))


# --------------------------------------------------------------------------------------------
# Customer records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """The customer records of a block's persons: rows in creation order, 1-3 per person."""

    has_dup: np.ndarray  # per person: has 2-3 records
    count: np.ndarray  # per person: number of records
    person: np.ndarray  # per record: its person
    k: np.ndarray  # per record: 0 for the person's primary record, 1-2 for its duplicates
    created: np.ndarray  # per record: creation time
    pos: np.ndarray  # row of the record in slot first_slot[person] + k (slots in person order)
    first_slot: np.ndarray  # per person: slot of the primary record

    def primary(self, person: np.ndarray) -> np.ndarray:
        """Row of each given person's primary record."""
        return self.pos[self.first_slot[person]]

    def attach(self, rng: np.random.Generator, person: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Record row for activity of the given persons: duplicates get some of the activity."""
        k = np.zeros(len(person), dtype=np.int64)
        extra = self.count[person] - 1
        pick = (extra > 0) & (rng.random(len(person)) < DIRT["duplicate_activity_share"])
        k[pick] = 1 + (rng.random(pick.sum()) * extra[pick]).astype(np.int64)
        rows = self.pos[self.first_slot[person] + k]
        # A record cannot hold activity from before it was created.
        too_early = self.created[rows] > ts
        rows[too_early] = self.primary(person[too_early])
        return rows


def draw_records(
    rng: np.random.Generator,
    grid: Grid,
    persons: Persons,
    churn: Churn,
    duplicate_share: float,
) -> Records:
    """Which persons have duplicate records, and when each duplicate was created."""
    n, signup_ts = persons.n, persons.signup_at
    has_dup = rng.random(n) < duplicate_share
    n_rec = 1 + has_dup * (1 + (rng.random(n) < 0.25))
    rec_person = np.repeat(np.arange(n), n_rec)
    rec_k = np.arange(len(rec_person)) - np.repeat(np.cumsum(n_rec) - n_rec, n_rec)
    life_end = np.minimum(churn.cut, grid.snapshot_end - 1)
    rec_created = np.where(
        rec_k == 0,
        signup_ts[rec_person],
        uniform_in(rng, signup_ts[rec_person], np.maximum(life_end, signup_ts + 1)[rec_person]),
    )
    # Records are listed in creation order, so a person's duplicates are not neighbours.
    order = np.lexsort((rec_k, rec_person, rec_created))
    rec_pos = np.empty(len(order), dtype=np.int64)
    rec_pos[order] = np.arange(len(order))
    return Records(
        has_dup=has_dup,
        count=n_rec,
        person=rec_person[order],
        k=rec_k[order],
        created=rec_created[order],
        pos=rec_pos,
        first_slot=np.cumsum(n_rec) - n_rec,
    )


@dataclass(frozen=True)
class _Identity:
    """Who a person is (drawn once per person); every record of the person shows it."""

    first: np.ndarray
    last: np.ndarray
    country: np.ndarray  # index into COUNTRY_CODES
    birth_year: np.ndarray
    gender: np.ndarray  # index into GENDERS
    domain: np.ndarray
    number: np.ndarray  # person number as text, for the e-mail address
    area: np.ndarray  # area code as text
    subscriber: np.ndarray  # 7-digit subscriber number as text


def _identity(rng: np.random.Generator, first_person: int, n: int) -> _Identity:
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
    return _Identity(
        first=first,
        last=last,
        country=country,
        birth_year=birth_year,
        gender=gender,
        domain=domain,
        number=number,
        area=area,
        subscriber=np.strings.zfill(subscriber.astype(str), 7),
    )


def _names(rng: np.random.Generator, who: _Identity, records: Records) -> np.ndarray:
    """Full names; about half of the duplicate records differ in case."""
    s = np.strings
    name = s.add(s.add(who.first[records.person], " "), who.last[records.person])
    case = rng.integers(0, 4, len(records.person))
    dup_rec = records.k > 0
    name = np.where(dup_rec & (case == 1), s.upper(name), name)
    return np.where(dup_rec & (case == 2), s.lower(name), name)


def _emails(
    rng: np.random.Generator, who: _Identity, records: Records
) -> tuple[np.ndarray, np.ndarray]:
    """E-mail addresses (duplicates differ in case or spaces, or have none) and the missing."""
    s = np.strings
    r = len(records.person)
    dup_rec = records.k > 0
    local = s.add(s.add(s.add(s.lower(who.first), "."), s.lower(who.last)), who.number)
    email = s.add(s.add(local, "@"), who.domain)[records.person]
    ecase = rng.integers(0, 4, r)
    email = np.where(dup_rec & (ecase == 1), s.upper(email), email)
    email = np.where(
        dup_rec & (ecase == 2), s.add(s.capitalize(email), " "), email
    )  # e.g. "Anna.mueller12@example.com "
    email = np.where(dup_rec & (ecase == 3), s.add("  ", email), email)
    missing = dup_rec & (rng.random(r) < DIRT["duplicate_missing_email"])
    return email, missing


def _phones(
    rng: np.random.Generator, who: _Identity, records: Records
) -> tuple[np.ndarray, np.ndarray]:
    """Phone numbers in five formats of the same digits, and the missing."""
    s = np.strings
    rp = records.person
    r = len(rp)
    cc = COUNTRY_CALLING[who.country][rp]
    ar_ = who.area[rp]
    sub = who.subscriber[rp]
    trunk = np.where(who.country[rp] == 3, "", "0")
    formats = [
        s.add(s.add(s.add(s.add(s.add("+", cc), " "), ar_), " "), sub),  # +49 30 1234567
        s.add(s.add(s.add(trunk, ar_), "-"), sub),  # 030-1234567
        s.add(s.add(s.add(s.add("(", trunk), ar_), ") "), sub),  # (030) 1234567
        s.add(s.add(s.add("00", cc), ar_), sub),  # 0049301234567
        s.add(s.add(s.add("+", cc), ar_), sub),  # +49301234567
    ]
    fmt = np.where(
        records.k == 0,
        rng.choice(5, size=r, p=(0.5, 0.2, 0.1, 0.1, 0.1)),
        rng.integers(0, 5, r),
    )
    phone = np.choose(fmt, formats)
    # Persons with duplicates always keep a phone so that a record without e-mail still matches.
    missing = ~records.has_dup[rp] & (rng.random(r) < DIRT["missing_phone"])
    return phone, missing


def _countries(
    rng: np.random.Generator, who: _Identity, records: Records
) -> tuple[np.ndarray, np.ndarray]:
    """Country spellings (primary records mostly the English name) and the missing."""
    r = len(records.person)
    spelled = np.empty(r, dtype=object)
    variant = np.where(records.k == 0, rng.random(r) < 0.3, True)
    rc = who.country[records.person]
    for ci, spellings in enumerate(COUNTRY_SPELLINGS):
        mine = rc == ci
        choice = np.where(variant[mine], rng.integers(0, len(spellings), mine.sum()), 0)
        spelled[mine] = np.array(spellings, dtype=object)[choice]
    missing = rng.random(r) < DIRT["missing_country"]
    return spelled, missing


def customer_rows(
    rng: np.random.Generator, first_person: int, records: Records, channel: np.ndarray
) -> Columns:
    """Record attributes with the dirt of real CRMs (see docs/synthetic-world.md)."""
    rp = records.person
    r = len(rp)
    who = _identity(rng, first_person, len(records.has_dup))
    name = _names(rng, who, records)
    email, email_missing = _emails(rng, who, records)
    phone, phone_missing = _phones(rng, who, records)
    country, country_missing = _countries(rng, who, records)
    return {
        "person": rp,
        "full_name": name,
        "email": email,
        "email_missing": email_missing,
        "phone": phone,
        "phone_missing": phone_missing,
        "country": country,
        "country_missing": country_missing,
        "birth_year": who.birth_year[rp],
        "birth_year_missing": rng.random(r) < DIRT["missing_birth_year"],
        "gender": who.gender[rp],
        "gender_missing": rng.random(r) < DIRT["missing_gender"],
        "channel": channel[rp],
        "channel_missing": rng.random(r) < DIRT["missing_channel"],
        "signed_up_at": records.created,
    }


# --------------------------------------------------------------------------------------------
# Activity tables
# --------------------------------------------------------------------------------------------


def subscription_rows(
    rng: np.random.Generator,
    grid: Grid,
    records: Records,
    periods: list[Periods],
    churn: Churn,
) -> Columns:
    """Periods that started before the person left; each ends where the next one starts."""
    p = _concat(periods)
    p = _take(p, p.started_at < churn.cut[p.person])
    p = _take(p, np.lexsort((p.reason, p.started_at, p.person)))
    sp, sts = p.person, p.started_at
    last = np.ones(len(sp), dtype=bool)
    last[:-1] = sp[1:] != sp[:-1]
    nxt_ts = np.empty_like(sts)
    nxt_ts[:-1] = sts[1:]
    nxt_reason = np.zeros_like(p.reason)
    nxt_reason[:-1] = p.reason[1:]
    end_ts = np.where(last, churn.at[sp], nxt_ts)
    end_reason = np.where(last, 3, nxt_reason)  # 1 plan_change, 2 price_change, 3 cancelled
    ended = end_ts < grid.snapshot_end
    subscriptions = {
        "record": records.attach(rng, sp, sts) if len(sp) else sp,
        "person": sp,
        "plan": p.plan,
        "contract": p.contract,
        "price": p.price,
        "started_at": sts,
        "ended_at": np.where(ended, end_ts, -1),
        "end_reason": np.where(ended, end_reason, 0),
    }
    # The first period of a person always sits on the primary record: it created the record.
    first = np.r_[True, last[:-1]] if len(sp) else np.zeros(0, dtype=bool)
    subscriptions["record"][first] = records.primary(sp[first])
    return subscriptions


def event_rows(
    rng: np.random.Generator,
    thin: np.random.Generator | None,
    share: float,
    grid: Grid,
    persons: Persons,
    counts: dict[str, np.ndarray],
    churn: Churn,
    records: Records,
) -> Columns:
    """The month's event counts as timestamped rows while the person is a customer.

    ``thin`` (only when ``share`` < 1) keeps each event with probability ``share``.
    """
    b, cut, n = grid.bounds, churn.cut, persons.n
    ev_p: list[np.ndarray] = []
    ev_t: list[np.ndarray] = []
    ev_ty: list[np.ndarray] = []
    for m in range(grid.data_months):
        lo = np.maximum(b[m], persons.signup_at)
        alive = lo < cut
        for ti, t in enumerate(EVENT_TYPES):
            c = np.where(alive, counts[t][:, m], 0)
            if thin is not None:
                c = thin.binomial(c, share)
            p = np.repeat(np.arange(n), c)
            ts = uniform_in(rng, lo[p], np.full(len(p), b[m + 1]))
            ok = ts < cut[p]
            ev_p.append(p[ok])
            ev_t.append(ts[ok])
            ev_ty.append(np.full(ok.sum(), ti, dtype=np.int8))
    ep, et, ety = np.concatenate(ev_p), np.concatenate(ev_t), np.concatenate(ev_ty)
    o = np.lexsort((ety, et, ep))
    ep, et, ety = ep[o], et[o], ety[o]
    return {"record": records.attach(rng, ep, et), "event_type": ety, "occurred_at": et}


def ticket_rows(
    rng: np.random.Generator,
    grid: Grid,
    records: Records,
    tickets: list[TicketDraws],
    churn: Churn,
) -> Columns:
    """Tickets opened before the person left; open at the snapshot means no resolution yet."""
    t = _concat(tickets)
    t = _take(t, t.opened_at < churn.cut[t.person])
    t = _take(t, np.lexsort((t.opened_at, t.person)))
    open_at_snapshot = (t.resolved_at < 0) | (t.resolved_at >= grid.snapshot_end)
    return {
        "record": records.attach(rng, t.person, t.opened_at),
        "opened_at": t.opened_at,
        "resolved_at": np.where(open_at_snapshot, -1, t.resolved_at),
        "satisfaction": np.where(open_at_snapshot, -1, t.score),
        "category": t.category,
        "priority": t.priority,
    }


def order_rows(
    rng: np.random.Generator,
    grid: Grid,
    records: Records,
    orders: list[OrderDraws],
    churn: Churn,
) -> Columns:
    """Orders placed before the person left, and refunds of some: a second, negative row."""
    o = _concat(orders)
    o = _take(o, o.ordered_at < churn.cut[o.person])
    op, o_ts, o_cat, o_amt = o
    refund = rng.random(len(op)) < 0.06
    r_ts = o_ts[refund] + rng.integers(1 * DAY, 20 * DAY, refund.sum())
    r_ok = r_ts < grid.snapshot_end
    op = np.concatenate([op, op[refund][r_ok]])
    o_ts = np.concatenate([o_ts, r_ts[r_ok]])
    o_cat = np.concatenate([o_cat, o_cat[refund][r_ok]])
    o_amt = np.concatenate([o_amt, -o_amt[refund][r_ok]])
    o_status = np.concatenate([np.zeros(len(refund), np.int8), np.ones(r_ok.sum(), np.int8)])
    s = np.lexsort((o_ts, op))
    op, o_ts, o_cat, o_amt, o_status = op[s], o_ts[s], o_cat[s], o_amt[s], o_status[s]
    return {
        "record": records.attach(rng, op, o_ts),
        "ordered_at": o_ts,
        "amount": o_amt,
        "category": o_cat,
        "status": o_status,
    }


def consent_rows(
    rng: np.random.Generator, crng: np.random.Generator, grid: Grid, records: Records
) -> Columns:
    """Consents per record and channel, with a few withdrawals and do-not-contact requests."""
    rec_person, rec_created = records.person, records.created
    cr = np.repeat(np.arange(len(rec_person)), 3)
    cch = np.tile(np.arange(3), len(rec_person))
    granted = rng.random(len(cr)) < CONSENT_GRANT_P[cch]
    cr, cch = cr[granted], cch[granted]
    g_ts = rec_created[cr] + rng.integers(0, 600, len(cr))
    withdraw = rng.random(len(cr)) < 0.08
    w_ts = uniform_in(rng, g_ts[withdraw], np.full(withdraw.sum(), grid.snapshot_end))
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
    dnc_ts = uniform_in(crng, rec_created[dnc], np.full(len(dnc), grid.snapshot_end))
    c_rec = np.concatenate([c_rec[o], dnc])
    c_ch = np.concatenate([c_ch[o], np.full(len(dnc), 3)])
    c_st = np.concatenate([c_st[o], np.ones(len(dnc), np.int8)])
    c_ts = np.concatenate([c_ts[o], dnc_ts])
    o = np.lexsort((c_ts, c_rec))
    return {"record": c_rec[o], "channel": c_ch[o], "status": c_st[o], "recorded_at": c_ts[o]}


def campaign_rows(
    rng: np.random.Generator, grid: Grid, records: Records, path: LatentPath, churn: Churn
) -> tuple[Columns, Columns]:
    """Campaign sends on the persons' records, and their truth (response type, uplift)."""
    campaigns, truth = campaign_sends(grid, path, churn)
    campaigns["record"] = records.attach(rng, campaigns["person"], campaigns["sent_at"])
    return campaigns, truth


def contact_rows(
    crng: np.random.Generator,
    grid: Grid,
    records: Records,
    cut: np.ndarray,
    campaigns: Columns,
) -> Columns:
    """Outbound contacts per record: monthly newsletters, service calls, treated campaign sends.

    Newsletters ignore consent on purpose (a real contact log holds mistakes too); the policy
    reads consent from the consents table, not from this log.
    """
    rec_person, rec_created = records.person, records.created
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
    at = uniform_in(crng, lo, hi)
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


def _pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Row indices for a dirt kind: about ``rate * n`` rows, at least one when there are rows."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(n, max(1, round(rate * n)))
    return np.sort(rng.choice(n, size=k, replace=False))


def add_dirt(rng: np.random.Generator, events: Columns, orders: Columns) -> None:
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
# One block
# --------------------------------------------------------------------------------------------


@dataclass
class Block:
    """Raw rows of one block with block-local person/record indices, before ids are assigned."""

    n_persons: int
    n_records: int
    customers: Columns
    subscriptions: Columns
    orders: Columns
    events: Columns
    tickets: Columns
    consents: Columns
    campaigns: Columns
    contacts: Columns
    record_person: np.ndarray  # local person index per local record
    truth: Columns
    campaign_truth: Columns


def simulate_block(config: SyntheticConfig, grid: Grid, block: int, first_person: int) -> Block:
    """Simulate the persons of block ``block`` and write their rows, drawing in a fixed order."""
    n = min(BLOCK_PERSONS, config.customers - first_person)
    rng = np.random.default_rng([config.seed, block])
    crng = np.random.default_rng([config.seed, block, 1])
    # Thinning draws from its own stream and only when asked, so the default world (share 1.0)
    # is the same draw for draw.
    thin = np.random.default_rng([config.seed, block, 2]) if config.event_share < 1.0 else None

    # The order of these steps is the order of the draws: moving one changes the data. Only
    # the truth (churn_truth, campaign_rows' uplift) draws nothing.
    persons = draw_persons(rng, crng, grid, n)
    if config.covariate_shift > 0.0:  # its own stream, only when asked (see event_share)
        shift = np.random.default_rng([config.seed, block, 3])
        persons = shift_acquisition(shift, grid, persons, config.covariate_shift, SHIFT_MONTHS)
    path = simulate_latent_path(rng, crng, grid, persons)
    churn = draw_churn(rng, grid, persons, path.hazard)
    records = draw_records(rng, grid, persons, churn, config.duplicate_share)
    customers = customer_rows(rng, first_person, records, persons.channel)
    subscriptions = subscription_rows(rng, grid, records, path.periods, churn)
    events = event_rows(rng, thin, config.event_share, grid, persons, path.counts, churn, records)
    tickets = ticket_rows(rng, grid, records, path.tickets, churn)
    orders = order_rows(rng, grid, records, path.orders, churn)
    consents = consent_rows(rng, crng, grid, records)
    campaigns, campaign_truth = campaign_rows(rng, grid, records, path, churn)
    add_dirt(rng, events, orders)
    contacts = contact_rows(crng, grid, records, churn.cut, campaigns)
    return Block(
        n_persons=n,
        n_records=len(records.person),
        customers=customers,
        subscriptions=subscriptions,
        orders=orders,
        events=events,
        tickets=tickets,
        consents=consents,
        campaigns=campaigns,
        contacts=contacts,
        record_person=records.person,
        truth=churn_truth(grid, path.hazard, persons.signup_month, churn),
        campaign_truth=campaign_truth,
    )
