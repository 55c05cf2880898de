"""A lean ER7 (pipe-and-hat) parser.

hl7apy builds a typed tree for every message (~17 ms per ORM), far too slow
for intake. This parser only splits what is asked for: a message is decoded
once and cut into segments and fields; components, repetitions and escapes
are resolved on access. Numbering follows HL7: for MSH, field 1 is the field
separator and field 2 the encoding characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from hl7.errors import ER7Error
from models.errors import ConfigurationError

__all__ = [
    "DEFAULT_DELIMITERS",
    "Delimiters",
    "Message",
    "Repetition",
    "Segment",
    "SegmentGroup",
    "codec_for",
    "escape",
    "format_ts",
    "join_components",
    "parse_date",
    "parse_message",
    "parse_ts",
    "unescape",
]


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The five (or, from v2.7, six) characters a message declares in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it is written back."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation


DEFAULT_DELIMITERS = Delimiters()

# HL7 table 0211 names (and the variants Chinese HIS vendors send) -> Python codecs.
# GBK and GB2312 are decoded as GB 18030, their superset, so no valid text is refused.
_CHARSETS: dict[str, str] = {
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "GB 18030": "gb18030",
    "GB18030": "gb18030",
    "GB 18030-2000": "gb18030",
    "GB18030-2000": "gb18030",
    "GB 18030-2005": "gb18030",
    "GB18030-2005": "gb18030",
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "GB 2312": "gb18030",
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "BIG-5": "big5",
    "BIG5": "big5",
}


def codec_for(charset: str) -> str | None:
    """The Python codec for an MSH-18 value, or None when the hub does not know it."""
    return _CHARSETS.get(" ".join(charset.split()).upper())


class Repetition:
    """One repetition of a field (e.g. one identifier of PID-3)."""

    __slots__ = ("_delimiters", "_encoding", "_literal", "raw")

    def __init__(
        self, raw: str, delimiters: Delimiters, encoding: str, *, literal: bool = False
    ) -> None:
        self.raw = raw
        self._delimiters = delimiters
        self._encoding = encoding
        self._literal = literal

    def get(self, component: int = 1, subcomponent: int = 1) -> str:
        """The unescaped component (or subcomponent), "" when absent."""
        if self._literal:
            return self.raw if component == 1 and subcomponent == 1 else ""
        return _pick(self.raw, self._delimiters, self._encoding, component, subcomponent)

    def components(self) -> list[str]:
        """All components, unescaped (subcomponent separators left in place)."""
        if self._literal:
            return [self.raw]
        d = self._delimiters
        return [unescape(part, d, self._encoding) for part in self.raw.split(d.component)]

    def __repr__(self) -> str:
        return f"Repetition({self.raw!r})"


def _pick(value: str, d: Delimiters, encoding: str, component: int, subcomponent: int) -> str:
    if d.component in value:
        parts = value.split(d.component)
        if component > len(parts):
            return ""
        value = parts[component - 1]
    elif component != 1:
        return ""
    if d.subcomponent in value:
        parts = value.split(d.subcomponent)
        if subcomponent > len(parts):
            return ""
        value = parts[subcomponent - 1]
    elif subcomponent != 1:
        return ""
    if d.escape and d.escape in value:
        return unescape(value, d, encoding)
    return value


class Segment:
    """One segment; fields are split once, everything below on access."""

    __slots__ = ("_delimiters", "_encoding", "_fields", "_is_msh", "name")

    def __init__(self, line: str, delimiters: Delimiters, encoding: str) -> None:
        fields = line.split(delimiters.field)
        self.name = fields[0]
        self._is_msh = self.name in _HEADER_SEGMENTS
        if self._is_msh:
            # MSH-1 is the separator itself, so MSH-n is fields[n] like any other segment.
            fields.insert(1, delimiters.field)
        self._fields = fields
        self._delimiters = delimiters
        self._encoding = encoding

    @property
    def field_count(self) -> int:
        """The number of the last field present (trailing empty fields count)."""
        return len(self._fields) - 1

    def raw_field(self, field: int) -> str:
        """The field as written on the wire (escaped, all repetitions), "" when absent."""
        fields = self._fields
        return fields[field] if 0 < field < len(fields) else ""

    def get(
        self, field: int, component: int = 1, repetition: int = 1, subcomponent: int = 1
    ) -> str:
        """The unescaped value at that position, "" when absent."""
        fields = self._fields
        if field >= len(fields) or field < 1:
            return ""
        value = fields[field]
        if not value:
            return ""
        if self._is_msh and field <= 2:
            return value if component == repetition == subcomponent == 1 else ""
        d = self._delimiters
        if d.repetition in value:
            reps = value.split(d.repetition)
            if repetition > len(reps):
                return ""
            value = reps[repetition - 1]
        elif repetition != 1:
            return ""
        return _pick(value, d, self._encoding, component, subcomponent)

    def repetitions(self, field: int) -> list[Repetition]:
        """Every repetition of a field, in order; [] when the field is empty."""
        raw = self.raw_field(field)
        if not raw:
            return []
        d, encoding = self._delimiters, self._encoding
        if self._is_msh and field <= 2:
            return [Repetition(raw, d, encoding, literal=True)]
        return [Repetition(part, d, encoding) for part in raw.split(d.repetition)]

    def __str__(self) -> str:
        fields = self._fields
        if self._is_msh:
            fields = [fields[0], *fields[2:]]
        return self._delimiters.field.join(fields)

    def __repr__(self) -> str:
        return f"Segment({str(self)[:60]!r})"


_HEADER_SEGMENTS = frozenset({"MSH", "BHS", "FHS"})


class _Segments:
    """Look-ups shared by a message and a group of its segments."""

    __slots__ = ("segments",)

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments

    def segment(self, name: str) -> Segment | None:
        """The first segment of that name."""
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    def all(self, name: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.name == name]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __len__(self) -> int:
        return len(self.segments)


class SegmentGroup(_Segments):
    """A run of segments opened by ``head`` (e.g. one ORC with its OBR, IPC, NTE …)."""

    __slots__ = ("index",)

    def __init__(self, segments: list[Segment], index: int) -> None:
        super().__init__(segments)
        self.index = index  # 1-based: the n-th group of its kind in the message

    @property
    def head(self) -> Segment:
        return self.segments[0]

    def __repr__(self) -> str:
        return f"SegmentGroup({[s.name for s in self.segments]})"


class Message(_Segments):
    """A parsed message: segments plus the header facts everyone asks for."""

    __slots__ = ("charset", "declared_charset", "delimiters", "encoding", "text")

    def __init__(
        self,
        segments: list[Segment],
        *,
        delimiters: Delimiters,
        charset: str,
        declared_charset: str,
        encoding: str,
        text: str,
    ) -> None:
        super().__init__(segments)
        self.delimiters = delimiters
        self.charset = charset  # HL7 name in effect: MSH-18, else the facility default
        self.declared_charset = declared_charset  # MSH-18 as sent, "" when absent
        self.encoding = encoding  # the Python codec used to decode
        self.text = text  # decoded, segments joined by "\r"

    @property
    def header(self) -> Segment:
        return self.segments[0]

    @property
    def message_code(self) -> str:
        return self.header.get(9, 1)

    @property
    def trigger(self) -> str:
        return self.header.get(9, 2)

    @property
    def message_type(self) -> str:
        """MSH-9.1^MSH-9.2, e.g. "ORM^O01" (just "ACK" when there is no event)."""
        trigger = self.trigger
        return f"{self.message_code}^{trigger}" if trigger else self.message_code

    @property
    def structure(self) -> str:
        return self.header.get(9, 3)

    @property
    def control_id(self) -> str:
        return self.header.get(10)

    @property
    def processing_id(self) -> str:
        return self.header.get(11)

    @property
    def version(self) -> str:
        return self.header.get(12)

    @property
    def sending_application(self) -> str:
        return self.header.get(3)

    @property
    def sending_facility(self) -> str:
        return self.header.get(4)

    @property
    def receiving_application(self) -> str:
        return self.header.get(5)

    @property
    def receiving_facility(self) -> str:
        return self.header.get(6)

    @property
    def message_datetime(self) -> str:
        """MSH-7 as sent; turn it into a datetime with :func:`parse_ts` and the sender's zone."""
        return self.header.get(7)

    def groups(self, head: str, *, until: Iterable[str] = ()) -> list[SegmentGroup]:
        """Each ``head`` segment with the segments after it, up to the next ``head``.

        ``until`` names segments that close a group without opening one (for
        example a trailing DG1 that belongs to the message, not the order).
        Segments before the first ``head`` are not in any group.
        """
        stops = frozenset(until)
        found: list[SegmentGroup] = []
        current: list[Segment] | None = None
        for segment in self.segments:
            if segment.name == head:
                current = [segment]
                found.append(SegmentGroup(current, len(found) + 1))
            elif segment.name in stops:
                current = None
            elif current is not None:
                current.append(segment)
        return found

    def __repr__(self) -> str:
        return f"Message({self.message_type!r}, control_id={self.control_id!r})"


