"""ServiceRequest (V2-to-FHIR ORC/OBR) and ImagingStudy (R4 DICOM mapping) from hub rows."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir_samples import (
    CT_IMAGE_STORAGE,
    STUDY_UID,
    exam,
    instance,
    instance_rows,
    order,
    roundtrip,
    series_rows,
    study,
    township,
)

from fhir.identifiers import (
    DICOM_UID_SYSTEM,
    EXAM_TYPE_SYSTEM,
    V2_0203,
    accession_system,
    filler_system,
    placer_system,
)
from fhir.mapping import imaging_study_from, latest_versions, service_request_from
from models.enums import OrderStatus, Priority, StudyStatus
from models.region import Facility

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"


def _type_code(identifier: Identifier) -> str | None:
    if identifier.type is None or identifier.type.coding is None:
        return None
    coding = identifier.type.coding[0]
    assert coding.system == V2_0203
    return coding.code


def _clinic() -> Facility:
    facility = township()
    facility.id = 5
    facility.code = "HR-V05"
    facility.name = "幸福村卫生室"
    return facility


def test_service_request_identifiers_follow_orc_obr() -> None:
    mapped = service_request_from(
        order(), exam(), ordering_facility=_clinic(), performing_facility=township()
    )
    roundtrip(mapped)
    assert mapped.id == "11"
    assert mapped.identifier is not None
    rows = [(_type_code(i), i.system, i.value) for i in mapped.identifier]
    assert rows == [
        ("PLAC", placer_system("HR-V05"), "P 7788"),
        ("FILL", filler_system("HR-T01"), "F-1"),
        ("ACSN", accession_system("HR-T01"), "A20260302001"),
    ]
    placer, filler, accession = mapped.identifier
    assert placer.assigner is not None and placer.assigner.reference == "Organization/5"
    assert filler.assigner is not None and filler.assigner.reference == "Organization/2"
    assert accession.assigner is not None and accession.assigner.reference == "Organization/2"


def test_service_request_without_filler_number() -> None:
    mapped = service_request_from(
        order(filler_number=None),
        exam(),
        ordering_facility=_clinic(),
        performing_facility=township(),
    )
    assert mapped.identifier is not None
    assert [_type_code(i) for i in mapped.identifier] == ["PLAC", "ACSN"]


def test_service_request_content() -> None:
    mapped = service_request_from(
        order(), exam(), ordering_facility=_clinic(), performing_facility=township()
    )
    assert (mapped.status, mapped.intent, mapped.priority) == ("active", "order", "routine")
    assert mapped.subject.reference == "Patient/7"
    assert mapped.authoredOn is not None and mapped.authoredOn.isoformat() == (
        "2026-03-02T00:30:00+00:00"
    )
    assert mapped.occurrenceDateTime is not None
    assert mapped.occurrenceDateTime.isoformat() == "2026-03-02T01:00:00+00:00"
    assert mapped.code is not None and mapped.code.coding is not None
    assert mapped.code.text == "胸部CT平扫"
    assert [(c.system, c.code) for c in mapped.code.coding] == [
        (EXAM_TYPE_SYSTEM, "CT-CHEST-PLAIN"),
        ("http://loinc.org", "29252-4"),
    ]
    assert mapped.category is not None and mapped.category[0].coding is not None
    assert (mapped.category[0].coding[0].system, mapped.category[0].coding[0].code) == (
        SNOMED,
        "363679005",
    )
    assert mapped.requester is not None
    assert (mapped.requester.reference, mapped.requester.display) == (None, "李医生")
    assert mapped.performer is not None
    assert [p.reference for p in mapped.performer] == ["Organization/2"]
    assert mapped.reasonCode is not None and mapped.reasonCode[0].text == "咳嗽两周"
    assert mapped.bodySite is not None and mapped.bodySite[0].coding is not None
    assert mapped.bodySite[0].text == "CHEST"
    assert (mapped.bodySite[0].coding[0].system, mapped.bodySite[0].coding[0].code) == (
        SNOMED,
        "51185008",
    )


def test_requester_is_the_ordering_facility_without_a_named_provider() -> None:
    mapped = service_request_from(
        order(ordering_provider="", reason=""),
        exam(loinc=None),
        ordering_facility=_clinic(),
        performing_facility=township(),
    )
    roundtrip(mapped)
    assert mapped.requester is not None
    assert (mapped.requester.reference, mapped.requester.display) == (
        "Organization/5",
        "幸福村卫生室",
    )
    assert mapped.reasonCode is None
    assert mapped.code is not None and mapped.code.coding is not None
    assert [c.system for c in mapped.code.coding] == [EXAM_TYPE_SYSTEM]


@pytest.mark.parametrize(
    ("status", "fhir_status"),
    [
        (OrderStatus.scheduled, "active"),
        (OrderStatus.in_progress, "active"),
        (OrderStatus.completed, "completed"),
        (OrderStatus.cancelled, "revoked"),
        (OrderStatus.discontinued, "revoked"),
    ],
)
def test_service_request_status(status: OrderStatus, fhir_status: str) -> None:
    mapped = service_request_from(
        order(status=status), exam(), ordering_facility=_clinic(), performing_facility=township()
    )
    assert mapped.status == fhir_status


@pytest.mark.parametrize(
    ("priority", "code"), [(Priority.routine, "routine"), (Priority.emergency, "stat")]
)
def test_service_request_priority(priority: Priority, code: str) -> None:
    mapped = service_request_from(
        order(priority=priority),
        exam(),
        ordering_facility=_clinic(),
        performing_facility=township(),
    )
    assert mapped.priority == code


def _study(**changes: object) -> ImagingStudy:
    return imaging_study_from(
        study(**changes), series_rows(), instance_rows(), facility=township(), exam=exam()
    )


def test_imaging_study_identifiers_and_based_on() -> None:
    mapped = _study()
    roundtrip(mapped)
    assert mapped.id == "12"
    assert mapped.identifier is not None
    uid, accession = mapped.identifier
    assert (uid.use, uid.system, uid.value) == (
        "official",
        DICOM_UID_SYSTEM,
        f"urn:oid:{STUDY_UID}",
    )
    assert (_type_code(accession), accession.system, accession.value) == (
        "ACSN",
        accession_system("HR-T01"),
        "A20260302001",
    )
    assert mapped.basedOn is not None
    direct, logical = mapped.basedOn
    assert direct.reference == "ServiceRequest/11"
    assert logical.reference is None
    assert logical.type == "ServiceRequest"
    assert logical.identifier is not None
    assert (_type_code(logical.identifier), logical.identifier.value) == ("ACSN", "A20260302001")


def test_imaging_study_header() -> None:
    mapped = _study()
    assert mapped.status == "available"
    assert mapped.subject.reference == "Patient/7"
    assert mapped.modality is not None
    assert [(m.system, m.code) for m in mapped.modality] == [(DCM, "CT"), (DCM, "SR")]
    assert mapped.started is not None and mapped.started.isoformat() == "2026-03-02T01:05:00+00:00"
    assert mapped.description == "胸部CT平扫"
    assert mapped.endpoint is not None
    assert [e.reference for e in mapped.endpoint] == ["Endpoint/wado-rs"]
    assert mapped.procedureCode is not None and mapped.procedureCode[0].coding is not None
    assert [c.code for c in mapped.procedureCode[0].coding] == ["CT-CHEST-PLAIN", "29252-4"]
    assert (mapped.numberOfSeries, mapped.numberOfInstances) == (2, 3)


def test_series_sorted_by_number_with_body_site_and_laterality() -> None:
    mapped = _study()
    assert mapped.series is not None
    first, second = mapped.series
    assert (first.number, first.uid, first.description) == (1, STUDY_UID + ".1", "定位像")
    assert (second.number, second.uid) == (2, STUDY_UID + ".2")
    assert (first.modality.system, first.modality.code) == (DCM, "CT")
    assert first.bodySite is not None
    assert (first.bodySite.system, first.bodySite.code, first.bodySite.display) == (
        None,
        None,
        "CAROTID",
    )
    assert second.bodySite is not None
    assert (second.bodySite.system, second.bodySite.code) == (SNOMED, "51185008")
    assert first.laterality is not None
    assert (first.laterality.system, first.laterality.code) == (SNOMED, "7771000")
    assert second.laterality is None
    assert first.started is not None and first.started.isoformat() == "2026-03-02T01:05:00+00:00"


def test_instances_keep_the_latest_version_and_sort_by_number() -> None:
    mapped = _study()
    assert mapped.series is not None
    lung = mapped.series[1]
    assert lung.numberOfInstances == 2
    assert lung.instance is not None
    assert [(i.number, i.uid) for i in lung.instance] == [
        (1, STUDY_UID + ".2.1"),
        (2, STUDY_UID + ".2.2"),
    ]
    sop_class = lung.instance[0].sopClass
    assert (sop_class.system, sop_class.code) == (
        "urn:ietf:rfc:3986",
        f"urn:oid:{CT_IMAGE_STORAGE}",
    )
    kept = latest_versions(instance_rows())
    assert sorted((row.sop_instance_uid, row.version) for row in kept) == [
        (STUDY_UID + ".1.1", 1),
        (STUDY_UID + ".2.1", 2),
        (STUDY_UID + ".2.2", 1),
    ]


def test_without_instance_rows_counts_come_from_the_series_rows() -> None:
    rows = series_rows()
    rows[0].num_instances = 40
    mapped = imaging_study_from(study(), rows, [], facility=township(), exam=None)
    roundtrip(mapped)
    assert mapped.series is not None
    assert all(element.instance is None for element in mapped.series)
    assert [element.numberOfInstances for element in mapped.series] == [1, 40]
    assert mapped.numberOfInstances == 41
    assert mapped.procedureCode is None


def test_series_without_instances_among_given_rows_counts_zero() -> None:
    rows = [instance(22, STUDY_UID + ".2.1", 1)]
    mapped = imaging_study_from(study(), series_rows(), rows, facility=township(), exam=exam())
    assert mapped.series is not None
    assert [(s.number, s.numberOfInstances, s.instance is None) for s in mapped.series] == [
        (1, 0, True),
        (2, 1, False),
    ]
    assert mapped.numberOfInstances == 1


def test_receiving_study_is_registered() -> None:
    assert _study(status=StudyStatus.receiving).status == "registered"


def test_unmatched_study_subject_is_the_dicom_patient() -> None:
    mapped = _study(patient_id=None, order_id=None, accession_number=None)
    roundtrip(mapped)
    assert mapped.subject.reference is None
    assert mapped.subject.type == "Patient"
    assert mapped.subject.display == "ZHANG SANFENG"
    assert mapped.subject.identifier is not None
    assert mapped.subject.identifier.value == "T01-0042"
    assert mapped.basedOn is None
    assert mapped.identifier is not None
    assert [i.system for i in mapped.identifier] == [DICOM_UID_SYSTEM]


def test_unmatched_study_without_dicom_demographics_still_has_a_subject() -> None:
    mapped = _study(patient_id=None, dicom_patient_id="", dicom_patient_name="")
    assert mapped.subject.display == "未匹配患者"
    assert mapped.subject.identifier is None


def test_modalities_fall_back_to_the_series() -> None:
    mapped = _study(modalities="")
    assert mapped.modality is not None
    assert [m.code for m in mapped.modality] == ["CT"]


def test_endpoint_id_can_be_chosen() -> None:
    mapped = imaging_study_from(
        study(), series_rows(), [], facility=township(), exam=None, endpoint_id="pacs"
    )
    assert mapped.endpoint is not None
    assert [e.reference for e in mapped.endpoint] == ["Endpoint/pacs"]
