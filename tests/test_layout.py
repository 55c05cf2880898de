"""The floors and their arrows, checked on the source: lower floors never import upper ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"models", "hl7", "dicom", "fhir", "integration", "portal"}
ALLOWED = {
    "models": {"models"},
    "hl7": {"hl7", "models"},
    "dicom": {"dicom", "models"},
    "fhir": {"fhir", "models"},
    "integration": {"integration", "models", "hl7", "dicom", "fhir"},
    "portal": {"portal", "integration", "models"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    offences = []
    for path in (ROOT / package).rglob("*.py"):
        for module in _imports(path):
            top = module.split(".")[0]
            if module.startswith("fhir.resources"):
                top = "fhir.resources"
            if top in OURS and top not in ALLOWED[package]:
                offences.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offences == []


def test_project_fhir_package_and_fhir_resources_both_import() -> None:
    from fhir.resources.imagingstudy import ImagingStudy

    import fhir

    assert str(ROOT / "fhir") in [str(Path(p)) for p in fhir.__path__]
    study = ImagingStudy.model_validate(
        {
            "resourceType": "ImagingStudy",
            "status": "available",
            "subject": {"reference": "Patient/1"},
        }
    )
    assert study.status == "available"


def test_the_customers_layout_exists() -> None:
    for name in ("portal", "integration", "fhir", "hl7", "dicom", "models", "tests"):
        assert (ROOT / name / "__init__.py").exists() or name == "tests", name
    assert (ROOT / "rxconfig.py").exists()
