"""Orders and images: ServiceRequest (HL7 V2-to-FHIR, ORC/OBR) and ImagingStudy (DICOM)."""

from __future__ import annotations

from collections.abc import Sequence

from fhir.directory import WADO_RS_ENDPOINT_ID, facility_reference
from fhir.identifiers import (
    DICOM_UID_SYSTEM,
    accession_system,
    dicom_uid,
    filler_system,
    identifier_type,
    local_id,
    placer_system,
    reference,
    saved_id,
)
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.imagingstudy import (
    ImagingStudy,
    ImagingStudySeries,
    ImagingStudySeriesInstance,
)
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.terminology import (
    RFC_3986,
    SERVICE_REQUEST_PRIORITY,
    SERVICE_REQUEST_STATUS,
    body_site_coding,
    exam_concept,
    imaging_category,
    laterality_coding,
    modality_coding,
)
from models.catalogue import ExamType
from models.enums import StudyStatus
from models.imaging import Instance, Series, Study
from models.orders import Order
from models.region import Facility


def accession_identifier(accession_number: str, performing_facility: Facility) -> Identifier:
    """The accession number as an ``ACSN`` identifier scoped by the performing facility."""
    return Identifier(
        use="usual",
        type=identifier_type("ACSN"),
        system=accession_system(performing_facility.code),
        value=accession_number,
        assigner=facility_reference(performing_facility),
    )


def service_request_from(
    order: Order,
    exam: ExamType,
    *,
    ordering_facility: Facility,
    performing_facility: Facility,
) -> ServiceRequest:
    """An order as the V2-to-FHIR IG maps ORC/OBR.

    ORC-2/OBR-2 is the placer identifier (``PLAC``, assigned by the ordering
    facility), ORC-3/OBR-3 the filler (``FILL``) and the accession (``ACSN``),
    both assigned by the performing facility; OBR-4 is the code. Cancelled (CA)
    and discontinued (DC) orders are both ``revoked``: R4 has no other status
    for a request ended before it was fulfilled.
    """
    identifiers = [
        Identifier(
            use="usual",
            type=identifier_type("PLAC"),
            system=placer_system(ordering_facility.code),
            value=order.placer_number,
            assigner=facility_reference(ordering_facility),
        )
    ]
    if order.filler_number:
        identifiers.append(
            Identifier(
                use="usual",
                type=identifier_type("FILL"),
                system=filler_system(performing_facility.code),
                value=order.filler_number,
                assigner=facility_reference(performing_facility),
            )
        )
    identifiers.append(accession_identifier(order.accession_number, performing_facility))
    body_site = body_site_coding(exam.body_part)
    requester = (
        Reference(display=order.ordering_provider)
        if order.ordering_provider
        else facility_reference(ordering_facility)
    )
    return ServiceRequest(
        id=local_id(saved_id(order.id, "Order")),
        identifier=identifiers,
        status=SERVICE_REQUEST_STATUS[order.status],
        intent="order",
        category=[imaging_category()],
        priority=SERVICE_REQUEST_PRIORITY[order.priority],
        code=exam_concept(exam),
        subject=Reference(reference=reference("Patient", order.patient_id)),
        occurrenceDateTime=order.scheduled_at,
        authoredOn=order.requested_at,
        requester=requester,
        performer=[facility_reference(performing_facility)],
        reasonCode=[CodeableConcept(text=order.reason)] if order.reason else None,
        bodySite=(
            [CodeableConcept(coding=[body_site], text=exam.body_part)] if body_site else None
        ),
    )


def latest_versions(instances: Sequence[Instance]) -> list[Instance]:
    """One row per SOP Instance UID: the highest version (a differing re-send wins)."""
    latest: dict[str, Instance] = {}
    for instance in instances:
        kept = latest.get(instance.sop_instance_uid)
        if kept is None or instance.version > kept.version:
            latest[instance.sop_instance_uid] = instance
    return list(latest.values())