_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_UTF8_BOM = b"\xef\xbb\xbf"


def _check_delimiters(field: str, encoding_characters: str) -> Delimiters:
    chars = field + encoding_characters
    if len(encoding_characters) not in (4, 5):
        raise ER7Error(
            f"MSH-2 must hold 4 encoding characters (component, repetition, escape, "
            f"subcomponent), got {encoding_characters!r}",
            field="MSH-2",
            hl7_error_code="102",
        )
    for char in chars:
        if not char.isascii() or not char.isprintable() or char.isalnum() or char.isspace():
            raise ER7Error(
                f"delimiter {char!r} is not a printable, non-alphanumeric ASCII character",
                field="MSH-1" if char == field else "MSH-2",
                hl7_error_code="102",
            )
    if len(set(chars)) != len(chars):
        raise ER7Error(
            f"delimiters {chars!r} repeat a character", field="MSH-2", hl7_error_code="102"
        )
    e = encoding_characters
    return Delimiters(field, e[0], e[1], e[2], e[3], e[4:])


def _decode_header(line: bytes) -> str:
    """MSH as text before the charset is known: ASCII, else whichever codec fits."""
    for codec in ("ascii", "utf-8", "gb18030"):
        try:
            return line.decode(codec)
        except UnicodeDecodeError:
            continue
    return line.decode("latin-1")


