"""What the benchmarks send: made-up patients, HL7 orders, CDS Hooks requests, CT copies.

Not a benchmark itself; loaded by path through ``_harness.load_sibling("_clients")``
(bench/ stays off ``sys.path``). ``bench/mllp.py``, ``bench/cds.py``,
``bench/dicom.py`` and ``bench/soak.py`` build their load from these pieces.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import uuid
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from fhir.identifiers import EXAM_TYPE_SYSTEM, FACILITY_SYSTEM
from models.enums import Sex
from models.identity import make_resident_id

# Made-up residents: not the demo county's area code (390521), so never one of its patients.
AREA_CODES = ("390522", "390523", "390524", "390525")
FIRST_BIRTH = date(1930, 1, 1)
BIRTH_DAYS = 34_697  # 1930-01-01 .. 2024-12-29; coprime with the stride below (a prime)
BIRTH_STRIDE = 7919
MAX_RESIDENTS = len(AREA_CODES) * BIRTH_DAYS * 200  # distinct (area, day, sequence, sex)


def birth_of(p: int) -> tuple[date, Sex]:
    """Patient ``p``'s birth date and sex: (area, day, sequence, sex) differ for every ``p``."""
    q = p >> 1
    day = ((q // 100) % BIRTH_DAYS) * BIRTH_STRIDE % BIRTH_DAYS
    return FIRST_BIRTH + timedelta(days=day), Sex.male if p & 1 else Sex.female


def resident_of(p: int, born: date, sex: Sex) -> str:
    """A valid, unique resident ID for made-up patient number ``p`` (see ``birth_of``)."""
    q = p >> 1
    area = AREA_CODES[(q // 100) // BIRTH_DAYS]
    return make_resident_id(area, born, q % 100, sex)


# --- HL7 ----------------------------------------------------------------------------------


def orm(
    *,
    facility: str,
    control_id: str,
    placer: str,
    accession: str,
    exam: tuple[str, str, str],
    resident_id: str,
    mrn: str,
    name: str,
    born: date,
    sex: Sex,
    sent_at: datetime,
    scheduled_at: datetime,
) -> bytes:
    """A new ORM^O01 (v2.3.1, UTF-8) as a township HIS sends it; ``exam`` is
    (code, name, modality), ``name`` is family^given, the accession goes in OBR-18."""
    code, exam_name, modality = exam
    sent, scheduled = f"{sent_at:%Y%m%d%H%M%S}", f"{scheduled_at:%Y%m%d%H%M%S}"
    return (
        f"MSH|^~\\&|HIS|{facility}|HUREN|HUREN|{sent}||ORM^O01|{control_id}|P|2.3.1"
        "|||||UNICODE UTF-8\r"
        f"PID|1||{resident_id}^^^^RI~{mrn}^^^{facility}^MR||{name}||"
        f"{born:%Y%m%d}|{sex.value}|||青岚县|||13800000000\r"
        "PV1|1|O\r"
        f"ORC|NW|{placer}||||||^^^{scheduled}||{sent}|||^王医生\r"
        f"OBR|1|{placer}||{code}^{exam_name}^HUREN|R|{sent}|||||||咳嗽一周|||"
        f"^王医生||{accession}|||||{modality}\r"
    ).encode()


# --- CDS Hooks ----------------------------------------------------------------------------


def order_sign(instance: str, resident_id: str, code: str, user: int, facility: str) -> bytes:
    """A CDS Hooks 2.0 order-sign request with one draft ServiceRequest, as an EHR sends it."""
    request = {
        "hookInstance": instance,
        "hook": "order-sign",
        "context": {
            "userId": f"Practitioner/{user}",
            "patientId": resident_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "ServiceRequest",
                            "id": "draft-1",
                            "status": "draft",
                            "intent": "order",
                            "code": {"coding": [{"system": EXAM_TYPE_SYSTEM, "code": code}]},
                            "subject": {"reference": f"Patient/{resident_id}"},
                            "requester": {
                                "identifier": {"system": FACILITY_SYSTEM, "value": facility}
                            },
                        }
                    }
                ],
            },
        },
    }
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()


class LeanCaller:
    """One keep-alive HTTP/1.1 connection sending prepared JSON POSTs to one path.

    The callers share this machine's two cores with the server under test: httpx
    spends ~1.4 ms of CPU per request, more than either server, and that time is
    taken from the server and added to every latency. This sends the same bytes
    an HTTP client would (request line, Host, Content-Type, Accept,
    Content-Length, body) with ~0.1 ms of CPU and reads the answer by its
    Content-Length.
    """

    def __init__(self, base: str, path: str) -> None:
        address = urlsplit(base)
        self._host, self._port = str(address.hostname), int(address.port or 80)
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None
        self._writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body))
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" not in fields:
            raise SystemExit(f"an answer without Content-Length: {head[:300]!r}")
        return status, await self._reader.readexactly(int(fields["content-length"]))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


# --- DICOM --------------------------------------------------------------------------------


def ct_small() -> Dataset:
    """pydicom's CT_small.dcm (a 128x128 CT slice, ~39 KB), read afresh."""
    source = get_testdata_file("CT_small.dcm", download=False)
    if source is None:
        raise SystemExit("pydicom's CT_small.dcm is missing")
    return dcmread(str(source))


def renumber(dataset: Dataset, uid: str, number: int) -> None:
    """Make ``dataset`` another instance: its own SOP Instance UID (in the meta too) and number."""
    dataset.SOPInstanceUID = uid
    dataset.file_meta.MediaStorageSOPInstanceUID = uid
    dataset.InstanceNumber = number


DCMTK = Path("/usr/bin")
# Debian's dcmtk keeps Nagle's algorithm on unless this is set: every C-STORE would then
# stall ~40-90 ms on a delayed ACK (11 instances/s). Modalities are configured likewise.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def wide_uid() -> str:
    """A fresh UID of always 44 characters (2.25 and a 39-digit number), to patch in place."""
    return f"2.25.{uuid.uuid4().int | 1 << 127}"


class CtSeries:
    """Copies of one CT data set that differ only in SOP Instance UID and Instance Number.

    pydicom spends ~2 ms of CPU writing CT_small; a study's copies are made from
    one encoding instead, the UID (in the file meta and the data set) and the
    number patched in place at the same length.
    """

    _UID = "2.25." + "1" * 39
    _NUMBER = struct.pack("<HH2sH", 0x0020, 0x0013, b"IS", 4) + b"9999"

    def __init__(self, dataset: Dataset) -> None:
        dataset.SOPInstanceUID = self._UID
        dataset.file_meta.MediaStorageSOPInstanceUID = self._UID
        dataset.InstanceNumber = "9999"
        encoded = BytesIO()
        dataset.save_as(encoded, enforce_file_format=True)
        self._encoded = encoded.getvalue()
        if self._encoded.count(self._UID.encode()) != 2 or self._NUMBER not in self._encoded:
            raise SystemExit("CT_small is not encoded as expected (explicit VR little endian)")

    def instance(self, uid: str, number: int) -> bytes:
        """The Part-10 file of copy ``number`` (1-9999) with SOP Instance UID ``uid``."""
        if len(uid) != len(self._UID):
            raise ValueError(f"UID {uid} is not {len(self._UID)} characters long")
        return self._encoded.replace(self._UID.encode(), uid.encode()).replace(
            self._NUMBER, self._NUMBER[:-4] + f"{number:<4d}".encode()
        )
