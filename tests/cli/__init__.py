"""Tests of the `rix` command line itself."""
