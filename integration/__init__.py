"""Floor 3: the hub. Use-cases, workers, the HTTP app, the CLI and settings.

The only package that wires the protocol adapters (hl7, dicom, fhir) together.
"""

__version__ = "0.1.0"
