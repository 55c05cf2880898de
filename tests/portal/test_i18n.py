"""The portal's wording: both tables complete, refusals worded without giving anything away."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from integration.accounts import LoginFailed, LoginRefusal
from models.enums import Role
from portal import i18n

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    zh, en = i18n.STRINGS[i18n.ZH], i18n.STRINGS[i18n.EN]
    assert set(zh) == set(en)
    for key in zh:
        assert zh[key].strip() and en[key].strip(), key
        assert _placeholders(zh[key]) == _placeholders(en[key]), key


def test_every_role_is_named_and_told_what_is_coming_in_both_languages() -> None:
    for language in i18n.LANGUAGES:
        assert set(i18n.ROLE_NAMES[language]) == set(Role)
        assert set(i18n.ROLE_OUTLOOK[language]) == set(Role)
        assert set(i18n.ZONE_NAMES[language]) == set(i18n.ZONE_NAMES[i18n.ZH])


def test_role_names_in_chinese() -> None:
    expected = {
        Role.admin: "管理员",
        Role.radiologist: "放射科医师",
        Role.auditor: "审核医师",
        Role.clinician: "临床医师",
        Role.leader: "局领导",
        Role.qc: "质控员",
        Role.technologist: "技师",
    }
    for role, name in expected.items():
        assert i18n.role_name(role, i18n.ZH) == name
        assert i18n.role_name(role.value, "zh-CN") == name
    assert i18n.role_name("radiologist", "en") == "Radiologist"
    assert i18n.role_name("janitor", "en") == "janitor"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("en", "en"),
        ("en-GB", "en"),
        (" en ", "en"),
        ("fr", "zh-CN"),
    ],
)
def test_unknown_languages_fall_back_to_chinese(given: str | None, expected: str) -> None:
    assert i18n.normalise_language(given) == expected


def test_the_home_page_promises_no_links_and_no_placeholders() -> None:
    for language in i18n.LANGUAGES:
        for line in [*i18n.STRINGS[language].values(), *i18n.ROLE_OUTLOOK[language].values()]:
            assert "TODO" not in line
            assert "http" not in line


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_missing_fields_are_reported_under_each_field(language: str) -> None:
    errors = i18n.login_field_errors("   ", "")
    assert [(e.field, e.key) for e in errors] == [
        ("username", "err_username_required"),
        ("password", "err_password_required"),
    ]
    worded = [i18n.localise(e, language) for e in errors]
    assert worded[0].text == i18n.STRINGS[language]["err_username_required"]
    assert i18n.login_field_errors("radiologist", "x") == []


def test_wrong_credentials_do_not_say_which_part_was_wrong() -> None:
    zh = i18n.login_refusal_message(LoginFailed(LoginRefusal.invalid), "zh-CN", SHANGHAI)
    en = i18n.login_refusal_message(LoginFailed(LoginRefusal.invalid), "en", SHANGHAI)
    assert zh.field == en.field == "form"
    assert zh.text == "用户名或密码不正确。"
    assert en.text == "The username or password is incorrect."


def test_a_locked_account_says_until_when_in_beijing_time() -> None:
    failure = LoginFailed(
        LoginRefusal.locked, locked_until=datetime(2026, 11, 20, 6, 5, tzinfo=UTC)
    )
    zh = i18n.login_refusal_message(failure, "zh-CN", SHANGHAI)
    en = i18n.login_refusal_message(failure, "en", SHANGHAI)
    assert zh.field == "form"
    assert "14:05" in zh.text and "北京时间" in zh.text and "锁定" in zh.text
    assert "14:05" in en.text and "China Standard Time" in en.text and "locked" in en.text
    ref = i18n.login_refusal(failure, SHANGHAI)
    assert (ref.time, ref.zone) == ("14:05", "Asia/Shanghai")


def test_a_naive_lock_time_is_taken_as_utc() -> None:
    assert i18n.format_local_time(datetime(2026, 11, 20, 23, 30), SHANGHAI) == "07:30"


def test_a_lock_without_a_time_still_says_locked() -> None:
    message = i18n.login_refusal_message(LoginFailed(LoginRefusal.locked), "zh-CN", SHANGHAI)
    assert "锁定" in message.text and "{" not in message.text


def test_other_zones_are_named_by_their_key() -> None:
    failure = LoginFailed(
        LoginRefusal.locked, locked_until=datetime(2026, 11, 20, 6, 5, tzinfo=UTC)
    )
    message = i18n.login_refusal_message(failure, "en", ZoneInfo("Asia/Urumqi"))
    assert "12:05 (Asia/Urumqi)" in message.text


@pytest.mark.parametrize(
    ("refusal", "zh_word", "en_word"),
    [
        (LoginRefusal.demo_refused, "演示账户", "Demo accounts"),
        (LoginRefusal.inactive, "停用", "deactivated"),
    ],
)
def test_demo_and_inactive_refusals_are_worded(
    refusal: LoginRefusal, zh_word: str, en_word: str
) -> None:
    assert zh_word in i18n.login_refusal_message(LoginFailed(refusal), "zh-CN", SHANGHAI).text
    assert en_word in i18n.login_refusal_message(LoginFailed(refusal), "en", SHANGHAI).text


def test_every_refusal_has_wording() -> None:
    for refusal in LoginRefusal:
        for language in i18n.LANGUAGES:
            message = i18n.login_refusal_message(LoginFailed(refusal), language, SHANGHAI)
            assert message.text and "{" not in message.text


def test_status_line_counts_what_waits_for_the_role() -> None:
    counts = {"orders_today": 7, "awaiting_preliminary": 3, "awaiting_audit": 0, "finals_today": 2}
    assert i18n.role_status_line(Role.radiologist, counts, "zh-CN") == "有 3 项检查等待初步报告。"
    assert i18n.role_status_line("radiologist", counts, "en").startswith("3 studies")
    assert i18n.role_status_line(Role.auditor, counts, "zh-CN") == "当前没有需要您处理的事项。"
    assert i18n.role_status_line(Role.leader, counts, "en") == (
        "There is nothing waiting for you right now."
    )
    assert i18n.role_status_line("nobody", counts, "zh-CN") == "当前没有需要您处理的事项。"
    assert i18n.role_outlook_line("nobody", "zh-CN") == ""


def test_facility_name_follows_the_language() -> None:
    zh, en = "青岚县人民医院", "Qinglan County People's Hospital"
    assert i18n.facility_display_name(zh, en, "zh-CN") == zh
    assert i18n.facility_display_name(zh, en, "en") == en
    assert i18n.facility_display_name("石桥镇卫生院", "", "en") == "石桥镇卫生院"
