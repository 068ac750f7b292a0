"""The DIMSE front end: pynetdicom handlers that call ingest, index queries and the store."""
