"""Properties of the demo region's vocabulary (names, places, report phrases)."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from integration.demo import vocabulary as v
from models.enums import RefusalReason

MODALITIES = ("DX", "CR", "CT", "MR", "US", "MG")
BODY_PARTS = (
    "CHEST", "HEAD", "SKULL", "NECK", "THYROID", "BREAST", "ABDOMEN", "PELVIS",
    "ABDOMENPELVIS", "CSPINE", "TSPINE", "LSPINE", "SHOULDER", "ELBOW", "WRIST",
    "HAND", "HIP", "KNEE", "ANKLE", "FOOT", "HEART", "KIDNEY", "LIVER",
    "GALLBLADDER", "UTERUS",
)  # fmt: skip
REQUIRED_FAMILIES = {
    "chest_xray", "spine_xray", "limb_xray", "abdomen_xray", "skull_xray",
    "head_ct", "chest_ct", "abdomen_ct", "spine_ct", "limb_ct",
    "brain_mr", "spine_mr", "joint_mr",
    "abdomen_us", "thyroid_us", "breast_us", "urinary_us", "gyn_us", "obstetric_us",
    "cardiac_us", "vascular_us", "mammography", "generic",
}  # fmt: skip
HAN = re.compile(r"[\u4e00-\u9fff]")
NAME = re.compile(r"[\u4e00-\u9fff]{2,4}")
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def all_findings() -> list[tuple[str, v.Finding]]:
    return [
        (key, finding)
        for key, family in v.REPORT_FAMILIES.items()
        for finding in (*family.normal, *family.abnormal)
    ]


# --- report families ------------------------------------------------------


def test_all_required_families_exist_and_keys_match() -> None:
    assert set(v.REPORT_FAMILIES) >= REQUIRED_FAMILIES
    for key, family in v.REPORT_FAMILIES.items():
        assert family.key == key


@pytest.mark.parametrize("key", sorted(REQUIRED_FAMILIES))
def test_family_sizes(key: str) -> None:
    family = v.REPORT_FAMILIES[key]
    assert 2 <= len(family.normal) <= 3
    assert 5 <= len(family.abnormal) <= 10


def test_normal_findings_are_negative_and_abnormal_positive() -> None:
    for family in v.REPORT_FAMILIES.values():
        for finding in family.normal:
            assert not finding.positive, finding
            assert not finding.critical, finding
        for finding in family.abnormal:
            assert finding.positive, finding


def test_no_empty_text_and_text_is_chinese() -> None:
    for key, finding in all_findings():
        for text in (finding.findings, finding.impression):
            assert text.strip() == text and text, (key, finding)
            assert HAN.search(text), (key, text)


def test_variants_within_a_family_are_distinct() -> None:
    for key, family in v.REPORT_FAMILIES.items():
        impressions = [f.impression for f in (*family.normal, *family.abnormal)]
        assert len(impressions) == len(set(impressions)), key


def test_critical_results_exist_where_expected() -> None:
    critical = {key for key, finding in all_findings() if finding.critical}
    # Haemorrhage on head CT, dissection/pneumothorax on chest CT, free gas on abdomen,
    # ruptured ectopic on gynaecological ultrasound.
    assert {"head_ct", "chest_ct", "abdomen_ct", "abdomen_xray", "gyn_us"} <= critical
    total = sum(1 for _, finding in all_findings() if finding.critical)
    positives = sum(1 for _, finding in all_findings() if finding.positive)
    assert total < positives / 3  # critical results are a minority of abnormal reports


def test_findings_are_frozen() -> None:
    finding = v.REPORT_FAMILIES["generic"].normal[0]
    with pytest.raises(AttributeError):
        finding.positive = True  # type: ignore[misc]


# --- family_for -----------------------------------------------------------


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("body_part", BODY_PARTS)
def test_family_for_covers_every_listed_combination(modality: str, body_part: str) -> None:
    assert v.family_for(modality, body_part) in v.REPORT_FAMILIES


@pytest.mark.parametrize(
    ("modality", "body_part", "expected"),
    [
        ("DX", "CHEST", "chest_xray"),
        ("CR", "LSPINE", "spine_xray"),
        ("DX", "KNEE", "limb_xray"),
        ("DX", "ABDOMEN", "abdomen_xray"),
        ("CR", "SKULL", "skull_xray"),
        ("CT", "HEAD", "head_ct"),
        ("CT", "CHEST", "chest_ct"),
        ("CT", "ABDOMENPELVIS", "abdomen_ct"),
        ("CT", "CSPINE", "spine_ct"),
        ("CT", "ANKLE", "limb_ct"),
        ("MR", "HEAD", "brain_mr"),
        ("MR", "LSPINE", "spine_mr"),
        ("MR", "KNEE", "joint_mr"),
        ("US", "LIVER", "abdomen_us"),
        ("US", "GALLBLADDER", "abdomen_us"),
        ("US", "THYROID", "thyroid_us"),
        ("US", "BREAST", "breast_us"),
        ("US", "KIDNEY", "urinary_us"),
        ("US", "UTERUS", "gyn_us"),
        ("US", "HEART", "cardiac_us"),
        ("US", "CAROTID", "vascular_us"),
        ("MG", "BREAST", "mammography"),
        ("MG", "", "mammography"),
        ("dx", "c-spine", "spine_xray"),
        (" ct ", "abdomen pelvis", "abdomen_ct"),
    ],
)
def test_family_for_picks_the_sensible_family(modality: str, body_part: str, expected: str) -> None:
    assert v.family_for(modality, body_part) == expected


@pytest.mark.parametrize(
    ("modality", "body_part"),
    [
        ("", ""),
        ("XA", "CHEST"),
        ("NM", "WHOLEBODY"),
        ("CT", "NOSUCHPART"),
        ("MR", "ABDOMEN"),
        ("US", "骨盆"),
        ("DX", "\x00\\CHEST"),
        ("??", "!!"),
    ],
)
def test_family_for_falls_back_to_generic(modality: str, body_part: str) -> None:
    assert v.family_for(modality, body_part) == "generic"


def test_family_for_never_raises_on_wrong_types() -> None:
    assert v.family_for(None, None) == "generic"  # type: ignore[arg-type]
    assert v.family_for("CT", 42) == "generic"  # type: ignore[arg-type]


# --- people ---------------------------------------------------------------


def test_surnames_are_unique_single_characters_with_positive_weights() -> None:
    names = [name for name, _ in v.SURNAMES]
    assert 90 <= len(names) <= 110
    assert len(names) == len(set(names))
    for name, weight in v.SURNAMES:
        assert HAN.fullmatch(name), name
        assert weight > 0
    assert names[:3] == ["王", "李", "张"]


@pytest.mark.parametrize(
    "chars",
    [v.GIVEN_NAME_CHARS_MALE, v.GIVEN_NAME_CHARS_FEMALE, v.GIVEN_NAME_CHARS_NEUTRAL],
)
def test_given_name_characters(chars: tuple[str, ...]) -> None:
    assert 40 <= len(chars) <= 80
    assert len(chars) == len(set(chars))
    assert all(HAN.fullmatch(ch) for ch in chars)


def test_given_name_lists_do_not_overlap() -> None:
    male = set(v.GIVEN_NAME_CHARS_MALE)
    female = set(v.GIVEN_NAME_CHARS_FEMALE)
    neutral = set(v.GIVEN_NAME_CHARS_NEUTRAL)
    assert not male & female
    assert not male & neutral
    assert not female & neutral


@pytest.mark.parametrize("sex", ["M", "F"])
def test_person_name_is_deterministic_and_plausible(sex: str) -> None:
    first = [v.person_name(random.Random(42), sex) for _ in range(3)]
    assert len(set(first)) == 1
    rng_a, rng_b = random.Random(7), random.Random(7)
    names_a = [v.person_name(rng_a, sex) for _ in range(500)]
    names_b = [v.person_name(rng_b, sex) for _ in range(500)]
    assert names_a == names_b
    surnames = {name for name, _ in v.SURNAMES}
    for name in names_a:
        assert NAME.fullmatch(name), name
        assert name[0] in surnames
    lengths = Counter(len(name) for name in names_a)
    assert set(lengths) == {2, 3}
    assert 0.6 < lengths[3] / len(names_a) < 0.8  # ~70 % two-character given names


def test_person_name_uses_sex_appropriate_characters() -> None:
    rng = random.Random(1)
    male_given = "".join(v.person_name(rng, "M")[1:] for _ in range(300))
    female_given = "".join(v.person_name(rng, "F")[1:] for _ in range(300))
    assert not set(male_given) & set(v.GIVEN_NAME_CHARS_FEMALE)
    assert not set(female_given) & set(v.GIVEN_NAME_CHARS_MALE)


def test_person_name_surnames_follow_weights() -> None:
    rng = random.Random(3)
    counts = Counter(v.person_name(rng, "F")[0] for _ in range(5000))
    assert counts["王"] > counts["汤"] * 5


def test_person_name_tolerates_unknown_sex() -> None:
    name = v.person_name(random.Random(0), "U")
    assert NAME.fullmatch(name)


# --- places ---------------------------------------------------------------


def test_county_and_townships() -> None:
    assert v.COUNTY_NAME.endswith("县")
    assert v.CITY_NAME.endswith("市")
    assert len(v.TOWNSHIPS) == 15
    assert len(set(v.TOWNSHIPS)) == 15
    assert all(t.endswith(("镇", "乡")) for t in v.TOWNSHIPS)
    assert set(v.TOWNSHIP_EN) == set(v.TOWNSHIPS)
    for zh, en in v.TOWNSHIP_EN.items():
        assert en.isascii() and en
        assert en.endswith("Town") == zh.endswith("镇")
        assert en.endswith("Township") == zh.endswith("乡")


def test_villages() -> None:
    assert set(v.VILLAGES_PER_TOWNSHIP) == set(v.TOWNSHIPS)
    all_villages = [name for names in v.VILLAGES_PER_TOWNSHIP.values() for name in names]
    assert len(all_villages) == len(set(all_villages))
    for names in v.VILLAGES_PER_TOWNSHIP.values():
        assert 2 <= len(names) <= 3
        assert all(name.endswith("村") and len(name) >= 2 for name in names)


def test_county_hospitals() -> None:
    assert len(v.COUNTY_HOSPITALS) == 3
    for zh, en in v.COUNTY_HOSPITALS:
        assert zh.startswith(v.COUNTY_NAME) and zh.endswith("医院")
        assert en.startswith(v.COUNTY_NAME_EN) and en.isascii()
    assert len({zh for zh, _ in v.COUNTY_HOSPITALS}) == 3


def test_area_code_looks_like_a_county_code() -> None:
    code = v.COUNTY_AREA_CODE
    assert len(code) == 6 and code.isascii() and code.isdigit()
    assert code[4:] != "00"  # a county, not a prefecture or province
    assert code[2:4] != "00"


# --- audit, QC, recognition, consultation --------------------------------


def test_correction_edits_and_amendment_reasons() -> None:
    assert len(v.CORRECTION_EDITS) >= 5
    for suffix, reason in v.CORRECTION_EDITS:
        assert suffix and reason and HAN.search(suffix) and HAN.search(reason)
    assert len({suffix for suffix, _ in v.CORRECTION_EDITS}) == len(v.CORRECTION_EDITS)
    assert len(v.AMENDMENT_REASONS) >= 5
    assert len(set(v.AMENDMENT_REASONS)) == len(v.AMENDMENT_REASONS)
    assert {"补充诊断", "更正侧别", "临床反馈后复核"} <= set(v.AMENDMENT_REASONS)


def test_retake_reasons() -> None:
    codes = [code for code, _ in v.RETAKE_REASONS]
    assert len(codes) >= 6
    assert len(codes) == len(set(codes))
    for code, label in v.RETAKE_REASONS:
        assert SNAKE.fullmatch(code), code
        assert len(code) <= 32  # fits QcEvent.retake_reason
        assert label and HAN.search(label)
    assert {"positioning", "motion_artifact", "incomplete_coverage"} <= set(codes)


def test_refusal_comments_cover_the_national_reasons() -> None:
    assert set(v.REFUSAL_COMMENTS) == {
        "condition_changed",
        "conflicts_with_clinical",
        "emergency",
        "rapid_change",
        "other",
    }
    assert set(v.REFUSAL_COMMENTS) == {reason.value for reason in RefusalReason}
    for comments in v.REFUSAL_COMMENTS.values():
        assert 2 <= len(comments) <= 4
        assert all(comment and HAN.search(comment) for comment in comments)


def test_consultation_texts() -> None:
    for texts in (v.CONSULTATION_QUESTIONS, v.CONSULTATION_OPINIONS):
        assert len(texts) >= 3
        assert all(text and HAN.search(text) for text in texts)
