"""Floor 2: HL7 v2 adapter (ER7 parsing, MLLP framing). Imports only models."""
