"""``python -m rix.cli``: the ``rix`` command without its console script (tests, bench)."""

from rix.cli.main import app

app()
