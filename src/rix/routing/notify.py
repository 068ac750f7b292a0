"""Notifications: a JSON POST to a webhook, retried like any job (``notify``)."""

from __future__ import annotations

import httpx

from rix.jobs.worker import Context

KIND = "notify"


def run(ctx: Context) -> None:
    url = str(ctx.job.payload["url"])
    response = httpx.post(url, json=ctx.job.payload["body"], timeout=10.0)
    if response.status_code >= 300:
        raise RuntimeError(f"the webhook answered {response.status_code}")
