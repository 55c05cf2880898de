"""The portal's words in Simplified Chinese (the default) and English.

Pure functions and tables only: no Reflex, so the wording can be tested and
reused. Pages read the table of the session's language through a computed var.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from integration.accounts import LoginFailed, LoginRefusal
from models.enums import Role
from portal import i18n_admin, i18n_analytics, i18n_audit, i18n_desk, i18n_recognition

ZH: Final = "zh-CN"
EN: Final = "en"
LANGUAGES: Final[tuple[str, ...]] = (ZH, EN)
DEFAULT_LANGUAGE: Final = ZH
# How each language names itself on the switch.
LANGUAGE_NAMES: Final[Mapping[str, str]] = {ZH: "中文", EN: "English"}

_CORE: Final[Mapping[str, Mapping[str, str]]] = {
    ZH: {
        "product": "互认 Huren",
        "tagline": "区域影像诊断中心",
        "login_title": "登录",
        "login_intro": "请使用您的工作账户登录。",
        "username": "用户名",
        "password": "密码",
        "sign_in": "登录",
        "signing_in": "正在登录…",
        "sign_out": "退出登录",
        "language": "语言",
        "loading": "正在加载…",
        "facility": "机构",
        "facility_code": "机构编码",
        "reading_centre": "阅片中心",
        "no_reading_centre": "无（本机构不向其他阅片中心上传）",
        "today": "今日概况",
        "orders_today": "今日申请",
        "awaiting_preliminary": "待初步报告",
        "awaiting_audit": "待审核",
        "finals_today": "今日终审",
        "your_work": "您的工作",
        "overview_unavailable": "暂时无法读取本机构今日数据，请稍后刷新页面。",
        "nothing_to_do": "当前没有需要您处理的事项。",
        "err_username_required": "请输入用户名。",
        "err_password_required": "请输入密码。",
        "err_invalid": "用户名或密码不正确。",
        "err_locked_until": "该账户因多次登录失败已被锁定，请于{zone} {time} 之后再试。",
        "err_locked": "该账户因多次登录失败已被锁定，请稍后再试。",
        "err_inactive": "该账户已停用，请联系系统管理员。",
        "err_demo_refused": "生产环境不允许使用演示账户登录。",
        "err_unavailable": "暂时无法登录，请稍后再试；如持续出现请联系系统管理员。",
    },
    EN: {
        "product": "互认 Huren",
        "tagline": "Regional imaging diagnosis centre",
        "login_title": "Sign in",
        "login_intro": "Sign in with your work account.",
        "username": "Username",
        "password": "Password",
        "sign_in": "Sign in",
        "signing_in": "Signing in…",
        "sign_out": "Sign out",
        "language": "Language",
        "loading": "Loading…",
        "facility": "Facility",
        "facility_code": "Facility code",
        "reading_centre": "Reading centre",
        "no_reading_centre": "None (this facility uploads to no other reading centre)",
        "today": "Today",
        "orders_today": "Orders today",
        "awaiting_preliminary": "Awaiting preliminary report",
        "awaiting_audit": "Awaiting audit",
        "finals_today": "Finalised today",
        "your_work": "Your work",
        "overview_unavailable": "Today's figures for your facility cannot be read right now; "
        "reload the page in a moment.",
        "nothing_to_do": "There is nothing waiting for you right now.",
        "err_username_required": "Enter your username.",
        "err_password_required": "Enter your password.",
        "err_invalid": "The username or password is incorrect.",
        "err_locked_until": "This account is locked after repeated failed sign-ins. "
        "Try again after {time} ({zone}).",
        "err_locked": "This account is locked after repeated failed sign-ins. Try again later.",
        "err_inactive": "This account has been deactivated. Contact your administrator.",
        "err_demo_refused": "Demo accounts cannot sign in to a production system.",
        "err_unavailable": "Signing in is not possible right now. Try again shortly; "
        "if it persists, contact your administrator.",
    },
}


def merge_tables(*tables: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """One table per language from each page family's own; a key defined twice is a bug."""
    merged: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    for table in tables:
        for language in LANGUAGES:
            clash = merged[language].keys() & table[language].keys()
            if clash:
                raise KeyError(f"UI strings defined twice: {sorted(clash)}")
            merged[language].update(table[language])
    return merged


