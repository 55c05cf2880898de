"""The demo county's facilities, QC qualifications, AE titles and staff, as plain rows."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from integration.demo import vocabulary as vocab
from models.enums import FacilityKind, FacilityLevel, Modality, ProfessionalTitle, Role


@dataclass
class DemoFacility:
    id: int
    code: str
    name: str
    name_en: str
    level: FacilityLevel
    kind: FacilityKind
    parent_id: int | None
    reading_centre_id: int | None = None
    is_reading_centre: bool = False
    modalities: tuple[Modality, ...] = ()
    size: float = 1.0  # relative exam volume
    qualified: list[tuple[date, date | None]] = field(default_factory=list)
    ae_titles: dict[Modality, str] = field(default_factory=dict)

    def qualified_on(self, day: date) -> bool:
        return any(start <= day and (end is None or day <= end) for start, end in self.qualified)


@dataclass
class DemoUser:
    id: int
    username: str
    display_name: str
    role: Role
    title: ProfessionalTitle
    facility_id: int


@dataclass
class DemoRegion:
    facilities: list[DemoFacility]
    users: list[DemoUser]

    @property
    def reading_centres(self) -> list[DemoFacility]:
        return [f for f in self.facilities if f.is_reading_centre]

    @property
    def imaging_sites(self) -> list[DemoFacility]:
        return [f for f in self.facilities if f.modalities]

    def staff(self, facility_id: int, *roles: Role) -> list[DemoUser]:
        return [u for u in self.users if u.facility_id == facility_id and u.role in roles]


DEMO_ACCOUNTS: tuple[tuple[str, Role, ProfessionalTitle, str], ...] = (
    # username, role, title, facility code
    ("admin", Role.admin, ProfessionalTitle.none, "QL-WJJ"),
    ("radiologist", Role.radiologist, ProfessionalTitle.resident, "QL-H01"),
    ("auditor", Role.auditor, ProfessionalTitle.associate_chief, "QL-H01"),
    ("clinician", Role.clinician, ProfessionalTitle.attending, "QL-T02"),
    ("leader", Role.leader, ProfessionalTitle.none, "QL-WJJ"),
    ("qc", Role.qc, ProfessionalTitle.attending, "QL-H01"),
    ("technologist", Role.technologist, ProfessionalTitle.technician, "QL-T01"),
)


def build_region(rng: random.Random, *, start: date) -> DemoRegion:
    """One county: bureau, 3 reading hospitals, 15 township centres, their villages."""
    facilities: list[DemoFacility] = []

    def add(**kwargs: object) -> DemoFacility:
        facility = DemoFacility(id=len(facilities) + 1, **kwargs)  # type: ignore[arg-type]
        facilities.append(facility)
        return facility

    county = vocab.COUNTY_NAME
    province = add(
        code="PROV-HR",
        name=f"{vocab.PROVINCE_NAME}医学影像检查结果互认平台",
        name_en=f"{vocab.PROVINCE_NAME_EN} Imaging Recognition Platform",
        level=FacilityLevel.province,
        kind=FacilityKind.platform,
        parent_id=None,
    )
    bureau = add(
        code="QL-WJJ",
        name=f"{county}卫生健康局",
        name_en=f"{vocab.COUNTY_NAME_EN} Health Bureau",
        level=FacilityLevel.county,
        kind=FacilityKind.bureau,
        parent_id=province.id,
    )
    always = [(start - timedelta(days=3 * 365), None)]
    hospitals: list[DemoFacility] = []
    for index, (name_zh, name_en) in enumerate(vocab.COUNTY_HOSPITALS, start=1):
        hospital = add(
            code=f"QL-H{index:02d}",
            name=name_zh,
            name_en=name_en,
            level=FacilityLevel.county,
            kind=FacilityKind.hospital,
            parent_id=bureau.id,
            is_reading_centre=True,
            modalities=(Modality.DX, Modality.CT, Modality.MR, Modality.US, Modality.MG)
            if index != 3
            else (Modality.DX, Modality.CT, Modality.US),
            size=(3.0, 2.0, 1.5)[index - 1],
            qualified=list(always),
        )
        hospital.reading_centre_id = hospital.id
        hospitals.append(hospital)

    mid_year = start + timedelta(days=180)
    for index, township in enumerate(vocab.TOWNSHIPS, start=1):
        centre = hospitals[(index - 1) % len(hospitals)]
        modalities: tuple[Modality, ...] = (Modality.DX, Modality.US)
        if index % 3 == 0:
            modalities = (Modality.DX, Modality.CT, Modality.US)
        if index == 7:
            modalities = (Modality.CR, Modality.US)  # an older CR room still in service
        if index in (5, 11):
            # qualified only from the middle of the year
            qualified: list[tuple[date, date | None]] = [(mid_year, None)]
        elif index == 13:
            qualified = [(start - timedelta(days=400), start + timedelta(days=240))]  # lapsed
        else:
            qualified = list(always)
        health_centre = add(
            code=f"QL-T{index:02d}",
            name=f"{township}卫生院",
            name_en=f"{vocab.TOWNSHIP_EN.get(township, township)} Health Centre",
            level=FacilityLevel.township,
            kind=FacilityKind.health_centre,
            parent_id=bureau.id,
            reading_centre_id=centre.id,
            modalities=modalities,
            size=rng.uniform(0.6, 1.4),
            qualified=qualified,
        )
        for v_index, village in enumerate(vocab.VILLAGES_PER_TOWNSHIP.get(township, ()), 1):
            add(
                code=f"QL-T{index:02d}-V{v_index}",
                name=f"{village}卫生室",
                name_en=f"{village} Village Clinic",
                level=FacilityLevel.village,
                kind=FacilityKind.clinic,
                parent_id=health_centre.id,
                reading_centre_id=centre.id,
            )

    for facility in facilities:
        short = facility.code.replace("QL-", "QH").replace("-", "")
        for modality in facility.modalities:
            facility.ae_titles[modality] = f"{short}{modality.value}"[:16]

    users = _build_users(rng, facilities)
    return DemoRegion(facilities=facilities, users=users)


def _build_users(rng: random.Random, facilities: list[DemoFacility]) -> list[DemoUser]:
    by_code = {f.code: f for f in facilities}
    users: list[DemoUser] = []
    taken: set[str] = set()

    def add(
        username: str,
        role: Role,
        title: ProfessionalTitle,
        facility: DemoFacility,
        display_name: str | None = None,
    ) -> None:
        name = display_name or vocab.person_name(rng, rng.choice("MF"))
        users.append(
            DemoUser(
                id=len(users) + 1,
                username=username,
                display_name=name,
                role=role,
                title=title,
                facility_id=facility.id,
            )
        )
        taken.add(username)

    for username, role, title, code in DEMO_ACCOUNTS:
        add(username, role, title, by_code[code])

    for facility in facilities:
        tag = facility.code.lower().replace("-", "")
        if facility.is_reading_centre:
            for n, title in enumerate(
                (
                    ProfessionalTitle.resident,
                    ProfessionalTitle.resident,
                    ProfessionalTitle.attending,
                    ProfessionalTitle.attending,
                    ProfessionalTitle.resident,
                    ProfessionalTitle.attending,
                ),
                start=1,
            ):
                add(f"{tag}.rad{n}", Role.radiologist, title, facility)
            for n, title in enumerate(
                (
                    ProfessionalTitle.attending,
                    ProfessionalTitle.associate_chief,
                    ProfessionalTitle.chief,
                ),
                start=1,
            ):
                add(f"{tag}.aud{n}", Role.auditor, title, facility)
        if facility.modalities:
            for n in range(1, 3 if facility.kind is FacilityKind.hospital else 2):
                add(f"{tag}.tech{n}", Role.technologist, ProfessionalTitle.technician, facility)
        if facility.kind in (FacilityKind.hospital, FacilityKind.health_centre):
            for n in range(1, 4 if facility.kind is FacilityKind.hospital else 3):
                add(
                    f"{tag}.doc{n}",
                    Role.clinician,
                    rng.choice((ProfessionalTitle.resident, ProfessionalTitle.attending)),
                    facility,
                )
    return users
