"""The A4 report PDF: structure, Chinese text in the content streams, pagination, determinism."""

from __future__ import annotations

import base64
import re
import zlib

from fhir_samples import auditor, county, exam, patient, radiologist, report, study, township

from fhir.pdf import report_pdf
from models.reporting import Report

A4_MEDIA_BOX = b"/MediaBox [ 0 0 595.2756 841.8898 ]"


def _render(row: Report | None = None) -> bytes:
    return report_pdf(
        row or report(),
        study=study(),
        patient=patient(),
        exam=exam(),
        author=radiologist(),
        auditor=auditor(),
        facility=township(),
        reading_centre=county(),
    )


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page(?![s\w])", pdf))


def _unescape(literal: bytes) -> bytes:
    """A PDF string literal's bytes (backslash escapes: octal, \\\\, \\(, \\))."""
    out = bytearray()
    index = 0
    while index < len(literal):
        byte = literal[index]
        if byte != 0x5C:
            out.append(byte)
            index += 1
            continue
        octal = re.match(rb"[0-7]{1,3}", literal[index + 1 : index + 4])
        if octal:
            out.append(int(octal.group(), 8))
            index += 1 + len(octal.group())
        else:
            escaped = literal[index + 1 : index + 2]
            out += {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(escaped, escaped)
            index += 2
    return bytes(out)


def _shown_text(pdf: bytes) -> str:
    """Every string the pages show, decoded from the CID font's UCS-2 encoding."""
    shown = []
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        body = match.group(1).strip().removesuffix(b"~>").replace(b"\n", b"")
        content = zlib.decompress(base64.a85decode(body))
        for literal in re.findall(rb"\(((?:[^\\)]|\\.)*)\) Tj", content, re.S):
            shown.append(_unescape(literal).decode("utf-16-be"))
    return "".join(shown)


def test_report_pdf_is_one_a4_page_in_the_cid_font() -> None:
    pdf = _render()
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert _pages(pdf) == 1
    assert b"/Count 1" in pdf
    assert A4_MEDIA_BOX in pdf
    assert b"/BaseFont /STSong-Light" in pdf
    assert b"/Encoding /UniGB-UCS2-H" in pdf


def test_report_pdf_shows_the_report_in_chinese() -> None:
    text = _shown_text(_render())
    assert "互认县人民医院" in text
    assert "影像诊断报告" in text
    assert "姓名：张三丰" in text
    assert "性别：男" in text
    assert "年龄：76岁" in text
    assert "检查项目：胸部CT平扫（CT-CHEST-PLAIN）" in text
    assert "检查时间：2026-03-02 09:05" in text
    assert "检查所见" in text
    assert "双肺纹理清晰，未见明确实质性病变。" in text
    assert "诊断意见" in text
    assert "胸部CT平扫未见明显异常。" in text
    assert "报告医师：王芳 2026-03-02 09:20" in text
    assert "审核医师：刘强 2026-03-02 09:40" in text
    assert "第 1 页" in text
    assert "（续）" not in text


def test_markup_characters_in_findings_are_text() -> None:
    text = _shown_text(_render(report(findings="结节 <5mm & 边界清 <b>不加粗</b>")))
    assert "结节 <5mm & 边界清 <b>不加粗</b>" in text


def test_long_findings_continue_on_the_next_page() -> None:
    findings = "\n".join(
        f"第{n}段：右肺上叶见多发小结节影，边界清楚，密度均匀，最大径约{n}毫米，建议随访复查。"
        for n in range(1, 81)
    )
    pdf = _render(report(findings=findings))
    pages = _pages(pdf)
    assert pages >= 2
    assert f"/Count {pages}".encode() in pdf
    text = _shown_text(pdf)
    assert "第1段：右肺上叶见多发小结节影" in text
    assert "最大径约80毫米，建议随访复查。" in text
    assert "第 2 页" in text
    assert text.count("张三丰  胸部CT平扫  A20260302001  （续）") == pages - 1
    assert text.index("第80段") < text.index("诊断意见")


def test_rendering_is_deterministic() -> None:
    first = _render()
    assert _render() == first
    assert b"D:20000101000000" in first
    assert _render(report(impression="另一个结论。")) != first
