"""DICOMweb (PS3.18) under ``/dicomweb``: STOW-RS, QIDO-RS, WADO-RS."""
