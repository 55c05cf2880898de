"""Floor 2: DICOM adapter (storage, worklist, query). Imports only models.

``instance`` checks received bytes and reads the index's facts (pure),
``store`` writes and reads the archive's files (atomic, fsynced),
``worklist`` and ``query`` parse C-FIND identifiers, match and answer
(pure, on ``matching``'s rules), ``server`` is the pynetdicom AE that takes
its handlers from the caller, ``errors`` carries the DICOM status to answer.
"""
