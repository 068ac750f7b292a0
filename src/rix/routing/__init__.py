"""Images where they are needed: routing rules, deliveries, transfers and prefetch.

Each is a job (``rix.jobs``): ``stability`` notices a study has stopped arriving and runs
the ``rules``; ``deliver`` sends a study to a DICOM AE (C-STORE) or a DICOMweb server
(STOW-RS) with the destination trust's patient identifiers; ``transfer`` and
``prefetch`` choose the studies a trust needs and queue their deliveries.
"""
