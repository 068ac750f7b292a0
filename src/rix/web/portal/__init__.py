"""The portal: server-rendered pages (Jinja2, enhanced by htmx) for clinicians and
administrators. ``pages`` renders and guards them; one module per page family:
``search`` (regional search, timeline, break-glass), ``study`` (study page, download,
send), ``launch`` (IHE IID), ``imports`` (media import with reconciliation), ``admin``
(trusts, AEs, users, agreements, MPI reviews, jobs) and ``status``.
"""
