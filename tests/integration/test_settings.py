from pathlib import Path

import pytest

from integration.settings import DEMO_SECRET_KEY, Settings, load_settings
from models.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("HUREN_"):
            monkeypatch.delenv(name)


def test_defaults_match_the_interface_table() -> None:
    settings = load_settings()
    assert (settings.bind, settings.mllp_port, settings.dicom_port, settings.http_port) == (
        "127.0.0.1",
        2575,
        11112,
        8080,
    )
    assert settings.dicom_aet == "HUREN"
    assert settings.data_dir == Path("var")
    assert settings.resolved_database_url == "sqlite:///var/huren.db"
    assert settings.dicom_dir == Path("var/dicom")
    assert settings.upstream_fhir_url == ""
    assert settings.demo_password.get_secret_value() == "huren-demo"
    assert str(settings.zone) == "Asia/Shanghai"


def test_values_come_from_huren_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HUREN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUREN_MLLP_PORT", "12575")
    monkeypatch.setenv("HUREN_DICOM_AET", "HUB01")
    monkeypatch.setenv("HUREN_UPSTREAM_FHIR_URL", "http://127.0.0.1:9/fhir/")
    settings = load_settings()
    assert settings.mllp_port == 12575
    assert settings.dicom_aet == "HUB01"
    assert settings.upstream_fhir_url == "http://127.0.0.1:9/fhir"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.as_posix()}/huren.db"
    monkeypatch.setenv("HUREN_DATABASE_URL", "postgresql+psycopg://h@127.0.0.1/huren")
    assert load_settings().resolved_database_url == "postgresql+psycopg://h@127.0.0.1/huren"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HUREN_MLLP_PORT", "abc", "HUREN_MLLP_PORT"),
        ("HUREN_HTTP_PORT", "70000", "HUREN_HTTP_PORT"),
        ("HUREN_DICOM_AET", "A\\B", "HUREN_DICOM_AET"),
        ("HUREN_DICOM_AET", "WAY_TOO_LONG_AE_TITLE", "HUREN_DICOM_AET"),
        ("HUREN_ENV", "staging", "HUREN_ENV"),
        ("HUREN_TIMEZONE", "Mars/Olympus", "HUREN_TIMEZONE"),
        ("HUREN_UPSTREAM_FHIR_URL", "ftp://x", "HUREN_UPSTREAM_FHIR_URL"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.http_port = 1  # type: ignore[misc]


def test_production_refuses_the_demo_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUREN_ENV", "production")
    settings = load_settings()
    assert not settings.demo_accounts_allowed
    with pytest.raises(ConfigurationError, match="HUREN_SECRET_KEY"):
        settings.check_production()
    monkeypatch.setenv("HUREN_SECRET_KEY", "short")
    with pytest.raises(ConfigurationError, match="at least 32"):
        load_settings().check_production()
    monkeypatch.setenv("HUREN_SECRET_KEY", "p" * 40)
    load_settings().check_production()


def test_development_allows_the_demo() -> None:
    settings = Settings(secret_key=DEMO_SECRET_KEY)  # type: ignore[arg-type]
    settings.check_production()
    assert settings.demo_accounts_allowed


def test_settlement_shares_must_fit_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUREN_SETTLEMENT_RATE_FEN", "1000")
    monkeypatch.setenv("HUREN_SETTLEMENT_CLINIC_SHARE_FEN", "1200")
    with pytest.raises(ConfigurationError, match="cannot exceed"):
        load_settings()
