"""Mapping parsed messages to orders and patient events, and the errors intake answers with."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hl7_samples import ZONE, drop_segments, encode, parse_sample, set_field, text_of

from hl7.er7 import parse_message
from hl7.errors import HL7Error, MappingError, UnsupportedMessage
from hl7.orders import (
    OrderEvent,
    OrderMessage,
    PatientDemographics,
    PatientIdentity,
    PatientMerge,
    PatientUpdate,
    map_message,
    person_name,
)
from models.enums import IdentifierKind, PatientClass, Priority, Sex

MRN, RESIDENT = IdentifierKind.mrn, IdentifierKind.resident_id


def order_message(name: str) -> OrderMessage:
    result = map_message(parse_sample(name), zone=ZONE)
    assert isinstance(result, OrderMessage)
    return result


def only_order(name: str) -> OrderEvent:
    orders = order_message(name).orders
    assert len(orders) == 1
    return orders[0]


def mapped(text: str) -> OrderMessage | PatientUpdate | PatientMerge:
    return map_message(parse_message(encode(text)), zone=ZONE)


def mapping_error(text: str) -> HL7Error:
    with pytest.raises(HL7Error) as caught:
        mapped(text)
    return caught.value


# ---------------------------------------------------------------- the samples


def test_orm_v231_with_accession_in_obr18() -> None:
    message = order_message("orm_o01_v231_obr18.hl7")
    assert message.patient == PatientDemographics(
        identifiers=(
            PatientIdentity("0012345", MRN, "ZAZWSY"),
            PatientIdentity("530102196804120374", RESIDENT, "CHN"),
        ),
        name="李建国",
        birth_date=date(1968, 4, 12),
        sex=Sex.male,
        phone="13908740123",
        address="云南省富源县中安镇新村12号",
        patient_class=PatientClass.outpatient,
    )
    assert message.ordering_facility == "ZAZWSY"  # ORC-17 names the sender itself
    assert message.orders == (
        OrderEvent(
            control="NW",
            order_status="SC",
            placer_number="ZA2024030500123",
            filler_number="",
            accession_number="ZA24030500123",
            study_instance_uid="",
            requested_procedure_id="RP0123",
            sps_id="SPS0123",
            modality="CT",
            station_aet="",
            exam_code="CT0101",
            exam_coding_system="HR-EXAM",
            exam_text="胸部CT平扫",
            exam_alt_code="",
            exam_alt_system="",
            priority=Priority.routine,
            ordering_provider="王丽萍",
            reason="肺部感染待排",
            requested_at=datetime(2024, 3, 5, 0, 30, tzinfo=UTC),
            scheduled_at=datetime(2024, 3, 5, 1, 0, tzinfo=UTC),
        ),
    )


def test_orm_v25_with_zds_study_uid() -> None:
    message = order_message("orm_o01_v25_zds.hl7")
    order = message.orders[0]
    assert order.study_instance_uid == "1.2.156.112605.14038013507.20240306101522.1"
    assert order.accession_number == "FY2403060087"
    assert (order.placer_number, order.filler_number) == ("PL88001", "FL88001")
    assert (order.exam_alt_code, order.exam_alt_system) == ("30799-1", "LN")
    assert order.reason == "头痛"  # OBR-31 text, before OBR-13
    assert order.scheduled_at == datetime(2024, 3, 6, 6, 0, tzinfo=UTC)  # ORC-7.4
    assert message.ordering_facility == "FYXRMYY"  # ORC-21.10
    assert message.patient.phone == "08743216548"  # v2.5 XTN: area code + local number
    assert message.patient.identifiers[1] == PatientIdentity("530381198511020746", RESIDENT, "CHN")
    assert message.patient.patient_class is PatientClass.inpatient
    assert message.patient.name == "张晓燕"


def test_omi_with_ipc() -> None:
    message = order_message("omi_o23_v25_ipc.hl7")
    order = message.orders[0]
    assert order.accession_number == "FY2403070104"
    assert order.requested_procedure_id == "RP2403070104"
    assert order.study_instance_uid == "1.2.156.112605.14038013507.20240307091044.7"
    assert order.sps_id == "SPS2403070104A"  # the first scheduled procedure step
    assert order.modality == "MR"
    assert order.station_aet == "FY_MR1"
    assert order.scheduled_at == datetime(2024, 3, 7, 2, 30, tzinfo=UTC)  # TQ1-7
    assert order.priority is Priority.routine
    # Resident ID typed "RI" without an authority.
    assert message.patient.identifiers[1] == PatientIdentity("532901195201301250", RESIDENT, "")


def test_ipc_wins_over_obr_for_accession_and_procedure_ids() -> None:
    text = text_of("omi_o23_v25_ipc.hl7")
    text = set_field(text, "OBR", 18, "OLDACC")
    text = set_field(text, "OBR", 19, "OLDRP")
    order = mapped(text)
    assert isinstance(order, OrderMessage)
    assert order.orders[0].accession_number == "FY2403070104"
    assert order.orders[0].requested_procedure_id == "RP2403070104"


def test_ipc_study_uid_wins_over_zds() -> None:
    text = text_of("omi_o23_v25_ipc.hl7") + "\rZDS|1.2.3.4^100^Application^DICOM"
    result = mapped(text)
    assert isinstance(result, OrderMessage)
    assert result.orders[0].study_instance_uid.endswith(".20240307091044.7")


def test_several_orders_in_one_message() -> None:
    message = order_message("orm_o01_multi_orc.hl7")
    assert [
        (o.placer_number, o.accession_number, o.modality, o.exam_code) for o in message.orders
    ] == [
        ("ZA2024031200201", "ZA24031200201", "CT", "CT0101"),
        ("ZA2024031200202", "ZA24031200202", "DX", "DR0102"),
        ("ZA2024031200203", "ZA24031200203", "US", "US0201"),
    ]
    # An untyped 18-character identifier that validates is a resident ID.
    assert message.patient.identifiers == (
        PatientIdentity("0013377", MRN, "ZAZWSY"),
        PatientIdentity("511102197908230510", RESIDENT, ""),
    )


def test_stat_order_is_an_emergency() -> None:
    message = order_message("orm_o01_v231_stat.hl7")
    assert message.orders[0].priority is Priority.emergency
    assert message.patient.patient_class is PatientClass.emergency
    # The resident ID came in PID-19 (SSN) and is recognised.
    assert PatientIdentity("511102197908230510", RESIDENT, "") in message.patient.identifiers
    assert message.orders[0].requested_at == datetime(2024, 3, 15, 18, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("segment", "field", "value"),
    [("OBR", 5, "STAT"), ("OBR", 5, "s"), ("ORC", 7, "^^^^^S"), ("OBR", 5, "急")],
)
def test_priority_sources(segment: str, field: int, value: str) -> None:
    text = set_field(text_of("orm_o01_v231_obr18.hl7"), segment, field, value)
    if segment == "ORC":
        text = set_field(text, "OBR", 5, "R")
    result = mapped(text)
    assert isinstance(result, OrderMessage)
    assert result.orders[0].priority is Priority.emergency


def test_tq1_priority_in_omi() -> None:
    text = set_field(text_of("omi_o23_v25_ipc.hl7"), "TQ1", 9, "S^Stat^HL70078")
    result = mapped(text)
    assert isinstance(result, OrderMessage)
    assert result.orders[0].priority is Priority.emergency


@pytest.mark.parametrize(
    ("name", "control", "status"),
    [
        ("orm_o01_v231_xo.hl7", "XO", "SC"),
        ("orm_o01_v231_ca.hl7", "CA", "CA"),
        ("orm_o01_v231_dc.hl7", "DC", "DC"),
        ("orm_o01_v231_sc.hl7", "SC", "IP"),
    ],
)
def test_order_controls(name: str, control: str, status: str) -> None:
    order = only_order(name)
    assert (order.control, order.order_status) == (control, status)
    assert order.placer_number == "ZA2024030500123"


def test_change_carries_the_new_exam_and_status_change_needs_no_obr() -> None:
    assert only_order("orm_o01_v231_xo.hl7").exam_code == "CT0102"
    status = only_order("orm_o01_v231_sc.hl7")
    assert (status.exam_code, status.filler_number) == ("", "HR24030500123")


def test_gb18030_samples_map_chinese_names() -> None:
    assert order_message("orm_o01_v231_gb18030.hl7").patient.name == "陈億瑋"
    assert order_message("orm_o01_v231_gb18030.hl7").orders[0].ordering_provider == "钱淺"
    assert order_message("orm_o01_v231_gb18030_no_msh18.hl7").patient.name == "𠮷祥云"


def test_english_names_read_given_then_family() -> None:
    message = order_message("orm_o01_v23_english.hl7")
    assert message.patient.name == "EVE EVERYWOMAN"
    assert message.orders[0].ordering_provider == "JAMES ADDISON"
    assert message.orders[0].modality == ""  # "RAD" says nothing about the modality
    assert message.patient.address == "2222 HOME STREET, ANN ARBOR, MI 99999, USA"


def test_escaped_values_arrive_unescaped() -> None:
    message = order_message("orm_o01_v25_escapes.hl7")
    assert message.patient.identifiers[0].value == "FY0049&7712"
    assert message.patient.name == "欧阳明\\月"
    assert message.orders[0].reason.startswith("血压 150|95 mmHg\n既往史：高血压~糖尿病\n")


def test_custom_delimiters_map_like_any_other() -> None:
    order = only_order("orm_o01_v231_delimiters.hl7")
    assert (order.accession_number, order.modality, order.reason) == (
        "ZA24031700401",
        "DX",
        "体温#37.5℃ 咳嗽",
    )


# ---------------------------------------------------------------- ADT


def test_adt_a01_a04_a08() -> None:
    a01 = map_message(parse_sample("adt_a01_v25.hl7"), zone=ZONE)
    assert isinstance(a01, PatientUpdate) and a01.event == "A01"
    assert a01.patient.name == "周可欣" and a01.patient.sex is Sex.female
    assert a01.patient.patient_class is PatientClass.inpatient
    assert a01.patient.address == "云南省富源县后所镇"

    a04 = map_message(parse_sample("adt_a04_v24_gb18030.hl7"), zone=ZONE)
    assert isinstance(a04, PatientUpdate) and a04.event == "A04"
    assert a04.patient.name == "陈億瑋"
    assert a04.patient.identifiers[1] == PatientIdentity("53010219900307448X", RESIDENT, "CHN")

    a08 = map_message(parse_sample("adt_a08_v231_crlf.hl7"), zone=ZONE)
    assert isinstance(a08, PatientUpdate) and a08.event == "A08"
    assert a08.patient.phone == "13887001234"
    assert a08.patient.address == "云南省富源县中安镇新村18号"


def test_adt_a40_merge() -> None:
    merge = map_message(parse_sample("adt_a40_v25.hl7"), zone=ZONE)
    assert isinstance(merge, PatientMerge)
    assert merge.patient.identifiers[0] == PatientIdentity("FY00458812", MRN, "FYXRMYY")
    assert merge.prior_identifiers == (PatientIdentity("FY00461907", MRN, "FYXRMYY"),)


def test_a40_errors() -> None:
    text = text_of("adt_a40_v25.hl7")
    error = mapping_error(drop_segments(text, "MRG"))
    assert (error.field, error.hl7_error_code) == ("MRG", "100")
    error = mapping_error(set_field(text, "MRG", 1, ""))
    assert (error.field, error.hl7_error_code) == ("MRG-1", "101")
    doubled = text + "\rPID|2||X1^^^FYXRMYY^PI\rMRG|X2^^^FYXRMYY^PI"
    assert mapping_error(doubled).field == "MRG"


# ---------------------------------------------------------------- identity details


@pytest.mark.parametrize(
    ("cx", "expected"),
    [
        ("530102196804120374^^^CHN^RI", PatientIdentity("530102196804120374", RESIDENT, "CHN")),
        ("530102196804120374^^^^NNCHN", PatientIdentity("530102196804120374", RESIDENT, "")),
        ("53010219900307448x^^^^ID", PatientIdentity("53010219900307448X", RESIDENT, "")),
        (
            "53010219900307448X^^^GB11643",
            PatientIdentity("53010219900307448X", RESIDENT, "GB11643"),
        ),
        ("530102196804120374", PatientIdentity("530102196804120374", RESIDENT, "")),
        ("530102196804120375", PatientIdentity("530102196804120375", MRN, "")),  # bad check
        ("530102196804120374^^^ZAZWSY^MR", PatientIdentity("530102196804120374", MRN, "ZAZWSY")),
        ("0012345^^^ZAZWSY&1.2.156.9&ISO^PI", PatientIdentity("0012345", MRN, "ZAZWSY")),
        ("0012345", PatientIdentity("0012345", MRN, "")),
    ],
)
def test_identifier_kinds(cx: str, expected: PatientIdentity) -> None:
    text = set_field(text_of("adt_a08_v231_crlf.hl7"), "PID", 3, cx)
    result = mapped(text)
    assert isinstance(result, PatientUpdate)
    assert result.patient.identifiers == (expected,)


def test_a_typed_resident_id_that_fails_its_check_is_refused() -> None:
    text = set_field(text_of("adt_a08_v231_crlf.hl7"), "PID", 3, "530102196804120375^^^CHN^RI")
    error = mapping_error(text)
    assert isinstance(error, MappingError)
    assert (error.field, error.hl7_error_code, error.ack_code) == ("PID-3", "102", "AE")
    assert "check character" in str(error)


def test_empty_and_duplicate_identifiers() -> None:
    identifiers = '~""~0012345^^^Z^MR~0012345^^^Z^MR'
    text = set_field(text_of("adt_a08_v231_crlf.hl7"), "PID", 3, identifiers)
    result = mapped(text)
    assert isinstance(result, PatientUpdate)
    assert result.patient.identifiers == (PatientIdentity("0012345", MRN, "Z"),)
    error = mapping_error(set_field(text, "PID", 3, ""))
    assert (error.field, error.hl7_error_code) == ("PID-3", "101")


@pytest.mark.parametrize(
    ("family", "given", "name"),
    [
        ("李", "建国", "李建国"),
        ("欧阳", "明月", "欧阳明月"),
        ("张晓燕", "", "张晓燕"),
        ("", "晓燕", "晓燕"),
        ("EVERYWOMAN", "EVE", "EVE EVERYWOMAN"),
        ('""', "", ""),
        ("阿依古丽·买买提", "", "阿依古丽·买买提"),
        ("Wang", "小明", "Wang小明"),
    ],
)
def test_person_names(family: str, given: str, name: str) -> None:
    assert person_name(family, given) == name


def test_legal_name_preferred() -> None:
    text = set_field(text_of("adt_a08_v231_crlf.hl7"), "PID", 5, "LI^JIANGUO^^^^^A~李^建国^^^^^L")
    result = mapped(text)
    assert isinstance(result, PatientUpdate) and result.patient.name == "李建国"


@pytest.mark.parametrize(
    ("code", "sex"),
    [
        ("M", Sex.male),
        ("F", Sex.female),
        ("O", Sex.other),
        ("U", Sex.unknown),
        ("", Sex.unknown),
        ("1", Sex.male),
        ("2", Sex.female),
        ("女", Sex.female),
        ("X", Sex.unknown),
    ],
)
def test_sex_codes(code: str, sex: Sex) -> None:
    result = mapped(set_field(text_of("adt_a08_v231_crlf.hl7"), "PID", 8, code))
    assert isinstance(result, PatientUpdate) and result.patient.sex is sex


@pytest.mark.parametrize(
    ("code", "patient_class"),
    [
        ("E", PatientClass.emergency),
        ("I", PatientClass.inpatient),
        ("O", PatientClass.outpatient),
        ("P", PatientClass.physical_exam),
        ("R", PatientClass.unknown),
        ("", PatientClass.unknown),
    ],
)
def test_patient_class(code: str, patient_class: PatientClass) -> None:
    result = mapped(set_field(text_of("adt_a08_v231_crlf.hl7"), "PV1", 2, code))
    assert isinstance(result, PatientUpdate) and result.patient.patient_class is patient_class


def test_ordering_facility_sources() -> None:
    text = text_of("orm_o01_v231_obr18.hl7")
    assert isinstance(r := mapped(set_field(text, "ORC", 17, "")), OrderMessage)
    assert r.ordering_facility == "ZAZWSY"  # MSH-4
    assert isinstance(r := mapped(set_field(text, "ORC", 17, "HSZWSY^后所镇卫生院")), OrderMessage)
    assert r.ordering_facility == "HSZWSY"
    assert isinstance(r := mapped(set_field(text, "ORC", 21, "后所镇卫生院")), OrderMessage)
    assert r.ordering_facility == "后所镇卫生院"


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("msh9", "version", "processing", "code", "field"),
    [
        ("ORU^R01", "2.5", "P", "200", "MSH-9"),
        ("ACK^O01", "2.5", "P", "200", "MSH-9"),
        ("ORM^O02", "2.5", "P", "201", "MSH-9"),
        ("ADT^A03", "2.5", "P", "201", "MSH-9"),
        ("ORM^O01", "2.6", "P", "203", "MSH-12"),
        ("ORM^O01", "2.2", "P", "203", "MSH-12"),
        ("ORM^O01", "3.0", "P", "203", "MSH-12"),
        ("ORM^O01", "2.5", "X", "202", "MSH-11"),
        ("ORM^O01", "2.5", "", "101", "MSH-11"),
    ],
)
def test_unsupported_messages(
    msh9: str, version: str, processing: str, code: str, field: str
) -> None:
    text = text_of("orm_o01_v231_obr18.hl7")
    text = set_field(
        set_field(set_field(text, "MSH", 9, msh9), "MSH", 12, version), "MSH", 11, processing
    )
    error = mapping_error(text)
    assert isinstance(error, UnsupportedMessage)
    assert (error.hl7_error_code, error.field, error.ack_code) == (code, field, "AR")


@pytest.mark.parametrize("processing", ["P", "T", "D"])
@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_supported_versions_and_processing_ids(version: str, processing: str) -> None:
    text = set_field(
        set_field(text_of("orm_o01_v231_obr18.hl7"), "MSH", 12, version), "MSH", 11, processing
    )
    assert isinstance(mapped(text), OrderMessage)


@pytest.mark.parametrize(
    ("sample", "edit", "field", "code"),
    [
        ("orm_o01_v231_obr18.hl7", lambda t: drop_segments(t, "PID"), "PID", "100"),
        ("adt_a01_v25.hl7", lambda t: drop_segments(t, "PID"), "PID", "100"),
        ("orm_o01_v231_obr18.hl7", lambda t: drop_segments(t, "ORC", "OBR"), "ORC", "100"),
        ("orm_o01_v231_obr18.hl7", lambda t: drop_segments(t, "OBR"), "OBR", "100"),
        ("omi_o23_v25_ipc.hl7", lambda t: drop_segments(t, "IPC"), "IPC", "100"),
        ("omi_o23_v25_ipc.hl7", lambda t: drop_segments(t, "OBR"), "OBR", "100"),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "ORC", 1, ""), "ORC-1", "101"),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "ORC", 1, "RE"), "ORC-1", "103"),
        (
            "orm_o01_v231_obr18.hl7",
            lambda t: set_field(set_field(t, "ORC", 2, ""), "OBR", 2, ""),
            "ORC-2/OBR-2",
            "101",
        ),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "OBR", 4, "^胸部CT"), "OBR-4", "101"),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "OBR", 18, "A" * 17), "OBR-18", "102"),
        ("omi_o23_v25_ipc.hl7", lambda t: set_field(t, "IPC", 1, "A" * 17), "IPC-1", "102"),
        ("omi_o23_v25_ipc.hl7", lambda t: set_field(t, "IPC", 4, "S" * 17), "IPC-4", "102"),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "OBR", 19, "R" * 17), "OBR-19", "102"),
        ("orm_o01_v25_zds.hl7", lambda t: set_field(t, "ZDS", 1, "1.2.abc^100"), "ZDS-1", "102"),
        ("omi_o23_v25_ipc.hl7", lambda t: set_field(t, "IPC", 3, "1." + "2" * 70), "IPC-3", "102"),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "PID", 7, "19681332"), "PID-7", "102"),
        ("orm_o01_v231_obr18.hl7", lambda t: set_field(t, "ORC", 9, "yesterday"), "ORC-9", "102"),
        ("omi_o23_v25_ipc.hl7", lambda t: set_field(t, "TQ1", 7, "2024-13-01"), "TQ1-7", "102"),
    ],
)
def test_mapping_errors_name_the_field(sample: str, edit: object, field: str, code: str) -> None:
    assert callable(edit)
    error = mapping_error(edit(text_of(sample)))
    assert isinstance(error, MappingError), error
    assert (error.field, error.hl7_error_code, error.ack_code) == (field, code, "AE")
    assert str(error)


def test_cancel_needs_only_the_placer_number() -> None:
    text = drop_segments(text_of("orm_o01_v231_ca.hl7"), "OBR")
    result = mapped(text)
    assert isinstance(result, OrderMessage)
    assert (result.orders[0].control, result.orders[0].placer_number) == ("CA", "ZA2024030500123")


def test_placer_number_falls_back_to_obr2() -> None:
    result = mapped(set_field(text_of("orm_o01_v231_obr18.hl7"), "ORC", 2, ""))
    assert isinstance(result, OrderMessage)
    assert result.orders[0].placer_number == "ZA2024030500123"
