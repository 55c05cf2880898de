"""What the archive index needs from one received instance, read without I/O.

Received bytes are checked before anything is stored: pydicom reads
leniently (a truncated or garbled stream often still yields a data set with
UIDs), so :func:`check_encoding` walks the element structure itself — tags,
value representations, lengths, sequence and fragment delimiters — and
:func:`read_instance` refuses anything that does not add up. Value
conversion errors in the fields the index reads become
:class:`~dicom.errors.InvalidInstance` too, never a stray exception.
"""

from __future__ import annotations

import logging
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from io import BytesIO
from zoneinfo import ZoneInfo

from pydicom import dcmread
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filereader import read_sequence
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.values import convert_string

from dicom.errors import CANNOT_UNDERSTAND, DATASET_MISMATCH, InvalidInstance

__all__ = [
    "InstanceFacts",
    "check_encoding",
    "display_name",
    "facts_from",
    "is_valid_uid",
    "parse_da",
    "parse_tm",
    "read_facts",
    "read_instance",
    "required_uids",
    "syntax_flags",
]

log = logging.getLogger("huren.dicom")

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_MAX_DEPTH = 32
_UNDEFINED = 0xFFFFFFFF


def is_valid_uid(value: str) -> bool:
    """Digits and dots, at most 64 characters (leading zeros tolerated: modalities send them)."""
    return 0 < len(value) <= 64 and _UID.fullmatch(value) is not None