def _study_modalities(study: Study, series: Sequence[Series]) -> list[str]:
    listed = [m.strip() for m in study.modalities.split("\\") if m.strip()]
    if not listed:
        listed = [s.modality for s in series if s.modality]
    return list(dict.fromkeys(listed))


def _subject(study: Study) -> Reference:
    """R4 requires a subject: the patient, or what the DICOM header said before matching."""
    if study.patient_id is not None:
        return Reference(reference=reference("Patient", study.patient_id))
    name = " ".join(part for part in study.dicom_patient_name.split("^") if part).strip()
    return Reference(
        type="Patient",
        identifier=Identifier(value=study.dicom_patient_id) if study.dicom_patient_id else None,
        display=name or "未匹配患者",
    )


def _series_key(series: Series) -> tuple[bool, int, str]:
    return (series.number is None, series.number or 0, series.series_instance_uid)


def _instance_key(instance: Instance) -> tuple[bool, int, str]:
    return (instance.number is None, instance.number or 0, instance.sop_instance_uid)


def _series_element(series: Series, instances: Sequence[Instance] | None) -> ImagingStudySeries:
    count = len(instances) if instances is not None else series.num_instances
    return ImagingStudySeries(
        uid=series.series_instance_uid,
        number=series.number,
        modality=modality_coding(series.modality),
        description=series.description or None,
        numberOfInstances=count,
        bodySite=body_site_coding(series.body_part),
        laterality=laterality_coding(series.laterality),
        started=series.started_at,
        instance=(
            [
                ImagingStudySeriesInstance(
                    uid=instance.sop_instance_uid,
                    sopClass=Coding(system=RFC_3986, code=dicom_uid(instance.sop_class_uid)),
                    number=instance.number,
                )
                for instance in sorted(instances, key=_instance_key)
            ]
            if instances
            else None
        ),
    )


def imaging_study_from(
    study: Study,
    series: Sequence[Series],
    instances: Sequence[Instance],
    *,
    facility: Facility,
    exam: ExamType | None,
    endpoint_id: str = WADO_RS_ENDPOINT_ID,
) -> ImagingStudy:
    """A stored study per R4's DICOM mapping.

    The Study Instance UID is the official identifier; the accession number is
    an ``ACSN`` identifier and, as R4 asks, a logical ``basedOn`` reference too.
    A study still receiving instances is ``registered``; a stabilised one is
    ``available``. Instances are listed only when given, one per SOP Instance
    UID (its latest version); counts come from the rows given.
    """
    study_id = saved_id(study.id, "Study")
    by_series: dict[int, list[Instance]] | None = None
    if instances:
        by_series = {}
        for instance in latest_versions(instances):
            by_series.setdefault(instance.series_id, []).append(instance)
    elements = [
        _series_element(
            row,
            by_series.get(saved_id(row.id, "Series"), []) if by_series is not None else None,
        )
        for row in sorted(series, key=_series_key)
    ]
    identifiers = [
        Identifier(
            use="official", system=DICOM_UID_SYSTEM, value=dicom_uid(study.study_instance_uid)
        )
    ]
    based_on: list[Reference] = []
    if study.order_id is not None:
        based_on.append(Reference(reference=reference("ServiceRequest", study.order_id)))
    if study.accession_number:
        accession = accession_identifier(study.accession_number, facility)
        identifiers.append(accession)
        based_on.append(
            Reference(
                type="ServiceRequest",
                identifier=Identifier(
                    type=accession.type, system=accession.system, value=accession.value
                ),
            )
        )
    return ImagingStudy(
        id=local_id(study_id),
        identifier=identifiers,
        status="available" if study.status == StudyStatus.complete else "registered",
        modality=[modality_coding(m) for m in _study_modalities(study, series)] or None,
        subject=_subject(study),
        started=study.started_at,
        basedOn=based_on or None,
        endpoint=[Reference(reference=f"Endpoint/{endpoint_id}")],
        numberOfSeries=len(elements),
        numberOfInstances=sum(element.numberOfInstances or 0 for element in elements),
        procedureCode=[exam_concept(exam)] if exam is not None else None,
        description=study.description or None,
        series=elements or None,
    )
