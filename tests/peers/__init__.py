"""Real peers for tests: a live `rix serve`, DCMTK tools, PostgreSQL."""
