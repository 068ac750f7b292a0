"""The DIMSE front end: the listener (``scp``, ``tls``), one module per DICOM service
(C-ECHO, C-STORE, C-FIND, C-MOVE/C-GET, storage commitment, modality worklist, MPPS),
and the principal an association acts as. Handlers translate DIMSE into calls of
``rix.ingest``, ``rix.index`` queries under ``rix.access``, and ``rix.retrieve``; they
hold no business rule of their own.
"""