STRINGS: Final[Mapping[str, Mapping[str, str]]] = merge_tables(
    _CORE,
    i18n_desk.STRINGS,
    i18n_recognition.STRINGS,
    i18n_admin.STRINGS,
    i18n_analytics.STRINGS,
    i18n_audit.STRINGS,
)

ROLE_NAMES: Final[Mapping[str, Mapping[Role, str]]] = {
    ZH: {
        Role.admin: "管理员",
        Role.radiologist: "放射科医师",
        Role.auditor: "审核医师",
        Role.clinician: "临床医师",
        Role.leader: "局领导",
        Role.qc: "质控员",
        Role.technologist: "技师",
    },
    EN: {
        Role.admin: "Administrator",
        Role.radiologist: "Radiologist",
        Role.auditor: "Auditing radiologist",
        Role.clinician: "Clinician",
        Role.leader: "Bureau leader",
        Role.qc: "QC officer",
        Role.technologist: "Technologist",
    },
}

# What the home page tells each role about where its work is in this portal.
ROLE_OUTLOOK: Final[Mapping[str, Mapping[Role, str]]] = {
    ZH: {
        Role.admin: "在“用户管理”“机构管理”“检查项目”中维护账户、机构（阅片中心、质控资质、"
        "HL7接口、AE title）与收费和互认目录。",
        Role.radiologist: "在“阅片工作列表”中领取检查、书写初步报告；"
        "疑难病例可在报告页申请会诊，会诊请求见“会诊”。",
        Role.auditor: "在“阅片工作列表”的“待审核”中审核初步报告：直接签发或修改后签发，"
        "并评定影像质量等级；“会诊”中答复其他中心的会诊请求。",
        Role.clinician: "在“本机构检查”中查看本机构申请的检查进度、返回的报告和危急值。",
        Role.leader: "本页显示本机构今日工作量。",
        Role.qc: "本页显示本机构今日工作量。",
        Role.technologist: "在“本机构检查”中查看检查进度、重拍要求和需要确认的危急值。",
    },
    EN: {
        Role.admin: "Manage accounts, facilities (reading centre, QC qualification, HL7 "
        "endpoint, AE titles) and the fee and recognition catalogue under Users, Facilities "
        "and Exam catalogue.",
        Role.radiologist: "Claim studies and write preliminary reports in the Reading "
        "worklist; ask an expert from a report page, and answer requests under Consultations.",
        Role.auditor: "Audit preliminary reports under Awaiting audit in the Reading "
        "worklist: sign as written or corrected and grade the images; answer other centres' "
        "requests under Consultations.",
        Role.clinician: "Follow your facility's exams, returned reports and critical results "
        "under Our exams.",
        Role.leader: "This page shows your facility's workload today.",
        Role.qc: "This page shows your facility's workload today.",
        Role.technologist: "Follow exams, retake requests and critical results to acknowledge "
        "under Our exams.",
    },
}

# The count each role acts on, and how to say "N of them wait for you".
_ROLE_FOCUS: Final[Mapping[Role, str]] = {
    Role.radiologist: "awaiting_preliminary",
    Role.auditor: "awaiting_audit",
}
_FOCUS_LINE: Final[Mapping[str, Mapping[str, str]]] = {
    ZH: {
        "awaiting_preliminary": "有 {n} 项检查等待初步报告。",
        "awaiting_audit": "有 {n} 份初步报告等待审核。",
    },
    EN: {
        "awaiting_preliminary": "{n} studies are waiting for a preliminary report.",
        "awaiting_audit": "{n} preliminary reports are waiting for audit.",
    },
}

# How the zone is named next to a time; other zones are named by their IANA key.
ZONE_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    ZH: {"Asia/Shanghai": "北京时间"},
    EN: {"Asia/Shanghai": "China Standard Time"},
}

FieldName = Literal["username", "password", "form"]


@dataclass(frozen=True)
class MessageRef:
    """A message for one place on the login form, kept language-free.

    The state keeps these plain strings, so switching the language re-words a
    message that is already on screen.
    """

    field: FieldName
    key: str
    time: str = ""  # HH:MM, local, for err_locked_until
    zone: str = ""  # IANA key of the zone that time is in


@dataclass(frozen=True)
class FieldMessage:
    """A message for one place on the login form, worded in one language."""

    field: FieldName
    text: str


