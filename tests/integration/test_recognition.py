"""The recognition rules: every rule on its own, and properties that no verdict contradicts them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration.recognition import (
    ExamSpec,
    Prior,
    Reason,
    Rules,
    is_candidate,
    judge,
    resolve_exam,
    stands_for,
    verdicts,
)
from models.enums import ReportStatus

TODAY = date(2026, 11, 25)
CHEST = ExamSpec(
    code="DX-CHEST-PA",
    name="胸部正位",
    modality="DX",
    body_part="CHEST",
    recognised=True,
    validity_days=30,
    loinc="36554-4",
    fee_fen=6000,
)
CHEST_LAT = ExamSpec(
    code="DX-CHEST-LAT",
    name="胸部侧位",
    modality="DX",
    body_part="CHEST",
    recognised=True,
    validity_days=30,
)
HEAD_CT = ExamSpec(
    code="CT-HEAD",
    name="头颅CT平扫",
    modality="CT",
    body_part="HEAD",
    recognised=True,
    validity_days=180,
)
CATALOGUE = [CHEST, CHEST_LAT, HEAD_CT]
GOOD = Prior(
    key="1.2.3",
    exam_code="DX-CHEST-PA",
    modality="DX",
    body_part="CHEST",
    performed_on=TODAY - timedelta(days=10),
    facility="双河镇卫生院",
    report_status=ReportStatus.final,
    quality_rejected=False,
    facility_qualified=True,
    recognised_item=True,
)


def test_a_prior_meeting_every_rule_is_recognisable() -> None:
    verdict = judge(GOOD, requested=CHEST, on=TODAY, rules=Rules())
    assert verdict.recognisable and verdict.reasons == ()
    assert verdict.valid_until == TODAY + timedelta(days=20)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"recognised_item": False}, Reason.not_recognised_item),
        ({"facility_qualified": False}, Reason.facility_not_qualified),
        ({"report_status": ReportStatus.preliminary}, Reason.report_not_final),
        ({"report_status": None}, Reason.report_not_final),
        ({"report_status": ReportStatus.cancelled}, Reason.report_not_final),
        ({"quality_rejected": True}, Reason.quality_rejected),
        ({"performed_on": TODAY - timedelta(days=31)}, Reason.expired),
    ],
)
def test_each_rule_alone_makes_a_prior_not_recognisable(
    change: dict[str, object], reason: Reason
) -> None:
    verdict = judge(replace(GOOD, **change), requested=CHEST, on=TODAY, rules=Rules())  # type: ignore[arg-type]
    assert not verdict.recognisable
    assert verdict.reasons == (reason,)


@pytest.mark.parametrize(
    "status", [ReportStatus.final, ReportStatus.amended, ReportStatus.corrected]
)
def test_signed_reports_of_every_kind_count(status: ReportStatus) -> None:
    assert judge(
        replace(GOOD, report_status=status), requested=CHEST, on=TODAY, rules=Rules()
    ).recognisable


def test_the_window_includes_its_last_day_and_can_be_configured() -> None:
    edge = replace(GOOD, performed_on=TODAY - timedelta(days=30))
    assert judge(edge, requested=CHEST, on=TODAY, rules=Rules()).recognisable
    shorter = Rules(validity_days={"DX-CHEST-PA": 7})
    assert judge(GOOD, requested=CHEST, on=TODAY, rules=shorter).reasons == (Reason.expired,)
    none = replace(CHEST, validity_days=0)
    assert judge(GOOD, requested=none, on=TODAY, rules=Rules()).reasons == (Reason.expired,)


def test_every_failing_rule_is_named() -> None:
    bad = replace(GOOD, recognised_item=False, quality_rejected=True, report_status=None)
    assert judge(bad, requested=CHEST, on=TODAY, rules=Rules()).reasons == (
        Reason.not_recognised_item,
        Reason.report_not_final,
        Reason.quality_rejected,
    )


def test_related_exams_count_only_when_configured() -> None:
    lateral = replace(GOOD, key="9", exam_code="DX-CHEST-LAT")
    head = replace(GOOD, key="8", exam_code="CT-HEAD", modality="CT", body_part="HEAD")
    assert verdicts([lateral, head], requested=CHEST, on=TODAY, rules=Rules()) == []
    related = verdicts(
        [lateral, head], requested=CHEST, on=TODAY, rules=Rules(include_related=True)
    )
    assert [(v.prior.key, v.same_type) for v in related] == [("9", False)]


@pytest.mark.parametrize("related", [False, True])
def test_exam_types_that_stand_for_a_request_are_the_candidates_priors(related: bool) -> None:
    rules = Rules(include_related=related)
    for requested in CATALOGUE:
        standing = {
            exam.code
            for exam in CATALOGUE
            if stands_for(
                exam.code, exam.modality, exam.body_part, requested=requested, rules=rules
            )
        }
        for exam in CATALOGUE:
            prior = replace(
                GOOD, exam_code=exam.code, modality=exam.modality, body_part=exam.body_part
            )
            assert is_candidate(prior, requested=requested, rules=rules) == (exam.code in standing)
    assert stands_for("DX-CHEST-LAT", "DX", "CHEST", requested=CHEST, rules=rules) == related
    assert not stands_for("CT-HEAD", "CT", "HEAD", requested=CHEST, rules=rules)


def test_verdicts_put_recognisable_first_then_the_newest() -> None:
    old = replace(GOOD, key="old", performed_on=TODAY - timedelta(days=20))
    new = replace(GOOD, key="new", performed_on=TODAY - timedelta(days=2))
    rejected = replace(GOOD, key="rejected", performed_on=TODAY, quality_rejected=True)
    ordered = verdicts([old, rejected, new], requested=CHEST, on=TODAY, rules=Rules())
    assert [v.prior.key for v in ordered] == ["new", "old", "rejected"]


def test_requested_codes_resolve_through_catalogue_loinc_and_local_aliases() -> None:
    aliases = {"X001": "DX-CHEST-PA"}
    assert resolve_exam("DX-CHEST-PA", system=None, catalogue=CATALOGUE, aliases=aliases) == CHEST
    assert (
        resolve_exam("36554-4", system="http://loinc.org", catalogue=CATALOGUE, aliases={}) == CHEST
    )
    assert (
        resolve_exam("X001", system="urn:his:QL-T01", catalogue=CATALOGUE, aliases=aliases) == CHEST
    )
    assert resolve_exam("36554-4", system=None, catalogue=CATALOGUE, aliases={}) == CHEST
    assert resolve_exam("NOPE", system=None, catalogue=CATALOGUE, aliases=aliases) is None
    assert (
        resolve_exam("DX-CHEST-PA", system="http://loinc.org", catalogue=CATALOGUE, aliases={})
        is None
    )


priors = st.builds(
    Prior,
    key=st.text("0123456789.", min_size=1, max_size=12),
    exam_code=st.sampled_from([e.code for e in CATALOGUE]),
    modality=st.sampled_from(["DX", "CT", ""]),
    body_part=st.sampled_from(["CHEST", "HEAD", ""]),
    performed_on=st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)),
    facility=st.just("某卫生院"),
    report_status=st.one_of(st.none(), st.sampled_from(list(ReportStatus))),
    quality_rejected=st.booleans(),
    facility_qualified=st.booleans(),
    recognised_item=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(
    prior=priors,
    requested=st.sampled_from(CATALOGUE),
    on=st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)),
    window=st.integers(min_value=0, max_value=400),
)
def test_a_verdict_never_contradicts_the_rules(
    prior: Prior, requested: ExamSpec, on: date, window: int
) -> None:
    rules = Rules(validity_days={requested.code: window})
    verdict = judge(prior, requested=requested, on=on, rules=rules)
    within = window > 0 and on <= prior.performed_on + timedelta(days=window)
    every_rule = (
        prior.recognised_item
        and prior.facility_qualified
        and prior.report_status
        in (ReportStatus.final, ReportStatus.amended, ReportStatus.corrected)
        and not prior.quality_rejected
        and within
    )
    assert verdict.recognisable == every_rule
    assert (Reason.expired in verdict.reasons) == (not within)
    assert (Reason.quality_rejected in verdict.reasons) == prior.quality_rejected
    assert (Reason.not_recognised_item in verdict.reasons) == (not prior.recognised_item)
    assert (Reason.facility_not_qualified in verdict.reasons) == (not prior.facility_qualified)


@settings(max_examples=200, deadline=None)
@given(found=st.lists(priors, max_size=12), requested=st.sampled_from(CATALOGUE))
def test_verdict_lists_keep_only_candidates_and_put_recognisable_ones_first(
    found: list[Prior], requested: ExamSpec
) -> None:
    listed = verdicts(found, requested=requested, on=TODAY, rules=Rules())
    assert all(v.prior.exam_code == requested.code for v in listed)
    assert len(listed) == sum(1 for p in found if p.exam_code == requested.code)
    flags = [v.recognisable for v in listed]
    assert flags == sorted(flags, reverse=True)
