"""Reading what the index needs from one instance, and refusing what cannot be archived."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, date, datetime, time
from io import BytesIO
from pathlib import Path

import pytest
from dicom_helpers import ZONE, part10, sample
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

import dicom.instance as instance_module
from dicom.errors import InvalidInstance
from dicom.instance import (
    check_encoding,
    display_name,
    facts_from,
    parse_da,
    parse_tm,
    read_instance,
)
from dicom.store import encode_received


def _file_bytes(name: str) -> bytes:
    return sample(name).read_bytes()


def _instance(**attributes: object) -> Dataset:
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "DX"
    for keyword, value in attributes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    return part10(dataset)


def _round_trip(dataset: Dataset) -> Dataset:
    """Through Part-10 bytes, as a received instance arrives."""
    return read_instance(encode_received(dataset, dataset.file_meta))


def test_facts_of_ct_small() -> None:
    facts = facts_from(read_instance(_file_bytes("CT_small.dcm")), zone=ZONE)
    assert facts.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert facts.series_instance_uid == "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
    assert facts.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert facts.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert facts.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert facts.modality == "CT"
    assert facts.patient_name == "CompressedSamples CT1"
    assert facts.patient_id == "1CT1"
    assert facts.instance_number == 1
    assert facts.series_number == 1
    assert facts.body_part == ""
    # 20040119 072730 with the file's own Timezone Offset From UTC -0500, not Shanghai's.
    assert facts.study_datetime == datetime(2004, 1, 19, 12, 27, 30, tzinfo=UTC)


def test_study_time_is_local_to_the_zone_without_an_offset() -> None:
    dataset = _instance(StudyDate="20240305", StudyTime="093000")
    facts = facts_from(_round_trip(dataset), zone=ZONE)
    assert facts.study_datetime == datetime(2024, 3, 5, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "syntax", "modality"),
    [
        ("MR_small.dcm", "1.2.840.10008.1.2.1", "MR"),
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90", "MR"),
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.91", "NM"),
        ("SC_rgb_rle.dcm", "1.2.840.10008.1.2.5", "OT"),
        ("image_dfl.dcm", "1.2.840.10008.1.2.1.99", "OT"),
        ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2", "MR"),
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2", "MR"),
    ],
)
def test_facts_keep_the_transfer_syntax_as_sent(name: str, syntax: str, modality: str) -> None:
    facts = facts_from(read_instance(_file_bytes(name)), zone=ZONE)
    assert facts.transfer_syntax_uid == syntax
    assert facts.modality == modality


def test_facts_without_file_meta_use_the_data_set_encoding() -> None:
    dataset = dcmread(sample("MR_small_implicit.dcm"))
    del dataset.file_meta
    assert facts_from(dataset, zone=ZONE).transfer_syntax_uid == "1.2.840.10008.1.2"


@pytest.mark.parametrize(
    "missing", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"]
)
def test_missing_uid_is_an_invalid_instance(missing: str) -> None:
    dataset = _instance(**{missing: None})
    with pytest.raises(InvalidInstance) as caught:
        facts_from(_round_trip(dataset), zone=ZONE)
    assert caught.value.status == 0xA900
    assert caught.value.field == missing


@pytest.mark.parametrize("bad", ["abc", "1.2.3.x", "1.2..3", "1." + "2" * 70])
def test_malformed_uid_is_an_invalid_instance(bad: str) -> None:
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.SOPInstanceUID = "1.2.3"
    dataset.SeriesInstanceUID = "1.2.4"
    dataset.add_new(0x0020000D, "UI", bad)  # raw, as a sender would put it on the wire
    with pytest.raises(InvalidInstance) as caught:
        facts_from(dataset, zone=ZONE)
    assert caught.value.status == 0xA900


def test_chinese_name_from_the_ideographic_group() -> None:
    dataset = _instance(SpecificCharacterSet="ISO_IR 192", PatientName="Li^Jianguo=李^建国")
    assert facts_from(_round_trip(dataset), zone=ZONE).patient_name == "李建国"


def test_chinese_name_in_the_alphabetic_group_gb18030() -> None:
    dataset = _instance(SpecificCharacterSet="GB18030", PatientName="张^三丰")
    encoded = encode_received(dataset, dataset.file_meta)
    assert "张".encode("gb18030") in encoded
    assert facts_from(read_instance(encoded), zone=ZONE).patient_name == "张三丰"


def test_alphabetic_name_gets_spaces() -> None:
    dataset = _instance(PatientName="Li^Jianguo^^Dr")
    assert facts_from(_round_trip(dataset), zone=ZONE).patient_name == "Dr Li Jianguo"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("李^建国", "李建国"),
        ("Li^Jianguo=李^建国=li^jian guo", "李建国"),
        ("Li^Jianguo=", "Li Jianguo"),
        ("Li^Jianguo=^", "Li Jianguo"),
        ("WANG^XIAO^MING", "WANG XIAO MING"),
        ("", ""),
        ("欧阳^娜娜", "欧阳娜娜"),
        ("李^Anna", "李 Anna"),
    ],
)
def test_display_name(value: str, shown: str) -> None:
    assert display_name(value) == shown


def test_study_time_zone_of_the_instance_wins() -> None:
    dataset = _instance(StudyDate="20240305", StudyTime="093000.5", TimezoneOffsetFromUTC="+0000")
    facts = facts_from(_round_trip(dataset), zone=ZONE)
    assert facts.study_datetime == datetime(2024, 3, 5, 9, 30, 0, 500000, tzinfo=UTC)


def test_series_and_request_attributes() -> None:
    request = Dataset()
    request.RequestedProcedureID = "RP9"
    request.ScheduledProcedureStepID = "SPS9"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "QL-T01"
    dataset = _instance(
        AccessionNumber="A1",
        IssuerOfAccessionNumberSequence=[issuer],
        RequestAttributesSequence=[request],
        SeriesDate="20240305",
        SeriesTime="0931",
        SeriesNumber="3",
        PatientBirthDate="19500101",
        PatientSex="m",
        BodyPartExamined="chest",
        ImageLaterality="L",
        StationName="QL-T01-DR",
    )
    received = _round_trip(dataset)
    # Garbage in an optional integer, as a sender might put it on the wire: ignored, not fatal.
    received[0x00200013] = RawDataElement(Tag(0x00200013), "IS", 2, b"x7", 0, False, True)
    facts = facts_from(received, zone=ZONE)
    assert facts.accession_number == "A1"
    assert facts.issuer_of_accession == "QL-T01"
    assert facts.requested_procedure_id == "RP9"
    assert facts.sps_id == "SPS9"
    assert facts.series_datetime == datetime(2024, 3, 5, 1, 31, tzinfo=UTC)
    assert facts.series_number == 3
    assert facts.instance_number is None
    assert facts.patient_birth_date == date(1950, 1, 1)
    assert facts.patient_sex == "M"
    assert facts.body_part == "CHEST"
    assert facts.laterality == "L"
    assert facts.station_name == "QL-T01-DR"
    assert facts.study_datetime is None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("20240305", date(2024, 3, 5)),
        ("2024.03.05", date(2024, 3, 5)),
        ("20240230", None),
        ("2024035", None),
        ("", None),
    ],
)
def test_parse_da(value: str, parsed: date | None) -> None:
    assert parse_da(value) == parsed


@pytest.mark.parametrize(
    ("value", "upper", "parsed"),
    [
        ("0930", False, time(9, 30)),
        ("09", False, time(9)),
        ("09", True, time(9, 59, 59, 999999)),
        ("093015.123", False, time(9, 30, 15, 123000)),
        ("09:30:15", False, time(9, 30, 15)),
        ("2560", False, None),
        ("9", False, None),
    ],
)
def test_parse_tm(value: str, upper: bool, parsed: time | None) -> None:
    assert parse_tm(value, upper=upper) == parsed


# --- refusing what is not a well-formed instance ------------------------------------------------


def _meta_end(encoded: bytes) -> int:
    length = struct.unpack_from("<I", encoded, 140)[0]
    return 144 + length


def test_garbage_after_a_valid_meta_is_refused() -> None:
    encoded = _file_bytes("CT_small.dcm")
    start = _meta_end(encoded)
    garbage = encoded[:start] + bytes((i * 37 + 11) % 256 for i in range(2000))
    with pytest.raises(InvalidInstance) as caught:
        read_instance(garbage)
    assert caught.value.status == 0xC210


def test_truncated_instance_is_refused() -> None:
    encoded = _file_bytes("CT_small.dcm")
    with pytest.raises(InvalidInstance, match="needs 32768 bytes") as caught:
        read_instance(encoded[:-1000])
    assert caught.value.status == 0xC210


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "rtplan_truncated.dcm"])
def test_pydicoms_truncated_samples_are_refused(name: str) -> None:
    with pytest.raises(InvalidInstance):
        read_instance(_file_bytes(name))


@pytest.mark.parametrize(
    "payload",
    [b"", b"hello, not DICOM", b"\0" * 128 + b"DICN" + b"\0" * 64, _file_bytes("no_meta.dcm")],
)
def test_non_part10_payload_is_refused(payload: bytes) -> None:
    with pytest.raises(InvalidInstance) as caught:
        read_instance(payload)
    assert caught.value.status == 0xC210


def test_bad_deflate_stream_is_refused() -> None:
    with pytest.raises(InvalidInstance, match="inflate"):
        check_encoding(b"\xff\xfe not deflate", "1.2.840.10008.1.2.1.99")


def test_deflated_body_is_checked_after_inflating() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(b"\x08\x00\x16\x00XX\x04\x00abcd") + packer.flush()  # bad VR "XX"
    with pytest.raises(InvalidInstance, match="invalid VR"):
        check_encoding(body, "1.2.840.10008.1.2.1.99")


def test_unterminated_sequence_is_refused() -> None:
    # (0008,1140) SQ of undefined length with one empty item and no sequence delimiter.
    body = b"\x08\x00\x40\x11SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\0\0\0\0"
    with pytest.raises(InvalidInstance, match="cut short"):
        check_encoding(body, "1.2.840.10008.1.2.1")


def test_undefined_length_items_and_fragments_are_walked() -> None:
    item = b"\x08\x00\x50\x11UI\x04\x001.2\0" + b"\xfe\xff\x0d\xe0\0\0\0\0"
    sequence = b"\x08\x00\x40\x11SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    sequence += item + b"\xfe\xff\xdd\xe0\0\0\0\0"
    pixels = b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\0\0\0\0"
    pixels += b"\xfe\xff\x00\xe0\x04\0\0\0abcd" + b"\xfe\xff\xdd\xe0\0\0\0\0"
    body = sequence + pixels
    assert check_encoding(body, "1.2.840.10008.1.2.4.90") == body
    with pytest.raises(InvalidInstance, match="fragment"):
        check_encoding(
            sequence + pixels[:-8] + b"\x00\x00\x00\x00\0\0\0\0", "1.2.840.10008.1.2.4.90"
        )


def test_every_bundled_sample_reads_or_is_refused_cleanly() -> None:
    """No file pydicom ships makes read_instance raise anything but InvalidInstance."""
    folder = sample("CT_small.dcm").parent
    accepted = 0
    for path in sorted(folder.glob("*.dcm")):
        try:
            dataset = read_instance(path.read_bytes())
        except InvalidInstance:
            continue
        accepted += 1
        assert isinstance(dataset, Dataset)
        assert dataset.file_meta.TransferSyntaxUID
    assert accepted > 50


def _flat(dataset: Dataset) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    for elem in dataset.iterall():
        value = len(elem.value) if elem.VR == "SQ" else elem.value
        found.append((elem.tag, elem.VR, repr(value), elem.is_undefined_length))
    return found


def _bundled() -> list[Path]:
    folder = sample("CT_small.dcm").parent
    return sorted(folder.glob("*.dcm")) + sorted((folder.parent / "charset_files").glob("*.dcm"))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", _bundled(), ids=lambda path: path.name)
def test_read_instance_equals_dcmread(path: Path) -> None:
    """read_instance builds its data set from its own walk: it must be pydicom's, element for
    element (values, VRs, sequences, character sets, meta, encoding)."""
    encoded = path.read_bytes()
    try:
        mine = read_instance(encoded)
    except InvalidInstance:
        return
    theirs = dcmread(BytesIO(encoded))
    assert _flat(mine) == _flat(theirs)
    assert _flat(mine.file_meta) == _flat(theirs.file_meta)
    assert mine.original_encoding == theirs.original_encoding
    assert mine.preamble == theirs.preamble


def test_read_instance_returns_the_same_data_set_as_pydicom() -> None:
    encoded = _file_bytes("JPEG2000.dcm")
    mine, theirs = read_instance(encoded), dcmread(BytesIO(encoded))
    assert mine.PixelData == theirs.PixelData
    assert mine.file_meta.TransferSyntaxUID == theirs.file_meta.TransferSyntaxUID


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", _bundled(), ids=lambda path: path.name)
def test_facts_read_from_raw_bytes_equal_pydicoms_values(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """facts_from reads ASCII-only attributes from their raw bytes; pydicom agrees."""

    def facts() -> object:
        try:
            return facts_from(read_instance(path.read_bytes()), zone=ZONE)
        except InvalidInstance as exc:
            return (exc.status, str(exc))

    fast = facts()
    monkeypatch.setattr(instance_module, "_ascii", lambda dataset, tag: None)
    assert facts() == fast
