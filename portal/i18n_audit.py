"""UI strings of the audit-trail page (审计日志) for the QC officer and the administrator.

Merged into `portal.i18n.STRINGS`; both languages must have the same keys
(tests/portal/test_i18n.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ZH: Final[dict[str, str]] = {
    "nav_audit_trail": "审计日志",
    "trail_title": "审计日志",
    "trail_intro": "谁在何时、从何处查看或更改了什么。记录只增不改，并以哈希链防篡改。",
    "trail_person": "人员",
    "trail_person_hint": "用户名或接口客户端",
    "trail_patient": "患者",
    "trail_patient_hint": "姓名或身份证号",
    "trail_action": "操作",
    "trail_entity": "对象",
    "trail_entity_hint": "如 Patient 或 Study/12",
    "trail_since": "起始日期",
    "trail_until": "截止日期",
    "trail_any_action": "全部操作",
    "trail_search": "查询",
    "trail_export": "导出 FHIR AuditEvent",
    "trail_exported": "已导出事件数：",
    "trail_truncated": "（结果过多，只导出前 10000 条，请缩小查询范围）",
    "trail_empty": "没有符合条件的审计记录。",
    "trail_time": "时间",
    "trail_facility": "机构",
    "trail_source": "来源地址",
    "trail_detail": "说明",
    "trail_outcome_failure": "失败",
    "trail_sealed": "已封存",
    "trail_unsealed": "待封存",
    "trail_err_dates": "起始日期不能晚于截止日期。",
    "trail_err_date": "请输入有效日期（YYYY-MM-DD）。",
    "trail_action_login": "登录",
    "trail_action_login_failed": "登录失败",
    "trail_action_logout": "退出",
    "trail_action_read": "查看",
    "trail_action_create": "新建",
    "trail_action_update": "修改",
    "trail_action_delete": "删除",
    "trail_action_export": "导出",
    "trail_action_execute": "执行",
}

EN: Final[dict[str, str]] = {
    "nav_audit_trail": "Audit trail",
    "trail_title": "Audit trail",
    "trail_intro": (
        "Who saw or changed what, when and from where. Records are append-only and "
        "hash-chained against tampering."
    ),
    "trail_person": "Person",
    "trail_person_hint": "Username or API client",
    "trail_patient": "Patient",
    "trail_patient_hint": "Name or resident ID",
    "trail_action": "Action",
    "trail_entity": "Entity",
    "trail_entity_hint": "e.g. Patient or Study/12",
    "trail_since": "From",
    "trail_until": "To",
    "trail_any_action": "All actions",
    "trail_search": "Search",
    "trail_export": "Export as FHIR AuditEvent",
    "trail_exported": "Events exported:",
    "trail_truncated": "(too many: only the first 10,000 were exported; narrow the search)",
    "trail_empty": "No audit records match.",
    "trail_time": "Time",
    "trail_facility": "Facility",
    "trail_source": "Source address",
    "trail_detail": "Detail",
    "trail_outcome_failure": "Failed",
    "trail_sealed": "Sealed",
    "trail_unsealed": "Not sealed yet",
    "trail_err_dates": "The first day cannot come after the last.",
    "trail_err_date": "Enter a valid date (YYYY-MM-DD).",
    "trail_action_login": "Sign-in",
    "trail_action_login_failed": "Failed sign-in",
    "trail_action_logout": "Sign-out",
    "trail_action_read": "View",
    "trail_action_create": "Create",
    "trail_action_update": "Change",
    "trail_action_delete": "Delete",
    "trail_action_export": "Export",
    "trail_action_execute": "Run",
}

STRINGS: Final[Mapping[str, Mapping[str, str]]] = {"zh-CN": ZH, "en": EN}