@dataclass(frozen=True)
class InstanceFacts:
    """The attributes of one instance that the index (Study/Series/Instance rows) needs."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    patient_id: str
    patient_name: str
    patient_birth_date: date | None
    patient_sex: str
    accession_number: str
    issuer_of_accession: str
    study_id: str
    study_description: str
    study_datetime: datetime | None
    modality: str
    body_part: str
    laterality: str
    series_number: int | None
    series_description: str
    series_datetime: datetime | None
    station_name: str
    requested_procedure_id: str
    sps_id: str


# --- structure check -------------------------------------------------------------------------

_VR_LONG = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_VR_SHORT = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO",
        b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
_ITEM, _ITEM_END, _SEQ_END = 0xE000, 0xE00D, 0xE0DD


class _Malformed(Exception):
    """Internal: the byte stream breaks the encoding rules at ``offset``."""


# One element as the walker found it: tag, VR (b"" when implicit), length, start and end
# of its value in the walked buffer, and whether an undefined-length value holds items.
_Element = tuple[int, bytes, int, int, int, bool]


class _Walker:
    """Walks an encoded data set element by element without decoding values."""

    def __init__(self, buf: bytes, little_endian: bool) -> None:
        order = "<" if little_endian else ">"
        self.buf = buf
        self.tag = struct.Struct(order + "HH")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "I")

    def dataset(
        self,
        pos: int,
        end: int,
        implicit: bool,
        depth: int,
        delimited: bool,
        sink: list[_Element] | None = None,
    ) -> int:
        """Walk elements from ``pos``; an undefined-length item stops at its delimiter.

        With ``sink``, each element met is recorded there (used at the top level).
        """
        if depth > _MAX_DEPTH:
            raise _Malformed(f"sequences nested deeper than {_MAX_DEPTH} at offset {pos}")
        buf, start = self.buf, pos
        unpack_tag, unpack_u16, unpack_u32 = (
            self.tag.unpack_from,
            self.u16.unpack_from,
            self.u32.unpack_from,
        )
        while pos < end:
            if end - pos < 8:
                raise _Malformed(f"element header cut short at offset {pos}")
            group, element = unpack_tag(buf, pos)
            if group == 0xFFFE:
                if element == _ITEM_END and delimited:
                    return pos + 8
                raise _Malformed(f"unexpected item tag (FFFE,{element:04X}) at offset {pos}")
            if implicit:
                vr, length, header = b"", unpack_u32(buf, pos + 4)[0], 8
            else:
                vr = buf[pos + 4 : pos + 6]
                if vr in _VR_LONG:
                    if end - pos < 12:
                        raise _Malformed(f"element header cut short at offset {pos}")
                    length, header = unpack_u32(buf, pos + 8)[0], 12
                elif vr in _VR_SHORT:
                    length, header = unpack_u16(buf, pos + 6)[0], 8
                elif depth > 0 and pos == start:
                    # Some writers switch to implicit VR inside sequence items.
                    return self.dataset(start, end, True, depth, delimited)
                else:
                    raise _Malformed(
                        f"invalid VR {vr!r} for ({group:04X},{element:04X}) at offset {pos}"
                    )
            pos += header
            value_start, items = pos, False
            if length == _UNDEFINED:
                if implicit or vr in (b"SQ", b"UN"):
                    pos = self.sequence(pos, end, implicit or vr == b"UN", depth + 1, None)
                    value_end, items = pos, True  # the items and the sequence delimiter
                elif vr in (b"OB", b"OW"):
                    pos = self.fragments(pos, end)
                    value_end = pos - 8  # the fragments, without the sequence delimiter
                else:
                    raise _Malformed(f"undefined length on VR {vr!r} at offset {pos}")
            else:
                if length > end - pos:
                    raise _Malformed(
                        f"value of ({group:04X},{element:04X}) needs {length} bytes, "
                        f"{end - pos} left at offset {pos}"
                    )
                if vr == b"SQ":
                    self.sequence(pos, pos + length, implicit, depth + 1, pos + length)
                pos += length
                value_end = pos
            if sink is not None:
                sink.append((group << 16 | element, vr, length, value_start, value_end, items))
        if delimited:
            raise _Malformed("item ends without its delimitation item")
        return pos

    def sequence(self, pos: int, end: int, implicit: bool, depth: int, stop: int | None) -> int:
        """Walk items until ``stop`` (defined length) or the sequence delimiter."""
        while True:
            if stop is not None and pos == stop:
                return pos
            if end - pos < 8:
                raise _Malformed(f"sequence cut short at offset {pos}")
            group, element = self.tag.unpack_from(self.buf, pos)
            length = self.u32.unpack_from(self.buf, pos + 4)[0]
            pos += 8
            if group == 0xFFFE and element == _SEQ_END and stop is None:
                return pos
            if group != 0xFFFE or element != _ITEM:
                raise _Malformed(f"expected an item, found ({group:04X},{element:04X})")
            if length == _UNDEFINED:
                pos = self.dataset(pos, end, implicit, depth, True)
            else:
                if length > end - pos:
                    raise _Malformed(f"item of {length} bytes overruns at offset {pos}")
                if self.dataset(pos, pos + length, implicit, depth, False) != pos + length:
                    raise _Malformed(f"item contents do not fill its length at offset {pos}")
                pos += length

    def fragments(self, pos: int, end: int) -> int:
        """Walk encapsulated pixel data: defined-length items, then the sequence delimiter."""
        while True:
            if end - pos < 8:
                raise _Malformed(f"encapsulated pixel data cut short at offset {pos}")
            group, element = self.tag.unpack_from(self.buf, pos)
            length = self.u32.unpack_from(self.buf, pos + 4)[0]
            pos += 8
            if group == 0xFFFE and element == _SEQ_END:
                return pos
            if group != 0xFFFE or element != _ITEM or length == _UNDEFINED:
                raise _Malformed(f"bad pixel data fragment ({group:04X},{element:04X})")
            if length > end - pos:
                raise _Malformed(f"fragment of {length} bytes overruns at offset {pos}")
            pos += length


def syntax_flags(transfer_syntax: str) -> tuple[bool, bool, bool]:
    """(implicit VR, little endian, deflated); unknown syntaxes are treated as encapsulated."""
    uid = UID(transfer_syntax)
    if uid.is_transfer_syntax:
        return uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated
    return False, True, False


def _walk(body: bytes, transfer_syntax: str) -> tuple[bytes, list[_Element]]:
    implicit, little, deflated = syntax_flags(transfer_syntax)
    if deflated:
        try:
            body = zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise InvalidInstance(f"deflated data set does not inflate: {exc}") from None
    if not body:
        raise InvalidInstance("empty data set")
    elements: list[_Element] = []
    try:
        _Walker(body, little).dataset(0, len(body), implicit, 0, False, elements)
    except _Malformed as exc:
        raise InvalidInstance(f"malformed data set: {exc}") from None
    return body, elements


def check_encoding(body: bytes, transfer_syntax: str) -> bytes:
    """Check that ``body`` (a data set without file meta) is well formed; return it inflated.

    Raises :class:`InvalidInstance` (0xC210) when it is not: garbage, a cut
    stream, lengths that overrun, bad VRs, unterminated sequences.
    """
    return _walk(body, transfer_syntax)[0]


def _meta(encoded: bytes) -> tuple[int, str, list[_Element]]:
    """Where the data set starts, the transfer syntax and the meta elements of a Part-10 stream."""
    if len(encoded) < 132 or encoded[128:132] != b"DICM":
        raise InvalidInstance("not a DICOM Part-10 stream (no DICM prefix)")
    pos, syntax, elements = 132, "", []
    while len(encoded) - pos >= 8:
        group, element = struct.unpack_from("<HH", encoded, pos)
        if group != 0x0002:
            break
        vr = encoded[pos + 4 : pos + 6]
        if vr in _VR_LONG:
            if len(encoded) - pos < 12:
                break
            length, header = struct.unpack_from("<I", encoded, pos + 8)[0], 12
        elif vr in _VR_SHORT:
            length, header = struct.unpack_from("<H", encoded, pos + 6)[0], 8
        else:
            raise InvalidInstance(f"malformed file meta: VR {vr!r} at offset {pos}")
        if length == _UNDEFINED or pos + header + length > len(encoded):
            raise InvalidInstance(f"malformed file meta at offset {pos}")
        start = pos + header
        elements.append((0x00020000 | element, vr, length, start, start + length, False))
        if element == 0x0010:
            syntax = encoded[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    if not syntax:
        raise InvalidInstance("file meta lacks the transfer syntax (0002,0010)")
    return pos, syntax, elements


def _assemble(
    encoded: bytes,
    meta_elements: list[_Element],
    body: bytes,
    elements: list[_Element],
    syntax: str,
) -> FileDataset:
    """The data set pydicom's reader would build, from elements the walker already found.

    Values stay raw (pydicom converts them on access, as after ``dcmread``);
    undefined-length sequences are read at once with pydicom's own
    ``read_sequence``, as its reader does.
    """
    implicit, little, _ = syntax_flags(syntax)
    meta = FileMetaDataset(
        {
            BaseTag(tag): RawDataElement(
                BaseTag(tag), vr.decode("ascii"), length, encoded[start:end], start, False, True
            )
            for tag, vr, length, start, end, _ in meta_elements
        }
    )
    charset: str | list[str] = default_encoding
    found: dict[BaseTag, RawDataElement | DataElement] = {}
    vrs: dict[bytes, str | None] = {b"": None}
    for number, vr, length, start, end, items in elements:
        tag, value = BaseTag(number), body[start:end]
        if number == 0x00080005:
            charset = convert_encodings(convert_string(value, little))
        if items and length == _UNDEFINED:
            sequence = read_sequence(BytesIO(value), implicit, little, _UNDEFINED, charset)
            found[tag] = DataElement(tag, "SQ", sequence, start, is_undefined_length=True)
            continue
        name = vrs.get(vr)
        if name is None and vr:
            name = vrs[vr] = vr.decode("ascii")
        found[tag] = RawDataElement(tag, name, length, value, start, implicit, little)
    dataset = FileDataset(BytesIO(), found, encoded[:128], meta, implicit, little)
    dataset.set_original_encoding(implicit, little, dataset._character_set)
    return dataset


def read_instance(encoded: bytes) -> Dataset:
    """Check and decode a Part-10 byte string (preamble, meta, data set) as received.

    The returned data set carries ``file_meta`` and equals what
    ``pydicom.dcmread`` gives, built from the structure check's own walk
    (about 4x faster). Raises :class:`InvalidInstance` (0xC210) for anything
    that is not a well-formed DICOM stream; UIDs are checked later by
    :func:`facts_from`.
    """
    start, syntax, meta_elements = _meta(encoded)
    if not is_valid_uid(syntax):
        raise InvalidInstance(f"transfer syntax {syntax!r} is not a UID")
    body, elements = _walk(encoded[start:], syntax)
    try:
        return _assemble(encoded, meta_elements, body, elements, syntax)
    except Exception:
        log.debug("fast assembly failed; reading with pydicom", exc_info=True)
    try:
        return dcmread(BytesIO(encoded))
    except Exception as exc:
        raise InvalidInstance(f"data set does not decode: {exc}") from None


# --- values ---------------------------------------------------------------------------------


# Attributes read from every instance whose VR allows only ASCII (the default
# repertoire): their raw bytes are text as they stand, whatever the character set.
_ASCII_TAGS = {
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "SOPInstanceUID": 0x00080018,
    "SOPClassUID": 0x00080016,
    "StudyDate": 0x00080020,
    "StudyTime": 0x00080030,
    "SeriesDate": 0x00080021,
    "SeriesTime": 0x00080031,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "Modality": 0x00080060,
    "BodyPartExamined": 0x00180015,
    "Laterality": 0x00200060,
    "ImageLaterality": 0x00200062,
    "TimezoneOffsetFromUTC": 0x00080201,
    "InstanceNumber": 0x00200013,
    "SeriesNumber": 0x00200011,
}


def _ascii(dataset: Dataset, tag: int) -> str | None:
    """The text of an ASCII-only attribute straight from its raw bytes; None to ask pydicom.

    Saves pydicom's conversion and validation (the bulk of reading an
    instance's facts) for values that are bytes of ASCII anyway.
    """
    elem = dataset.get_item(tag)
    if elem is None:
        return ""
    if not isinstance(elem, RawDataElement) or not isinstance(elem.value, bytes):
        return None
    text = elem.value.decode("ascii", "replace")
    return "\\".join(part.strip(" \0") for part in text.split("\\")).strip("\\")


def _is_value(text: str) -> int | None:
    """An IS value; "3.0" counts as 3, as pydicom reads it."""
    if not text or "\\" in text:
        return None
    try:
        return int(text)
    except ValueError:
        number = float(text)
        return int(number) if number.is_integer() else None


def _text(dataset: Dataset, keyword: str) -> str:
    """A string attribute as text; multiple values joined by backslash, as encoded."""
    tag = _ASCII_TAGS.get(keyword)
    if tag is not None:
        fast = _ascii(dataset, tag)
        if fast is not None:
            return fast
    value = dataset.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _integer(dataset: Dataset, keyword: str) -> int | None:
    try:
        tag = _ASCII_TAGS.get(keyword)
        fast = _ascii(dataset, tag) if tag is not None else None
        if fast is not None:
            return _is_value(fast)
        value = dataset.get(keyword)
        if value is None or value == "":
            return None
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _first_item(dataset: Dataset, keyword: str) -> Dataset | None:
    value = dataset.get(keyword)
    if not value:
        return None
    item = value[0]
    return item if isinstance(item, Dataset) else None


def parse_da(value: str) -> date | None:
    """A DA value (``YYYYMMDD``, or ACR-NEMA ``YYYY.MM.DD``) as a date; None when not one."""
    digits = value.strip().replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def parse_tm(value: str, *, upper: bool = False) -> time | None:
    """A TM value (``HH[MM[SS[.F{1,6}]]]``, colons tolerated) as a time.

    With ``upper`` the missing precision is filled to the end of the stated
    unit (``"12"`` is 12:59:59.999999), as range matching needs for an upper bound.
    """
    text = value.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        return None
    hour = int(whole[:2])
    minute = int(whole[2:4]) if len(whole) >= 4 else (59 if upper else 0)
    second = int(whole[4:6]) if len(whole) >= 6 else (59 if upper else 0)
    micro = int(fraction[:6].ljust(6, "0")) if fraction else (999999 if upper else 0)
    if second == 60:  # leap second as some modalities write it
        second = 59
    try:
        return time(hour, minute, second, micro)
    except ValueError:
        return None


def _offset_zone(value: str) -> tzinfo | None:
    """(0008,0201) Timezone Offset From UTC, ``+HHMM``/``-HHMM``."""
    text = value.strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    minutes = int(text[1:3]) * 60 + int(text[3:5])
    if minutes > 14 * 60:
        return None
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))


def _moment(day: str, clock: str, zone: tzinfo) -> datetime | None:
    parsed_day = parse_da(day)
    if parsed_day is None:
        return None
    parsed_clock = parse_tm(clock) if clock else time(0, 0)
    if parsed_clock is None:
        parsed_clock = time(0, 0)
    return datetime.combine(parsed_day, parsed_clock, tzinfo=zone).astimezone(UTC)


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def display_name(value: object) -> str:
    """A PN value as a display name: the ideographic group if present, else the alphabetic.

    Components (family^given^middle^prefix^suffix) are joined with a space,
    without one between East Asian characters: ``李^建国`` → ``李建国``,
    ``Li^Jianguo`` → ``Li Jianguo``.
    """
    text = str(value or "")
    groups = text.split("=")
    chosen = groups[0]
    if len(groups) > 1 and groups[1].strip("^ "):
        chosen = groups[1]
    parts = [part.strip() for part in chosen.split("^")]
    parts += [""] * (5 - len(parts))
    family, given, middle, prefix, suffix = parts[:5]
    ordered = [p for p in (prefix, family, given, middle, suffix) if p]
    name = ""
    for part in ordered:
        if name and not (_wide(name[-1]) and _wide(part[0])):
            name += " "
        name += part
    return name


# --- facts ----------------------------------------------------------------------------------


def _required_uid(dataset: Dataset, keyword: str) -> str:
    value = _text(dataset, keyword).rstrip("\0")
    if not value:
        raise InvalidInstance(f"{keyword} is missing", field=keyword, status=DATASET_MISMATCH)
    if not is_valid_uid(value):
        raise InvalidInstance(
            f"{keyword} {value[:80]!r} is not a valid UID", field=keyword, status=DATASET_MISMATCH
        )
    return value


def required_uids(dataset: Dataset) -> tuple[str, str, str, str]:
    """Study, Series and SOP Instance UID and SOP Class UID; InvalidInstance (0xA900) if bad."""
    try:
        return (
            _required_uid(dataset, "StudyInstanceUID"),
            _required_uid(dataset, "SeriesInstanceUID"),
            _required_uid(dataset, "SOPInstanceUID"),
            _required_uid(dataset, "SOPClassUID"),
        )
    except InvalidInstance:
        raise
    except Exception as exc:
        raise InvalidInstance(f"instance UIDs cannot be decoded: {exc}") from None


def _transfer_syntax(dataset: Dataset) -> str:
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return str(meta.TransferSyntaxUID)
    implicit, little = getattr(dataset, "original_encoding", (None, None))
    if implicit is True and little is True:
        return str(ImplicitVRLittleEndian)
    if implicit is False:
        return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ""


def _local_zone(dataset: Dataset, zone: ZoneInfo) -> tzinfo:
    offset = _offset_zone(_text(dataset, "TimezoneOffsetFromUTC"))
    return offset if offset is not None else zone


def facts_from(dataset: Dataset, *, zone: ZoneInfo) -> InstanceFacts:
    """Read the index's attributes from one instance.

    Dates and times are local to ``zone`` unless the instance states its own
    (0008,0201) offset, and come back as aware UTC. Raises
    :class:`InvalidInstance`: 0xA900 when a Study/Series/SOP Instance UID or
    the SOP Class UID is missing or not a UID, 0xC210 when an attribute the
    index needs cannot be decoded.
    """
    try:
        return _facts(dataset, zone)
    except InvalidInstance:
        raise
    except Exception as exc:
        raise InvalidInstance(
            f"instance attributes cannot be decoded: {exc}", status=CANNOT_UNDERSTAND
        ) from None


def _facts(dataset: Dataset, zone: ZoneInfo) -> InstanceFacts:
    study_uid, series_uid, sop_uid, sop_class = required_uids(dataset)
    local = _local_zone(dataset, zone)
    request = _first_item(dataset, "RequestAttributesSequence")
    issuer = _first_item(dataset, "IssuerOfAccessionNumberSequence")
    requested_procedure_id = _text(dataset, "RequestedProcedureID")
    sps_id = ""
    if request is not None:
        requested_procedure_id = _text(request, "RequestedProcedureID") or requested_procedure_id
        sps_id = _text(request, "ScheduledProcedureStepID")
    issuer_text = ""
    if issuer is not None:
        issuer_text = _text(issuer, "LocalNamespaceEntityID") or _text(issuer, "UniversalEntityID")
    study_date = _text(dataset, "StudyDate")
    series_date = _text(dataset, "SeriesDate") or study_date
    return InstanceFacts(
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class,
        transfer_syntax_uid=_transfer_syntax(dataset),
        instance_number=_integer(dataset, "InstanceNumber"),
        patient_id=_text(dataset, "PatientID"),
        patient_name=display_name(dataset.get("PatientName")),
        patient_birth_date=parse_da(_text(dataset, "PatientBirthDate")),
        patient_sex=_text(dataset, "PatientSex").upper(),
        accession_number=_text(dataset, "AccessionNumber"),
        issuer_of_accession=issuer_text,
        study_id=_text(dataset, "StudyID"),
        study_description=_text(dataset, "StudyDescription"),
        study_datetime=_moment(study_date, _text(dataset, "StudyTime"), local),
        modality=_text(dataset, "Modality").upper(),
        body_part=_text(dataset, "BodyPartExamined").upper(),
        laterality=(_text(dataset, "Laterality") or _text(dataset, "ImageLaterality")).upper(),
        series_number=_integer(dataset, "SeriesNumber"),
        series_description=_text(dataset, "SeriesDescription"),
        series_datetime=_moment(series_date, _text(dataset, "SeriesTime"), local),
        station_name=_text(dataset, "StationName"),
        requested_procedure_id=requested_procedure_id,
        sps_id=sps_id,
    )


# --- facts straight from the bytes ------------------------------------------------------------

# Character sets whose values decode with one codec (no ISO 2022 code extensions): the
# fast path handles these and leaves any other to pydicom.
_ONE_CODEC = {
    "": "latin_1",  # pydicom's default repertoire reading
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}
_TEXT_TAGS = {
    "PatientID": 0x00100020,
    "PatientName": 0x00100010,
    "AccessionNumber": 0x00080050,
    "StudyID": 0x00200010,
    "StudyDescription": 0x00081030,
    "SeriesDescription": 0x0008103E,
    "StationName": 0x00081010,
    "RequestedProcedureID": 0x00401001,
    "ScheduledProcedureStepID": 0x00400009,
    "LocalNamespaceEntityID": 0x00400031,
    "UniversalEntityID": 0x00400032,
}
_CHARSET_TAG = 0x00080005
_REQUEST_ATTRIBUTES = 0x00400275
_ACCESSION_ISSUER = 0x00080051


class _Slow(Exception):
    """Internal: this instance needs pydicom's full reading (ISO 2022, odd items)."""


