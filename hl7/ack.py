"""General acknowledgements (ACK) in the sender's own version, delimiters and charset."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from hl7.er7 import DEFAULT_DELIMITERS, Delimiters, Message, codec_for, escape, format_ts

__all__ = ["ERROR_TEXTS", "build_ack", "location_of"]

# HL7 table 0357, message error condition codes.
ERROR_TEXTS: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

DEFAULT_VERSION = "2.5"
MSA_TEXT_LIMIT = 80  # MSA-3 is ST(80); the whole text goes to ERR-8

_FIELD_NAME = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\.(\d+)(?:\.(\d+))?)?)?")


def location_of(field: str | None) -> list[str] | None:
    """ERR-2 components (segment, sequence, field, repetition, component, subcomponent).

    Accepts the ``field`` of our errors ("PID-3", "PID-3.1", "PID", "OBR[2]-4",
    "ORC-2/OBR-2": the first alternative) or an ERL already written "PID^1^3".
    """
    if not field:
        return None
    if "^" in field:
        return field.split("^")
    match = _FIELD_NAME.match(field.strip())
    if match is None:
        return None
    segment, sequence, number, component, subcomponent = match.groups()
    parts = [segment, sequence or "1"]
    if number:
        parts.append(number)
        if component:
            parts += ["1", component]
            if subcomponent:
                parts.append(subcomponent)
    return parts


def _version_before_25(version: str) -> bool:
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
    return len(numbers) == 2 and (numbers[0], numbers[1]) < (2, 5)


def build_ack(
    message: Message | None,
    *,
    code: Literal["AA", "AE", "AR"],
    text: str = "",
    error_location: str | None = None,
    error_code: str = "207",
    control_id: str,
    now: datetime,
    sending_application: str = "HUREN",
    sending_facility: str = "HUREN",
    charset: str | None = None,
    original_control_id: str = "",
) -> bytes:
    """An ACK for ``message``, or for input that could not be parsed (``message`` None).

    The reply uses the message's delimiters, version, processing id and
    charset (MSH-18 echoed when the sender declared it), so the sender can
    read it the way it reads its own messages. AE/AR carry an ERR segment:
    v2.5 fields (ERR-2 location, ERR-3 code from table 0357, ERR-4 severity,
    ERR-8 text) and, for versions before 2.5, ERR-1 as those versions define it.
    ``charset`` (HL7 name) and ``original_control_id`` (MSA-2) are only used
    when ``message`` is None, e.g. from what :class:`~hl7.errors.ER7Error` recovered.
    """
    d: Delimiters = message.delimiters if message is not None else DEFAULT_DELIMITERS
    f, c, s = d.field, d.component, d.subcomponent

    if message is not None:
        msh = message.header
        receiving_app, receiving_facility = msh.raw_field(3), msh.raw_field(4)
        trigger = escape(message.trigger, d)
        processing_id = msh.raw_field(11) or "P"
        version = msh.raw_field(12) or DEFAULT_VERSION
        declared = message.declared_charset
        encoding = message.encoding
        answered = message.control_id
    else:
        receiving_app = receiving_facility = trigger = ""
        processing_id, version = "P", DEFAULT_VERSION
        declared = charset or ""
        encoding = (codec_for(charset) if charset else None) or "utf-8"
        answered = original_control_id

    version_id = version.split(c)[0]
    message_type = "ACK"
    if trigger:
        message_type = f"ACK{c}{trigger}"
        if version_id not in ("2.1", "2.2", "2.3"):
            message_type += f"{c}ACK"
    msh_fields = [
        "MSH",
        d.encoding_characters,
        escape(sending_application, d),
        escape(sending_facility, d),
        receiving_app,
        receiving_facility,
        format_ts(now),
        "",
        message_type,
        escape(control_id, d),
        processing_id,
        version,
    ]
    if declared:
        msh_fields += ["", "", "", "", "", escape(declared, d)]
    segments = [f.join(msh_fields)]

    msa_text = text if len(text) <= MSA_TEXT_LIMIT else text[: MSA_TEXT_LIMIT - 3] + "..."
    msa = ["MSA", code, escape(answered, d)]
    if msa_text:
        msa.append(escape(msa_text, d))
    segments.append(f.join(msa))

    if code != "AA":
        error_text = ERROR_TEXTS.get(error_code, "")
        location = location_of(error_location) or []
        err = [
            "ERR",
            "",
            c.join(escape(p, d) for p in location),
            c.join([escape(error_code, d), escape(error_text, d), "HL70357"]),
            "E",
            "",
            "",
            "",
            escape(text, d),
        ]
        if _version_before_25(version_id):
            eld = [*location, "", "", ""][:3]
            err[1] = c.join(
                [
                    *(escape(p, d) for p in eld),
                    s.join([escape(error_code, d), escape(error_text, d), "HL70357"]),
                ]
            )
        while err[-1] == "":
            err.pop()
        segments.append(f.join(err))
    return ("\r".join(segments) + "\r").encode(encoding, errors="replace")
