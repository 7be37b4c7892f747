"""The scoring service's key, loopback and rate-limit rules (ml/serving/api/security.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from ml.core.settings import Settings
from ml.serving.api.security import (
    ApiKeys,
    KeyConfigError,
    RateLimiter,
    check_can_listen,
    hash_key,
    is_loopback,
)


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(home=tmp_path, **values)  # type: ignore[arg-type]


def test_keys_from_the_environment_and_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "keys"
    secret_file.write_text(f"# one per line\nweb-forms:{hash_key('form-key')}\n")
    keys = ApiKeys.from_settings(
        _settings(
            tmp_path,
            api_key_hashes=SecretStr(f"crm-sync:{hash_key('sync-key')}"),
            api_keys_file=secret_file,
        )
    )
    assert keys.required
    assert keys.name_of("sync-key") == "crm-sync"
    assert keys.name_of("form-key") == "web-forms"
    assert keys.name_of("guess") is None
    assert keys.name_of(None) is None
    assert "sync-key" not in repr(keys)  # only hashes are kept


def test_a_malformed_entry_is_named_and_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="CRM_API_KEY_HASHES entry 2") as error:
        ApiKeys.from_settings(
            _settings(tmp_path, api_key_hashes=SecretStr(f"a:{hash_key('k')},plain-secret-key"))
        )
    assert "plain-secret-key" not in str(error.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
    ],
)
def test_without_keys_only_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_can_listen(host, ApiKeys())
    else:
        with pytest.raises(KeyConfigError, match="without API keys"):
            check_can_listen(host, ApiKeys())
    check_can_listen(host, ApiKeys({hash_key("k"): "caller"}))


def test_rate_limit_per_caller_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clock=lambda: now[0])
    assert [limiter.allow("a"), limiter.allow("a")] == [0.0, 0.0]
    wait = limiter.allow("a")
    assert wait == pytest.approx(30.0)  # one request every 30 s
    assert limiter.allow("b") == 0.0  # callers do not share a bucket
    now[0] = 30.0
    assert limiter.allow("a") == 0.0
