"""The one Settings object, read from ``HUREN_*`` variables and passed into constructors."""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.errors import ConfigurationError

DEMO_PASSWORD = "huren-demo"
DEMO_SECRET_KEY = "huren-demo-secret-key-change-me"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: no backslash, no control


class Settings(BaseSettings):
    """Everything configurable about one hub process.

    Built once at start-up (``Settings()``) and handed down; nothing reads the
    environment behind its back.
    """

    model_config = SettingsConfigDict(env_prefix="HUREN_", frozen=True, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite file huren.db under data_dir
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    # seconds a write waits for a locked SQLite database before the sender gets an error
    database_busy_timeout: float = Field(default=30.0, gt=0, le=600)

    bind: str = "127.0.0.1"
    mllp_port: int = Field(default=2575, ge=0, le=65535)
    dicom_port: int = Field(default=11112, ge=0, le=65535)
    dicom_aet: str = "HUREN"
    http_port: int = Field(default=8080, ge=0, le=65535)
    portal_port: int = Field(default=3000, ge=1, le=65535)

    mllp_max_frame: int = Field(default=1 << 20, ge=1024)  # bytes per HL7 message
    mllp_idle_timeout: float = Field(default=300.0, gt=0)  # seconds before a silent link closes
    # Who may send HL7 (empty: anyone who can reach the port; see docs/security.md):
    mllp_allowed_senders: str = ""  # MSH-4 facility codes, comma-separated; others get AR
    mllp_allowed_networks: str = ""  # source CIDRs, comma-separated; others are not served
    mllp_tls_cert: Path | None = None  # PEM certificate chain; set with the key: MLLP over TLS
    mllp_tls_key: Path | None = None
    mllp_tls_ca: Path | None = None  # PEM CAs that sign the senders' client certificates
    mllp_tls_require_client_cert: bool = False
    hl7_default_charset: str = "UNICODE UTF-8"  # when MSH-18 is absent and the facility has none
    hl7_group_commit_wait: float = Field(default=0.001, ge=0, le=0.1)  # seconds to gather a batch
    empi_link_threshold: float = Field(default=0.95, ge=0, le=1)  # link on demographics alone
    empi_review_threshold: float = Field(default=0.6, ge=0, le=1)  # keep apart, flag for review

    dicom_restrict_callers: bool = True  # only AE titles configured for a facility may call
    dicom_default_facility: str = ""  # facility code for unknown callers when not restricted
    dicom_tls_cert: Path | None = None  # PEM certificate chain; set with the key: DICOM TLS
    dicom_tls_key: Path | None = None
    dicom_tls_ca: Path | None = None  # PEM CAs that sign the modalities' client certificates
    dicom_tls_require_client_cert: bool = False
    study_quiet_seconds: float = Field(
        default=60.0, gt=0
    )  # no new instance for this long: complete
    stabiliser_poll_seconds: float = Field(default=5.0, gt=0)
    audit_seal_seconds: float = Field(default=5.0, gt=0)  # how often `serve` chains new rows
    reconcile_min_confidence: float = Field(default=0.8, ge=0, le=1)  # patient+modality+date match

    serve_split: bool = False  # `serve` runs background, MLLP, DICOM, HTTP in 4 processes
    outbox_max_attempts: int = Field(default=12, ge=1)  # then the row is dead-lettered
    outbox_backoff_seconds: float = Field(default=2.0, gt=0)  # first retry; doubles each time
    outbox_backoff_max_seconds: float = Field(default=600.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_claim_rows: int = Field(default=50, ge=1)  # per round; fewer spread work across hubs
    hl7_send_timeout: float = Field(default=10.0, gt=0)  # waiting for a clinic's ACK

    upstream_fhir_url: str = ""  # empty: nothing is pushed to the province
    upstream_fhir_token: SecretStr = SecretStr("")
    fhir_send_timeout: float = Field(default=30.0, gt=0)  # waiting for the province's answer
    fhir_max_body: int = Field(default=16 << 20, ge=1024)  # bytes of one request to the API
    cds_max_body: int = Field(default=4 << 20, ge=1024)  # bytes of one CDS Hooks / REST call
    cds_clients: Path | None = None  # JSON file of CDS Hooks clients (iss, facility, jwks)
    public_base_url: str = ""  # how others reach this hub's HTTP; empty: http://BIND:HTTP_PORT

    secret_key: SecretStr = SecretStr(DEMO_SECRET_KEY)
    demo_password: SecretStr = SecretStr(DEMO_PASSWORD)
    exam_catalogue: Path | None = None  # empty: the catalogue shipped in models/data

    timezone: str = "Asia/Shanghai"  # how times are shown; they are stored in UTC
    settlement_rate_fen: int = Field(default=1000, ge=0)  # per body part per final report
    settlement_clinic_share_fen: int = Field(default=500, ge=0)

    # The reading calendar: routine studies arriving outside these hours start their
    # clock at the next opening (emergencies never wait). Local time, `timezone`.
    reading_hours: str = "00:00-24:00"  # e.g. 08:00-18:00
    reading_weekdays: str = "1-7"  # ISO weekdays, 1 = Monday; e.g. 1-5 or 1,2,3,4,5,6
    reading_holidays: str = ""  # ISO dates without reading service, comma-separated
    claim_minutes: int = Field(default=20, ge=1, le=240)  # a radiologist's claim on a study
    portal_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)  # sign-out after inactivity

    @field_validator("dicom_aet")
    @classmethod
    def _valid_ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("mllp_allowed_senders")
    @classmethod
    def _facility_codes(cls, value: str) -> str:
        return ",".join(code for code in (part.strip() for part in value.split(",")) if code)

    @field_validator("mllp_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("reading_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
        if not match:
            raise ValueError("reading hours are written HH:MM-HH:MM, e.g. 08:00-18:00")
        start, end = (int(match[1]), int(match[2])), (int(match[3]), int(match[4]))
        if not (start < end <= (24, 0)) or start[1] > 59 or end[1] > 59:
            raise ValueError("reading hours must open before they close, within one day")
        return f"{start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}"

    @field_validator("reading_weekdays")
    @classmethod
    def _weekdays(cls, value: str) -> str:
        days = parse_weekdays(value)
        if not days:
            raise ValueError("name at least one ISO weekday (1 = Monday ... 7 = Sunday)")
        return value

    @field_validator("reading_holidays")
    @classmethod
    def _holidays(cls, value: str) -> str:
        parse_holidays(value)
        return value

    @field_validator("upstream_fhir_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("upstream FHIR URL must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _shares_fit(self) -> Settings:
        if self.settlement_clinic_share_fen > self.settlement_rate_fen:
            raise ValueError("the clinic's settlement share cannot exceed the rate")
        if not self.dicom_restrict_callers and not self.dicom_default_facility:
            raise ValueError(
                "HUREN_DICOM_DEFAULT_FACILITY must name a facility when callers are not restricted"
            )
        if self.empi_review_threshold > self.empi_link_threshold:
            raise ValueError("the EMPI review threshold cannot exceed the link threshold")
        for link in ("mllp", "dicom"):
            cert, key = getattr(self, f"{link}_tls_cert"), getattr(self, f"{link}_tls_key")
            if (cert is None) != (key is None):
                raise ValueError(
                    f"HUREN_{link.upper()}_TLS_CERT and HUREN_{link.upper()}_TLS_KEY go together"
                )
            if getattr(self, f"{link}_tls_require_client_cert") and (
                cert is None or getattr(self, f"{link}_tls_ca") is None
            ):
                raise ValueError(
                    f"HUREN_{link.upper()}_TLS_REQUIRE_CLIENT_CERT needs "
                    f"HUREN_{link.upper()}_TLS_CERT, _KEY and _CA"
                )
        return self

    @property
    def mllp_sender_allow_list(self) -> frozenset[str]:
        """Facility codes allowed in MSH-4; empty means no list (any configured facility)."""
        return frozenset(code for code in self.mllp_allowed_senders.split(",") if code)

    @property
    def mllp_network_allow_list(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Source networks MLLP serves; empty means any address that reaches the port."""
        return parse_networks(self.mllp_allowed_networks)

    @property
    def base_url(self) -> str:
        """The hub's HTTP address as written into resources (FHIR fullUrls, WADO-RS)."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.bind}:{self.http_port}"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'huren.db').as_posix()}"

    @property
    def dicom_dir(self) -> Path:
        return self.data_dir / "dicom"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def demo_accounts_allowed(self) -> bool:
        return self.env != "production"

    def check_production(self) -> None:
        """Refuse to run a production hub with the demo secret anyone can read here.

        Demo accounts need no check here: login refuses them in production.
        """
        if self.env != "production":
            return
        if self.secret_key.get_secret_value() in {DEMO_SECRET_KEY, ""}:
            raise ConfigurationError(
                "HUREN_SECRET_KEY must be set to a private value when HUREN_ENV=production"
            )
        if len(self.secret_key.get_secret_value()) < 32:
            raise ConfigurationError("HUREN_SECRET_KEY must have at least 32 characters")


def check_ae_title(value: str) -> str:
    """The AE title without its padding; ValueError unless DICOM allows it (PS3.5 AE)."""
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError("a DICOM AE title has 1-16 printable ASCII characters, no backslash")
    return value.strip()


def parse_networks(
    value: str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``10.1.0.0/16, 192.168.5.7`` as networks (a bare address is a /32 or /128)."""
    networks = []
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or CIDR network: {part!r}") from exc
    return tuple(networks)


def parse_weekdays(value: str) -> frozenset[int]:
    """``1-5`` or ``1,2,3,6`` (ISO weekdays) as a set; a bad part raises ValueError."""
    days: set[int] = set()
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"not a weekday or range: {part!r}")
        first, last = int(low), int(high or low)
        if not 1 <= first <= last <= 7:
            raise ValueError(f"weekdays run from 1 (Monday) to 7 (Sunday), not {part!r}")
        days.update(range(first, last + 1))
    return frozenset(days)


def parse_holidays(value: str) -> frozenset[date]:
    """Comma-separated ISO dates; a bad one raises ValueError naming it."""
    holidays: set[date] = set()
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        try:
            holidays.add(date.fromisoformat(part))
        except ValueError as exc:
            raise ValueError(f"not an ISO date: {part!r}") from exc
    return frozenset(holidays)


def load_settings() -> Settings:
    """Read the environment once, turning pydantic's error into a HurenError."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        return Settings()
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"HUREN_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc
