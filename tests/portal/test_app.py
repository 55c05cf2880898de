"""The app module, its configuration and its run script, checked without building anything."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import reflex as rx

from portal import i18n, routes
from portal.layout import tr
from portal.pages.home import home_page
from portal.pages.login import login_page

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_registers_login_and_home_under_the_named_routes() -> None:
    from portal.portal import app

    registered = {page.route for page in app._unevaluated_pages.values()}
    assert {routes.LOGIN.strip("/") or "index", routes.HOME.strip("/") or "index"} <= registered
    assert app._load_events["login"] and app._load_events["index"]


def test_pages_render_with_the_session_language() -> None:
    for page in (login_page, home_page):
        rendered = str(page())
        assert "lang_rx_state_" in rendered  # the frame carries the session's language
        assert 'data-testid":"lang-en"' in rendered


def test_signed_in_pages_carry_the_menu_and_login_does_not() -> None:
    assert '"data-testid":"nav"' in str(home_page()).replace(" ", "")
    assert '"data-testid":"nav"' not in str(login_page()).replace(" ", "")


def test_asking_for_an_unknown_string_fails_at_build_time() -> None:
    with pytest.raises(KeyError):
        tr("no_such_key")
    assert isinstance(tr("product"), rx.Var)


def test_rxconfig_pins_loopback_and_reads_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUREN_PORTAL_PORT", "3123")
    monkeypatch.delenv("HUREN_PORTAL_BACKEND_PORT", raising=False)
    sys.path.insert(0, str(ROOT))
    try:
        rxconfig = importlib.import_module("rxconfig")
        rxconfig = importlib.reload(rxconfig)
    finally:
        sys.path.remove(str(ROOT))
    config = rxconfig.config
    assert config.app_name == "portal"
    assert config.telemetry_enabled is False
    assert config.backend_host == "127.0.0.1"
    assert config.frontend_port == 3123
    assert config.backend_port is None  # prod: the frontend's port serves both
    plugin_types = {type(plugin) for plugin in config.plugins}
    assert {rx.plugins.SitemapPlugin, rx.plugins.RadixThemesPlugin} <= plugin_types
    from reflex_base import constants

    assert constants.PackageJson.Commands.DEV.endswith("--host 127.0.0.1")


def test_rxconfig_refuses_a_port_that_is_not_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUREN_PORTAL_PORT", "http")
    sys.path.insert(0, str(ROOT))
    try:
        with pytest.raises(ValueError, match="HUREN_PORTAL_PORT"):
            importlib.reload(importlib.import_module("rxconfig"))
    finally:
        sys.path.remove(str(ROOT))
        monkeypatch.delenv("HUREN_PORTAL_PORT")
        importlib.reload(importlib.import_module("rxconfig"))


def test_the_run_script_is_valid_bash_and_binds_loopback() -> None:
    script = ROOT / "scripts" / "portal.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    assert "--env prod" in text and "--backend-host 127.0.0.1" in text
    assert "bun@1.4.5" in text or 'BUN_VERSION="1.4.5"' in text


def test_default_language_is_chinese() -> None:
    assert i18n.DEFAULT_LANGUAGE == "zh-CN"
    from portal.portal import app

    assert app.html_lang == "zh-CN"
