"""Notifications: a JSON POST to a webhook, retried like any job (``notify``)."""

from __future__ import annotations

import httpx

from rix.jobs.worker import Context

KIND = "notify"
# one client for the process: a new one per job costs a TLS context (~60-100 ms of CPU)
_client = httpx.Client(timeout=10.0)


def run(ctx: Context) -> None:
    url = str(ctx.job.payload["url"])
    response = _client.post(url, json=ctx.job.payload["body"])
    if response.status_code >= 300:
        raise RuntimeError(f"the webhook answered {response.status_code}")
