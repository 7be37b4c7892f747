"""Parameters of the synthetic world: plans, prices, the churn hazard, campaigns and the dirt.

Changing them changes the world: document it in docs/synthetic-world.md, and expect the pinned
digests of ``tests/ml/test_synthetic.py`` to change.
"""

from __future__ import annotations

import numpy as np

PLANS = np.array(["basic", "standard", "premium"])
PLAN_SHARE = (0.45, 0.38, 0.17)
LIST_PRICE = np.array([9.99, 19.99, 34.99])
PRICE_INCREASE = 0.15  # basic plan, month-to-month customers, at PRICE_INCREASE_MONTH
PRICE_INCREASE_MONTH = 11  # month index after start_date (2025-09-01 for the default dates)
CONTRACTS = np.array(["month-to-month", "one-year", "two-year"])
CONTRACT_SHARE = (0.55, 0.30, 0.15)
CONTRACT_DISCOUNT = np.array([0.0, 0.10, 0.15])
CONTRACT_MONTHS = np.array([1, 12, 24])
CHANNELS = np.array(["organic_search", "paid_search", "social", "referral", "partner", "direct"])
CHANNEL_SHARE = (0.28, 0.22, 0.15, 0.12, 0.08, 0.15)
CHANNEL_ENGAGEMENT = np.array([1.0, 0.85, 0.8, 1.25, 1.1, 1.0])
PLAN_ENGAGEMENT = np.array([0.85, 1.0, 1.2])

INITIAL_BASE_SHARE = 0.30  # persons who sign up in the first month (the migrated base)
# Sign-up seasonality by calendar month (January and September peaks).
SIGNUP_SEASON = np.array([1.7, 1.0, 1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 1.5, 1.1, 1.0, 0.8])
# Engagement seasonality by calendar month (August and December dips).
ENGAGEMENT_SEASON = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 0.72, 1.0, 1.0, 1.0, 0.8])

# Churn hazard (logit scale); every input is state observed in the previous month.
HAZARD = {
    "intercept": -1.45,
    "log_logins": -0.9,  # times log1p(mean logins of the previous two months)
    "tickets_2_months": 0.22,  # tickets opened in the previous two months (capped at 5)
    "tickets_3rd_month": 0.08,
    "open_tickets": 0.40,
    "low_satisfaction": 0.55,
    "new_customer": 1.0,  # times exp(-(tenure_months - 1) / 3)
    "price_increase_3m": 0.55,
    "downgrade_3m": 0.80,
    "log_pricing_visits": 0.25,
    "contract_locked": -2.3,  # one- or two-year contract outside its renewal month
    "contract_renewal": 0.3,  # one- or two-year contract in its renewal month
    "person_sd": 0.15,
    "month_sd": 0.05,
}

ENGAGEMENT_AR = (0.8, 0.08)  # month-to-month persistence and noise of log engagement
BURST_START_P = 0.02  # monthly chance that a ticket burst starts (it lasts one or two months)

EVENT_TYPES = ("login", "feature_use", "email_open", "email_click", "pricing_page_visit")
TICKET_CATEGORIES = np.array(["billing", "technical", "account", "other"])
TICKET_PRIORITIES = np.array(["low", "normal", "high"])
ORDER_CATEGORIES = np.array(["add_on", "service", "hardware"])
ORDER_SHARE = (0.6, 0.25, 0.15)
ORDER_MEDIAN_EUR = np.array([25.0, 80.0, 150.0])
# Persons differ in what they buy: log-affinity per category (person noise plus plan effect).
ORDER_AFFINITY_SD = 0.9
PLAN_ORDER_AFFINITY = np.array([[0.5, 0.0, -0.6], [0.0, 0.2, 0.0], [-0.3, 0.3, 0.9]])

