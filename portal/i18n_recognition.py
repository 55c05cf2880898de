"""UI strings of the prior-exam check and the monthly refusal audit.

The reasons a prior does not count and the national refusal reasons are worded
where the rules live (`integration.recognition`, `integration.cds`), so the
portal, the CDS cards and the REST answer say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from integration.cds import REFUSAL_ZH
from integration.recognition import REASON_EN, REASON_ZH
from models.enums import RefusalReason

_REFUSAL_EN: Final[Mapping[RefusalReason, str]] = {
    RefusalReason.condition_changed: "The condition has changed",
    RefusalReason.conflicts_with_clinical: "The result conflicts with the clinical picture",
    RefusalReason.emergency: "Emergency or resuscitation",
    RefusalReason.rapid_change: "The finding changes quickly",
    RefusalReason.other: "Other",
}

ZH: Final[dict[str, str]] = {
    "nav_priors": "检查互认查询",
    "nav_refusal_audit": "互认抽样审核",
    "priors_title": "检查互认查询",
    "priors_intro": "开具检查前，查询患者在本区域内可互认的既往检查。"
    "可按身份证号查询任何机构的患者，按姓名仅查询本机构的患者。",
    "priors_search": "身份证号或患者姓名",
    "no_patients": "没有找到符合条件的患者。",
    "choose_exam": "选择拟开具的检查项目",
    "run_check": "查询既往检查",
    "recognisable": "可互认",
    "not_recognisable": "不可互认",
    "other_region": "外区域",
    "related_exam": "同部位相关检查",
    "valid_until": "有效期至",
    "open_prior_report": "查看报告",
    "accept_prior": "采用此结果（不再重复检查）",
    "refuse_prior": "仍需检查",
    "refusal_reason": "不采用原因",
    "refusal_comment": "补充说明（原因为“其他”时必填）",
    "record_refusal": "记录不采用原因",
    "close": "关闭",
    "no_priors_found": "该患者没有此项目的既往检查，可直接开具。",
    "done_accepted": "已记录：采用既往检查结果。",
    "done_refused": "已记录不采用原因，将按月抽样审核。",
    "err_term": "请输入18位身份证号（校验位须正确），或至少两个字的姓名。",
    "err_exam": "请选择检查项目。",
    "err_refusal_reason": "请选择不采用的原因。",
    "err_refusal_comment": "原因为“其他”时请填写说明（500字以内）。",
    "err_prior_gone": "该既往检查已不再可互认，请重新查询。",
    "refusal_audit_title": "互认抽样审核",
    "refusal_audit_intro": "每月从不采用互认结果的记录中随机抽取10%进行审核；"
    "抽样种子固定并记录，重复抽取结果相同。",
    "show": "显示",
    "audit_refusals": "本月不采用次数",
    "audit_drawn": "抽样数",
    "audit_reviewed": "已审核",
    "audit_justified": "理由充分",
    "audit_seed": "抽样种子",
    "draw_sample": "抽取本月样本",
    "month_not_over": "该月尚未结束，结束后方可抽样。",
    "decided_at": "记录时间",
    "prior_exam": "既往检查",
    "review": "审核",
    "review_note": "审核意见",
    "review_pending": "待审核",
    "review_justified": "理由充分",
    "review_unjustified": "理由不充分",
    "err_review_note": "判定理由不充分时请填写审核意见（500字以内）。",
    "done_reviewed": "审核结果已保存。",
    "avoidable_title": "可避免的重复检查",
    "avoidable_intro": "每晚核查：已有可互认的既往检查、且未记录不采用理由而仍然完成的检查。",
    "avoidable_count": "本月可避免检查",
    "avoidable_fee": "可避免费用（元）",
    "avoidable_fee_col": "费用（元）",
    "avoidable_none": "本月没有可避免的重复检查。",
    "performed_on": "检查日期",
    **{f"why_{reason.value}": text for reason, text in REASON_ZH.items()},
    **{f"refuse_{reason.value}": text for reason, text in REFUSAL_ZH.items()},
}

EN: Final[dict[str, str]] = {
    "nav_priors": "Prior-exam check",
    "nav_refusal_audit": "Refusal audit",
    "priors_title": "Prior-exam check",
    "priors_intro": "Before ordering, look for recognisable prior exams of the patient in the "
    "region. A resident ID finds patients of any facility; a name, only your facility's.",
    "priors_search": "Resident ID or patient name",
    "no_patients": "No patient found.",
    "choose_exam": "Choose the exam you are about to order",
    "run_check": "Check priors",
    "recognisable": "Recognisable",
    "not_recognisable": "Not recognisable",
    "other_region": "Other region",
    "related_exam": "Related exam",
    "valid_until": "Valid until",
    "open_prior_report": "Open report",
    "accept_prior": "Reuse this result (no new exam)",
    "refuse_prior": "Order anyway",
    "refusal_reason": "Reason for not reusing it",
    "refusal_comment": "Comment (required for 'Other')",
    "record_refusal": "Record the reason",
    "close": "Close",
    "no_priors_found": "No prior of this exam for the patient: order it.",
    "done_accepted": "Recorded: the prior result is reused.",
    "done_refused": "Reason recorded; refusals are sampled for audit each month.",
    "err_term": "Enter an 18-character resident ID (with a valid check character) or at "
    "least two characters of the name.",
    "err_exam": "Choose an exam.",
    "err_refusal_reason": "Choose why the prior is not reused.",
    "err_refusal_comment": "Explain 'Other' (up to 500 characters).",
    "err_prior_gone": "This prior no longer counts; check again.",
    "refusal_audit_title": "Refusal audit",
    "refusal_audit_intro": "Each month 10% of the refusals to reuse a recognisable prior are "
    "drawn for audit; the seed is fixed and recorded, so drawing again gives the same cases.",
    "show": "Show",
    "audit_refusals": "Refusals this month",
    "audit_drawn": "Drawn",
    "audit_reviewed": "Reviewed",
    "audit_justified": "Justified",
    "audit_seed": "Seed",
    "draw_sample": "Draw this month's sample",
    "month_not_over": "The month has not ended; draw its sample afterwards.",
    "decided_at": "Recorded",
    "prior_exam": "Prior exam",
    "review": "Review",
    "review_note": "Review note",
    "review_pending": "Not reviewed",
    "review_justified": "Justified",
    "review_unjustified": "Not justified",
    "err_review_note": "Say why the refusal was not justified (up to 500 characters).",
    "done_reviewed": "Review saved.",
    "avoidable_title": "Avoidable repeat exams",
    "avoidable_intro": "Checked nightly: exams done although a recognisable prior existed "
    "and no reason for refusing it was recorded.",
    "avoidable_count": "Avoidable exams this month",
    "avoidable_fee": "Avoidable cost (yuan)",
    "avoidable_fee_col": "Fee (yuan)",
    "avoidable_none": "No avoidable repeat exams this month.",
    "performed_on": "Exam date",
    **{f"why_{reason.value}": text.capitalize() for reason, text in REASON_EN.items()},
    **{f"refuse_{reason.value}": text for reason, text in _REFUSAL_EN.items()},
}

STRINGS: Final[Mapping[str, Mapping[str, str]]] = {"zh-CN": ZH, "en": EN}
