"""Side effects as durable jobs (DESIGN.md, "Side effects are jobs").

``queue`` is the job table: enqueue, claim, finish, fail with back-off, retry, cancel.
``worker`` runs claimed jobs with the handlers the composition root registers
(``rix.serve.job_handlers``), each defined next to its kind.
"""
