"""API keys (kept only as hashes), the loopback rule, and per-key rate limits.

A key is a random token the operator hands to a caller; the service keeps only its SHA-256 (the
tokens are 32 random bytes, so a slow password hash would add latency and no safety) and compares
hashes in constant time. Keys come from ``CRM_API_KEY_HASHES`` and/or the secret file
``CRM_API_KEYS_FILE``, as ``<name>:<sha256 hex>``; the name is what logs and metrics show.
Without any key the service answers everyone, so it refuses to listen anywhere but loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ml.core.settings import Settings

_HASH = re.compile(r"[0-9a-f]{64}")
ANONYMOUS = "loopback"
"""The caller's name when the service runs without keys (loopback only)."""


class KeyConfigError(ValueError):
    """The configured key hashes cannot be read; the message names the entry."""


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of an API key, as ``CRM_API_KEY_HASHES`` stores it."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def _parse(entries: list[tuple[str, str]]) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for where, entry in entries:
        name, sep, digest = entry.strip().partition(":")
        if not sep or not name.strip() or not _HASH.fullmatch(digest.strip().lower()):
            raise KeyConfigError(
                f"{where}: an API key entry must read '<name>:<64 hex digits of sha256>'"
            )
        hashes[digest.strip().lower()] = name.strip()
    return hashes


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys' hashes, by hash, with each key's name."""

    names_by_hash: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Read ``CRM_API_KEY_HASHES`` and ``CRM_API_KEYS_FILE``.

        Raises:
            KeyConfigError: An entry is malformed or the file cannot be read (never echoing
                the entry, which is secret).
        """
        entries: list[tuple[str, str]] = []
        if settings.api_key_hashes is not None:
            text = settings.api_key_hashes.get_secret_value()
            entries += [
                (f"CRM_API_KEY_HASHES entry {i + 1}", e)
                for i, e in enumerate(text.split(","))
                if e.strip()
            ]
        if settings.api_keys_file is not None:
            try:
                lines = settings.api_keys_file.read_text().splitlines()
            except OSError as error:
                raise KeyConfigError(
                    f"CRM_API_KEYS_FILE {settings.api_keys_file}: {error.strerror}"
                ) from None
            entries += [
                (f"{settings.api_keys_file.name} line {i + 1}", line)
                for i, line in enumerate(lines)
                if line.strip() and not line.lstrip().startswith("#")
            ]
        return cls(_parse(entries))

    @property
    def required(self) -> bool:
        """Whether callers must present a key."""
        return bool(self.names_by_hash)

    def name_of(self, key: str | None) -> str | None:
        """The name of a presented key, or None when it is not one of the keys."""
        if not key:
            return None
        digest = hash_key(key)
        found = None
        for known, name in self.names_by_hash.items():  # a handful of keys; constant time each
            if hmac.compare_digest(known, digest):
                found = name
        return found


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_can_listen(host: str, keys: ApiKeys) -> None:
    """Refuse to serve beyond loopback without API keys.

    Raises:
        KeyConfigError: ``host`` is not loopback and no key is configured.
    """
    if not keys.required and not is_loopback(host):
        raise KeyConfigError(
            f"refusing to listen on {host} without API keys: set CRM_API_KEY_HASHES or "
            "CRM_API_KEYS_FILE (crm-signals serve --new-key NAME makes one), or listen on "
            "127.0.0.1"
        )


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests a minute, bursts up to that many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, caller: str) -> float:
        """Take one request from ``caller``'s bucket.

        Returns:
            0 when allowed, else the seconds until the next request would be.
        """
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self._rate