def normalise_language(value: str | None) -> str:
    """A supported language code; anything unknown falls back to Chinese."""
    if value is None:
        return DEFAULT_LANGUAGE
    cleaned = value.strip()
    if cleaned in LANGUAGES:
        return cleaned
    if cleaned.lower().startswith("en"):
        return EN
    return DEFAULT_LANGUAGE


def strings(language: str) -> Mapping[str, str]:
    """The whole table of one language."""
    return STRINGS[normalise_language(language)]


def text(key: str, language: str) -> str:
    """One string; a missing key is a programming error and raises KeyError."""
    return strings(language)[key]


def role_name(role: Role | str, language: str) -> str:
    """The role's name in the language; an unknown role value is shown as it is."""
    try:
        return ROLE_NAMES[normalise_language(language)][Role(role)]
    except ValueError:
        return str(role)


def format_local_time(moment: datetime, zone: ZoneInfo) -> str:
    """HH:MM in the given zone (a naive datetime is taken as UTC, as the database stores)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%H:%M")


def title_name(title: str, language: str) -> str:
    """A professional title in the language ("" for none)."""
    return strings(language).get(f"title_{title}", title)


def zone(zone_key: str) -> ZoneInfo:
    return ZoneInfo(zone_key)


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """HH:MM:SS in the zone, for "refreshed at"."""
    return moment.astimezone(zone).strftime("%H:%M:%S")


def local_datetime(moment: datetime | None, zone: ZoneInfo) -> str:
    """YYYY-MM-DD HH:MM in the zone; empty for no time."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def zone_name(zone_key: str, language: str) -> str:
    """'北京时间' for Asia/Shanghai, else the zone's IANA key."""
    return ZONE_NAMES[normalise_language(language)].get(zone_key, zone_key)


def render(ref: MessageRef, language: str) -> str:
    """Word a message in the language."""
    template = text(ref.key, language)
    if ref.key == "err_locked_until":
        return template.format(time=ref.time, zone=zone_name(ref.zone, language))
    return template


def localise(ref: MessageRef, language: str) -> FieldMessage:
    return FieldMessage(ref.field, render(ref, language))


def login_field_errors(username: str, password: str) -> list[MessageRef]:
    """What is missing from the form, found before the hub is asked at all."""
    errors: list[MessageRef] = []
    if not username.strip():
        errors.append(MessageRef("username", "err_username_required"))
    if not password:
        errors.append(MessageRef("password", "err_password_required"))
    return errors


def login_refusal(failure: LoginFailed, zone: ZoneInfo) -> MessageRef:
    """The form-level message for a refused login.

    A wrong username and a wrong password read the same, so the message never
    tells which part was wrong.
    """
    refusal = failure.refusal
    if refusal is LoginRefusal.locked:
        if failure.locked_until is None:
            return MessageRef("form", "err_locked")
        until = format_local_time(failure.locked_until, zone)
        return MessageRef("form", "err_locked_until", time=until, zone=zone.key)
    if refusal is LoginRefusal.inactive:
        return MessageRef("form", "err_inactive")
    if refusal is LoginRefusal.demo_refused:
        return MessageRef("form", "err_demo_refused")
    return MessageRef("form", "err_invalid")


def login_refusal_message(failure: LoginFailed, language: str, zone: ZoneInfo) -> FieldMessage:
    """`login_refusal`, worded in the language."""
    return localise(login_refusal(failure, zone), language)


def facility_display_name(name: str, name_en: str, language: str) -> str:
    """The facility's name in the language, falling back to the Chinese name."""
    if normalise_language(language) == EN and name_en:
        return name_en
    return name


def role_status_line(role: Role | str, counts: Mapping[str, int], language: str) -> str:
    """One sentence on whether something waits for this role, from today's counts."""
    try:
        focus = _ROLE_FOCUS.get(Role(role))
    except ValueError:
        focus = None
    language = normalise_language(language)
    if focus is not None and counts.get(focus, 0) > 0:
        return _FOCUS_LINE[language][focus].format(n=counts[focus])
    return text("nothing_to_do", language)


def role_outlook_line(role: Role | str, language: str) -> str:
    """What the home page shows this role now, and which work areas are coming."""
    language = normalise_language(language)
    try:
        return ROLE_OUTLOOK[language][Role(role)]
    except ValueError:
        return ""
