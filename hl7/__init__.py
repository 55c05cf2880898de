"""Floor 2: HL7 v2 adapter. Imports only models.

``er7`` parses (lean, lazy), ``mllp`` frames and serves, ``orders`` maps
inbound orders and patient events to neutral values, ``ack`` and ``oru``
build the outbound messages, ``errors`` carries field and HL7 error code.
"""