def parse_message(raw: bytes, *, default_charset: str = "UNICODE UTF-8") -> Message:
    """Parse one ER7 message; ``default_charset`` applies when MSH-18 is empty.

    Raises :class:`ER7Error` (with ``field`` and an HL7 error code) for anything
    that is not a well-formed message; the caller answers it with AR.
    """
    data = bytes(raw)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    data = data.lstrip(b"\r\n")
    if not data.strip():
        raise ER7Error("empty message", field="MSH", hl7_error_code="100")
    if not data.startswith(b"MSH"):
        raise ER7Error(
            f"message does not start with an MSH segment (starts {data[:12]!r})",
            field="MSH",
            hl7_error_code="100",
        )
    line_end = len(data)
    for terminator in (b"\r", b"\n"):
        at = data.find(terminator)
        if 0 <= at < line_end:
            line_end = at
    header = _decode_header(data[:line_end])
    if len(header) < 8:
        raise ER7Error(
            "MSH segment is truncated before its delimiters", field="MSH-2", hl7_error_code="102"
        )
    field_sep = header[3]
    header_fields = header.split(field_sep)
    delimiters = _check_delimiters(field_sep, header_fields[1])
    control_id = header_fields[9].split(delimiters.component)[0] if len(header_fields) > 9 else ""

    declared = ""
    if len(header_fields) > 17:
        declared = header_fields[17].split(delimiters.repetition)[0]
        declared = declared.split(delimiters.component)[0].strip()
    charset = declared or default_charset
    encoding = codec_for(charset)
    if encoding is None:
        if not declared:
            raise ConfigurationError(f"unknown default HL7 character set {default_charset!r}")
        raise ER7Error(
            f"unsupported character set {declared!r} in MSH-18",
            field="MSH-18",
            hl7_error_code="103",
            control_id=control_id,
        )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        where = "declared in MSH-18" if declared else "the facility default; MSH-18 is empty"
        raise ER7Error(
            f"bytes {exc.object[exc.start : exc.end]!r} at offset {exc.start} are not valid "
            f"{charset} ({where})",
            field="MSH-18",
            hl7_error_code="102",
            control_id=control_id,
        ) from None

    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    segments: list[Segment] = []
    lines: list[str] = []
    for number, line in enumerate(text.split("\r"), start=1):
        if not line or line.isspace():
            continue
        name = line[:3]
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != field_sep):
            raise ER7Error(
                f"segment {number} is not a segment: starts {line[:12]!r}",
                field=f"segment {number}",
                hl7_error_code="100",
                control_id=control_id,
            )
        lines.append(line)
        segments.append(Segment(line, delimiters, encoding))

    message = Message(
        segments,
        delimiters=delimiters,
        charset=charset,
        declared_charset=declared,
        encoding=encoding,
        text="\r".join(lines),
    )
    msh = segments[0]
    for field, what in ((9, "message type"), (10, "message control id"), (12, "version id")):
        if not msh.get(field):
            raise ER7Error(
                f"MSH-{field} ({what}) is empty",
                field=f"MSH-{field}",
                hl7_error_code="101",
                control_id=control_id,
            )
    return message


# ---------------------------------------------------------------- escapes


def unescape(
    value: str, delimiters: Delimiters = DEFAULT_DELIMITERS, encoding: str = "utf-8"
) -> str:
    """Resolve HL7 escape sequences; unknown or broken ones are kept as written.

    Keeping them is deliberate: HIS systems often send Windows paths or stray
    backslashes unescaped, and losing those characters would be worse.
    """
    esc = delimiters.escape
    if not esc or esc not in value:
        return value
    out: list[str] = []
    start = 0
    while True:
        opening = value.find(esc, start)
        if opening < 0:
            break
        closing = value.find(esc, opening + 1)
        if closing < 0:
            break
        replacement = _escape_sequence(value[opening + 1 : closing], delimiters, encoding)
        if replacement is None:
            out.append(value[start:closing])
            start = closing  # the closing char may open the next sequence
            continue
        out.append(value[start:opening])
        out.append(replacement)
        start = closing + 1
    out.append(value[start:])
    return "".join(out)