class _RawValues:
    """Top-level (or one item's) element values as bytes, read as :func:`_text` would."""

    def __init__(self, buf: bytes, elements: list[_Element], codec: str) -> None:
        self.buf = buf
        self.codec = codec
        self.where = {tag: (start, end) for tag, _, _, start, end, _ in elements}

    def raw(self, tag: int) -> bytes | None:
        span = self.where.get(tag)
        return None if span is None else self.buf[span[0] : span[1]]

    def ascii(self, tag: int) -> str:
        value = self.raw(tag)
        if not value:
            return ""
        text = value.decode("ascii", "replace")
        return "\\".join(part.strip(" \0") for part in text.split("\\")).strip("\\")

    def text(self, keyword: str, *, split: bool = True) -> str:
        value = self.raw(_TEXT_TAGS[keyword])
        if not value:
            return ""
        try:
            text = value.decode(self.codec)
        except UnicodeDecodeError:
            raise _Slow from None  # pydicom's lenient decoding decides
        if not split:
            return text.rstrip("\0 ").strip()
        return "\\".join(part.rstrip("\0 ").strip() for part in text.split("\\")).strip("\\")


def _first_item_values(
    values: _RawValues, tag: int, implicit: bool, little: bool
) -> _RawValues | None:
    """The first item of a top-level sequence, walked like the top level."""
    sequence = values.raw(tag)
    if not sequence:
        return None
    order = "<" if little else ">"
    if len(sequence) < 8:
        raise _Slow
    group, element, length = struct.unpack_from(order + "HHI", sequence, 0)
    if (group, element) != (0xFFFE, _ITEM):
        if (group, element) == (0xFFFE, _SEQ_END):
            return None
        raise _Slow
    elements: list[_Element] = []
    walker = _Walker(sequence, little)
    try:
        if length == _UNDEFINED:
            walker.dataset(8, len(sequence), implicit, 1, True, elements)
        else:
            walker.dataset(8, 8 + length, implicit, 1, False, elements)
    except _Malformed:
        raise _Slow from None
    if not elements:
        raise _Slow  # an item the walker re-read as implicit VR: leave it to pydicom
    return _RawValues(sequence, elements, values.codec)


