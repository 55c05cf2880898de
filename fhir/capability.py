"""The CapabilityStatement: exactly what the hub's FHIR API supports, nothing more."""

from __future__ import annotations

from datetime import datetime

from fhir.identifiers import FHIR_VERSION
from fhir.resources.R4B.capabilitystatement import (
    CapabilityStatement,
    CapabilityStatementImplementation,
    CapabilityStatementRest,
    CapabilityStatementRestInteraction,
    CapabilityStatementRestResource,
    CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceSearchParam,
    CapabilityStatementRestSecurity,
    CapabilityStatementSoftware,
)
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.search import SEARCH_PARAMETERS

_INCLUDES = {"DiagnosticReport": ["DiagnosticReport:imaging-study"]}


def capability_statement(
    *, base_url: str, version: str, published: datetime
) -> CapabilityStatement:
    """The server's statement; ``base_url`` is the FHIR base (``…/fhir``)."""
    resources = [
        CapabilityStatementRestResource(
            type=resource_type,
            interaction=[
                CapabilityStatementRestResourceInteraction(code="read"),
                CapabilityStatementRestResourceInteraction(code="search-type"),
            ],
            versioning="versioned",
            readHistory=False,
            updateCreate=False,
            conditionalCreate=True,
            conditionalUpdate=True,
            searchInclude=_INCLUDES.get(resource_type),
            searchParam=[
                CapabilityStatementRestResourceSearchParam(name=name, type=kind)
                for name, kind in sorted(parameters.items())
            ],
        )
        for resource_type, parameters in sorted(SEARCH_PARAMETERS.items())
    ]
    return CapabilityStatement(
        status="active",
        date=published,
        publisher="Huren",
        kind="instance",
        software=CapabilityStatementSoftware(name="Huren", version=version),
        implementation=CapabilityStatementImplementation(
            description="Huren regional imaging hub (互认)", url=base_url
        ),
        fhirVersion=FHIR_VERSION,
        format=["application/fhir+json", "json"],
        rest=[
            CapabilityStatementRest(
                mode="server",
                documentation=(
                    "Bearer tokens with SMART system scopes (huren token create). Search "
                    "supports _count, _offset, _sort=date|-date|_lastUpdated|-_lastUpdated, "
                    "_summary=count and the _include listed; unknown parameters are refused "
                    "with 400. Transactions (POST to the base) take conditional updates by "
                    "identifier."
                ),
                security=CapabilityStatementRestSecurity(
                    service=[
                        CodeableConcept(
                            coding=[
                                Coding(
                                    system="http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    code="SMART-on-FHIR",
                                )
                            ],
                            text="Bearer token with SMART system scopes",
                        )
                    ]
                ),
                resource=resources,
                interaction=[CapabilityStatementRestInteraction(code="transaction")],
            )
        ],
    )
