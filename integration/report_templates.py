"""Report templates per exam family: the normal wording a radiologist starts from.

The family of an exam (chest X-ray, head CT, ...) follows from its modality and
DICOM Body Part Examined; the templates themselves are data, shipped in
``models/data/report_templates.csv`` (key, names, findings, impression), so a
centre can word its own.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

GENERIC_FAMILY = "generic"

# Body Part Examined (0018,0015) terms, grouped by what a reading radiologist cares about.
# fmt: off
_BODY_PART_GROUPS: dict[str, str] = {
    **dict.fromkeys(
        ("HEAD", "SKULL", "BRAIN", "CEREBELLUM", "ORBIT", "FACE", "NOSE", "JAW",
         "MAXILLA", "MANDIBLE", "ZYGOMA", "SINUS", "IAC"),
        "head",
    ),
    "NECK": "neck",
    **dict.fromkeys(("THYROID", "PARATHYROID"), "thyroid"),
    **dict.fromkeys(
        ("CHEST", "LUNG", "THORAX", "RIB", "STERNUM", "MEDIASTINUM", "TRACHEA"), "chest"
    ),
    **dict.fromkeys(("HEART", "CARDIAC"), "heart"),
    **dict.fromkeys(("BREAST", "AXILLA"), "breast"),
    **dict.fromkeys(
        ("ABDOMEN", "ABDOMENPELVIS", "LIVER", "GALLBLADDER", "BILEDUCT", "PANCREAS",
         "SPLEEN", "STOMACH", "COLON"),
        "abdomen",
    ),
    **dict.fromkeys(
        ("KIDNEY", "ADRENAL", "URETER", "UPRURINARYTRACT", "URINARYTRACT", "BLADDER",
         "PROSTATE", "KUB"),
        "urinary",
    ),
    "PELVIS": "pelvis",
    **dict.fromkeys(("UTERUS", "OVARY", "ADNEXA", "CERVIX"), "uterus"),
    **dict.fromkeys(("FETUS", "OB", "OBSTETRIC", "OBSTETRICS", "PREGNANCY"), "fetus"),
    **dict.fromkeys(
        ("CSPINE", "TSPINE", "LSPINE", "SSPINE", "SPINE", "TLSPINE", "LSSPINE",
         "SACRUM", "COCCYX", "BACK"),
        "spine",
    ),
    **dict.fromkeys(
        ("SHOULDER", "ELBOW", "WRIST", "HAND", "FINGER", "THUMB", "HIP", "KNEE",
         "ANKLE", "FOOT", "TOE", "ARM", "FOREARM", "HUMERUS", "FEMUR", "LEG", "THIGH",
         "CALF", "TIBIA", "FIBULA", "RADIUS", "ULNA", "CLAVICLE", "SCAPULA", "PATELLA",
         "CALCANEUS", "EXTREMITY"),
        "limb",
    ),
    **dict.fromkeys(("CAROTID", "AORTA", "ARTERY", "VEIN", "VESSEL", "VASCULAR"), "vessel"),
}
# fmt: on

_FAMILY_BY_MODALITY_GROUP: dict[str, dict[str, str]] = {
    "xray": {
        "head": "skull_xray",
        "neck": "spine_xray",
        "chest": "chest_xray",
        "heart": "chest_xray",
        "breast": "mammography",
        "abdomen": "abdomen_xray",
        "urinary": "abdomen_xray",
        "pelvis": "limb_xray",
        "spine": "spine_xray",
        "limb": "limb_xray",
    },
    "ct": {
        "head": "head_ct",
        "chest": "chest_ct",
        "heart": "chest_ct",
        "breast": "chest_ct",
        "vessel": "chest_ct",
        "abdomen": "abdomen_ct",
        "urinary": "abdomen_ct",
        "pelvis": "abdomen_ct",
        "uterus": "abdomen_ct",
        "spine": "spine_ct",
        "limb": "limb_ct",
    },
    "mr": {
        "head": "brain_mr",
        "spine": "spine_mr",
        "limb": "joint_mr",
    },
    "us": {
        "neck": "thyroid_us",
        "thyroid": "thyroid_us",
        "breast": "breast_us",
        "abdomen": "abdomen_us",
        "urinary": "urinary_us",
        "pelvis": "gyn_us",
        "uterus": "gyn_us",
        "fetus": "obstetric_us",
        "heart": "cardiac_us",
        "vessel": "vascular_us",
    },
}

_MODALITY_GROUPS: dict[str, str] = {
    "DX": "xray",
    "CR": "xray",
    "DR": "xray",
    "RG": "xray",
    "CT": "ct",
    "MR": "mr",
    "MRI": "mr",
    "US": "us",
    "MG": "mg",
}


def _normalise_term(value: object) -> str:
    """Upper-case a coded term and drop separators ("c-spine" -> "CSPINE")."""
    if not isinstance(value, str):
        return ""
    first = value.split("\\", 1)[0]
    return "".join(ch for ch in first.upper() if ch.isalnum())


def family_for(modality: str, body_part: str) -> str:
    """The REPORT_FAMILIES key for a DICOM modality and Body Part Examined; never raises."""
    group = _MODALITY_GROUPS.get(_normalise_term(modality))
    if group is None:
        return GENERIC_FAMILY
    if group == "mg":
        return "mammography"
    part_group = _BODY_PART_GROUPS.get(_normalise_term(body_part), "")
    return _FAMILY_BY_MODALITY_GROUP[group].get(part_group, GENERIC_FAMILY)


@dataclass(frozen=True)
class ReportTemplate:
    key: str
    name_zh: str
    name_en: str
    findings: str
    impression: str


@functools.cache
def templates() -> dict[str, ReportTemplate]:
    """The shipped templates by family key (read once; the file is part of the package)."""
    source = resources.files("models.data").joinpath("report_templates.csv")
    rows = csv.DictReader(io.StringIO(source.read_text(encoding="utf-8"), newline=""))
    return {
        row["key"]: ReportTemplate(
            row["key"], row["name_zh"], row["name_en"], row["findings"], row["impression"]
        )
        for row in rows
    }


def template_for(modality: str, body_part: str) -> ReportTemplate:
    """The template of the exam's family, or the generic one."""
    shipped = templates()
    return shipped.get(family_for(modality, body_part)) or shipped[GENERIC_FAMILY]
