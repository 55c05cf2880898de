"""Floor 2: DICOM adapter (storage, worklist, query). Imports only models."""