def read_facts(encoded: bytes, *, zone: ZoneInfo) -> InstanceFacts:
    """:func:`facts_from` of :func:`read_instance`, read straight from the walked bytes.

    About three times faster than building the pydicom data set first, which
    matters at hundreds of C-STOREs a second. Instances this reading does not
    cover (ISO 2022 character sets, unusual sequence items) go the full way,
    so the result is always the same.
    """
    start, syntax, _meta_elements = _meta(encoded)
    if not is_valid_uid(syntax):
        raise InvalidInstance(f"transfer syntax {syntax!r} is not a UID")
    body, elements = _walk(encoded[start:], syntax)
    try:
        return _read_facts(body, elements, syntax, zone)
    except _Slow:
        return facts_from(read_instance(encoded), zone=zone)


def _read_facts(
    body: bytes, elements: list[_Element], syntax: str, zone: ZoneInfo
) -> InstanceFacts:
    implicit, little, _ = syntax_flags(syntax)
    values = _RawValues(body, elements, "latin_1")
    charset = values.ascii(_CHARSET_TAG).strip()
    codec = _ONE_CODEC.get(charset)
    if codec is None:
        raise _Slow
    values.codec = codec
    uids = []
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        uid = values.ascii(_ASCII_TAGS[keyword]).rstrip("\0")
        if not uid:
            raise InvalidInstance(f"{keyword} is missing", field=keyword, status=DATASET_MISMATCH)
        if not is_valid_uid(uid):
            raise InvalidInstance(
                f"{keyword} {uid[:80]!r} is not a valid UID",
                field=keyword,
                status=DATASET_MISMATCH,
            )
        uids.append(uid)
    offset = _offset_zone(values.ascii(_ASCII_TAGS["TimezoneOffsetFromUTC"]))
    local: tzinfo = offset if offset is not None else zone
    request = _first_item_values(values, _REQUEST_ATTRIBUTES, implicit, little)
    issuer = _first_item_values(values, _ACCESSION_ISSUER, implicit, little)
    requested_procedure_id = values.text("RequestedProcedureID")
    sps_id = ""
    if request is not None:
        requested_procedure_id = request.text("RequestedProcedureID") or requested_procedure_id
        sps_id = request.text("ScheduledProcedureStepID")
    issuer_text = ""
    if issuer is not None:
        issuer_text = issuer.text("LocalNamespaceEntityID") or issuer.text("UniversalEntityID")
    study_date = values.ascii(_ASCII_TAGS["StudyDate"])
    series_date = values.ascii(_ASCII_TAGS["SeriesDate"]) or study_date
    laterality = values.ascii(_ASCII_TAGS["Laterality"]) or values.ascii(
        _ASCII_TAGS["ImageLaterality"]
    )
    return InstanceFacts(
        study_instance_uid=uids[0],
        series_instance_uid=uids[1],
        sop_instance_uid=uids[2],
        sop_class_uid=uids[3],
        transfer_syntax_uid=syntax,
        instance_number=_raw_integer(values.ascii(_ASCII_TAGS["InstanceNumber"])),
        patient_id=values.text("PatientID"),
        patient_name=display_name(values.text("PatientName")),
        patient_birth_date=parse_da(values.ascii(_ASCII_TAGS["PatientBirthDate"])),
        patient_sex=values.ascii(_ASCII_TAGS["PatientSex"]).upper(),
        accession_number=values.text("AccessionNumber"),
        issuer_of_accession=issuer_text,
        study_id=values.text("StudyID"),
        study_description=values.text("StudyDescription"),
        study_datetime=_moment(study_date, values.ascii(_ASCII_TAGS["StudyTime"]), local),
        modality=values.ascii(_ASCII_TAGS["Modality"]).upper(),
        body_part=values.ascii(_ASCII_TAGS["BodyPartExamined"]).upper(),
        laterality=laterality.upper(),
        series_number=_raw_integer(values.ascii(_ASCII_TAGS["SeriesNumber"])),
        series_description=values.text("SeriesDescription"),
        series_datetime=_moment(series_date, values.ascii(_ASCII_TAGS["SeriesTime"]), local),
        station_name=values.text("StationName"),
        requested_procedure_id=requested_procedure_id,
        sps_id=sps_id,
    )


def _raw_integer(text: str) -> int | None:
    try:
        return _is_value(text)
    except ValueError:
        return None
