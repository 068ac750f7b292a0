"""Side effects as durable jobs (DESIGN.md, "Side effects are jobs").

``queue`` is the job table: enqueue, claim, finish, fail with back-off, retry, cancel.
``worker`` runs claimed jobs with the handlers ``rix.routing.handlers`` names.
"""