def _escape_sequence(body: str, d: Delimiters, encoding: str) -> str | None:
    if len(body) == 1:
        simple = {
            "F": d.field,
            "S": d.component,
            "T": d.subcomponent,
            "R": d.repetition,
            "E": d.escape,
            "H": "",
            "N": "",
        }
        if body in simple:
            return simple[body]
        if body == "P" and d.truncation:
            return d.truncation
        return None
    if not body:
        return None
    kind = body[0]
    if kind == "X":
        try:
            return bytes.fromhex(body[1:]).decode(encoding)
        except (ValueError, UnicodeDecodeError):
            return None
    if kind == ".":
        command = body[1:3]
        if command == "br":
            return "\n"
        if command == "sp":
            count = body[3:].strip()
            return "\n" * (int(count) if count.isdigit() and int(count) < 100 else 1)
        if command in {"fi", "nf", "in", "ti", "sk", "ce"}:
            return ""  # formatting hints without a plain-text meaning
        return None
    if kind in "CM" and all(c in "0123456789ABCDEFabcdef" for c in body[1:]):
        return ""  # character set switches: the whole message is already decoded
    return None


@lru_cache(maxsize=16)
def _escape_table(d: Delimiters) -> dict[int, str]:
    e = d.escape
    table = {
        ord(d.escape): f"{e}E{e}",
        ord(d.field): f"{e}F{e}",
        ord(d.component): f"{e}S{e}",
        ord(d.subcomponent): f"{e}T{e}",
        ord(d.repetition): f"{e}R{e}",
        ord("\n"): f"{e}.br{e}",
    }
    if d.truncation:
        table[ord(d.truncation)] = f"{e}P{e}"
    return table


def escape(text: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Make text safe to place inside one field, component or subcomponent.

    Line breaks become ``\\.br\\``; the inverse of :func:`unescape`.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_escape_table(delimiters))


def join_components(parts: Sequence[str], delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Escape each component and join them, dropping trailing empty ones."""
    values = [escape(part, delimiters) for part in parts]
    while values and not values[-1]:
        values.pop()
    return delimiters.component.join(values)


# ---------------------------------------------------------------- dates and times

_TS = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,9}))?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?\Z"
)
_ISO_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\Z")


_YEARS = range(1800, 3000)  # clinical dates; "680412" is a two-digit year, not 6804


def _match_ts(value: str) -> re.Match[str] | None:
    value = value.strip()
    if _ISO_LIKE.match(value):
        # Some HIS send "2024-03-05 08:30:00"; read it rather than refuse the order.
        value = value.replace("-", "").replace(":", "").replace(" ", "").replace("T", "")
    match = _TS.match(value)
    return match if match is not None and int(match.group(1)) in _YEARS else None


def parse_ts(value: str, *, zone: ZoneInfo) -> datetime | None:
    """An HL7 TS/DTM as an aware UTC datetime; naive values are local time in ``zone``.

    Missing precision is filled with the earliest instant (``202403`` is
    1 March 00:00). Returns None for "" and raises ER7Error for anything else
    that is not a timestamp.
    """
    if not value or value == '""':
        return None
    match = _match_ts(value)
    if match is None:
        raise ER7Error(f"not an HL7 timestamp: {value!r}", hl7_error_code="102")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        tz: timezone | ZoneInfo = zone
        if sign:
            if int(off_h) > 14 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ER7Error(
            f"not a valid HL7 timestamp: {value!r} ({exc})", hl7_error_code="102"
        ) from None
    return moment.astimezone(UTC)


def parse_date(value: str) -> date | None:
    """An HL7 DT (or the date part of a TS): ``YYYY[MM[DD]]``; None for ""."""
    if not value or value == '""':
        return None
    match = _match_ts(value)
    if match is None:
        raise ER7Error(f"not an HL7 date: {value!r}", hl7_error_code="102")
    year, month, day = match.group(1, 2, 3)
    try:
        return date(int(year), int(month or 1), int(day or 1))
    except ValueError as exc:
        raise ER7Error(f"not a valid HL7 date: {value!r} ({exc})", hl7_error_code="102") from None


def format_ts(moment: datetime, *, zone: ZoneInfo | None = None) -> str:
    """``YYYYMMDDHHMMSS[+ZZZZ]``; aware values carry their offset (in ``zone`` if given)."""
    if zone is not None and moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    text = moment.strftime("%Y%m%d%H%M%S")
    offset = moment.utcoffset()
    if offset is None:
        return text
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