# Randomised retention-offer tests (docs/synthetic-world.md, "Campaigns"). Every third month a
# sample of active customers is split into a treated and a control arm; the offer changes the
# churn log-odds of the treated for three months by the person's (hidden) response type.
CAMPAIGN_FIRST_MONTH = 4
CAMPAIGN_EVERY_MONTHS = 3
CAMPAIGN_SAMPLE_SHARE = 0.30
CAMPAIGN_TREATED_SHARE = 0.5
CAMPAIGN_MONTHS_AFFECTED = 3
RESPONSE_TYPES = np.array(["persuadable", "do_not_disturb", "sure_thing", "lost_cause"])
# Log-odds change of the monthly churn hazard while treated, per response type.
CAMPAIGN_EFFECT = np.array([-1.4, 1.0, 0.0, 0.0])
LOST_CAUSE_CHURN_90D = 0.25  # unaffected persons at or above this 90-day risk are lost causes
CONSENT_CHANNELS = np.array(["email", "phone", "sms"])
CONSENT_CHANNEL_LABELS = np.array(["email", "phone", "sms", "all"])  # all: do not contact at all
DO_NOT_CONTACT_P = 0.015  # records that ask not to be contacted at all, at some point
# The contact log: newsletters to e-mail-consented records, service calls, and the treated arm of
# every campaign test. Frequency caps count it.
NEWSLETTER_P = 0.5  # per record and month
SERVICE_CALL_P = 0.03  # per record and month
CONTACT_PURPOSES = np.array(["newsletter", "service_call", "retention_offer"])
CONTACT_CHANNELS = np.array(["email", "phone", "sms"])
CONSENT_GRANT_P = np.array([0.85, 0.45, 0.35])

# Dirt rates (see docs/synthetic-world.md).
DIRT = {
    "future_events": 0.0005,
    "future_orders": 0.0005,
    "duplicate_events": 0.0002,
    "negative_completed_orders": 0.003,
    "missing_phone": 0.10,
    "missing_country": 0.04,
    "missing_channel": 0.05,
    "missing_birth_year": 0.08,
    "missing_gender": 0.10,
    "duplicate_missing_email": 0.25,
    "duplicate_activity_share": 0.30,
}

_FIRST_NAMES_TEXT = (
    "Anna Lena Marie Sophie Laura Julia Emma Lea Hannah Mia Clara Nina Sarah Lisa Paula "
    "Camille Chloe Manon Ines Lucia Giulia Chiara Martina Zofia Maja Olivia Amelia Emily "
    "Charlotte Ava Noah Lukas Leon Paul Jonas Felix Max Elias Ben Finn Louis Hugo Jules "
    "Lucas Mateo Pablo Marco Luca Matteo Jan Piotr Jakub Oliver George Harry Jack James Liam "
    "Ethan Daan Sem Bram"
)
FIRST_NAMES = np.array(_FIRST_NAMES_TEXT.split())
_LAST_NAMES_TEXT = (
    "Mueller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch "
    "Richter Klein Wolf Neumann Martin Bernard Dubois Thomas Robert Petit Durand Leroy "
    "Moreau Smith Jones Taylor Brown Williams Wilson Johnson Davies Miller Garcia Rodriguez "
    "Martinez Lopez Sanchez Perez Rossi Russo Ferrari Esposito Bianchi Romano Nowak Kowalski "
    "Wisniewski Wojcik deJong Jansen deVries vandenBerg Bakker Visser Smit"
)
LAST_NAMES = np.array(_LAST_NAMES_TEXT.split())
EMAIL_DOMAINS = np.array(["example.com", "example.org", "example.net", "mail.example"])
COUNTRY_CODES = np.array(["DE", "FR", "GB", "US", "NL", "ES", "IT", "PL"])
COUNTRY_SHARE = (0.40, 0.12, 0.10, 0.10, 0.08, 0.08, 0.07, 0.05)
COUNTRY_CALLING = np.array(["49", "33", "44", "1", "31", "34", "39", "48"])
# Spellings per country; the first one is the canonical English name.
COUNTRY_SPELLINGS: tuple[tuple[str, ...], ...] = (
    ("Germany", "DE", "deutschland", " germany", "Deutschland", "GERMANY"),
    ("France", "FR", "france ", "Frankreich", "FRANCE"),
    ("United Kingdom", "UK", "GB", "Great Britain", "united kingdom"),
    ("United States", "US", "USA", "U.S.", "united states of america"),
    ("Netherlands", "NL", "Holland", "the netherlands", "Niederlande"),
    ("Spain", "ES", "España", "spain ", "Spanien"),
    ("Italy", "IT", "Italia", "italy", "Italien"),
    ("Poland", "PL", "Polska", "poland", "Polen"),
)
GENDERS = np.array(["female", "male", "diverse"])
GENDER_SHARE = (0.49, 0.49, 0.02)
