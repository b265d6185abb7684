"""Webhooks for the CRM: events posted, signed, to the receivers an operator adds.

- :mod:`.outbox`: producers call :func:`~callcenter.webhooks.outbox.enqueue` in their own
  transaction (a durable outbox in PostgreSQL); what is sent (body, headers, HMAC-SHA256
  signature), the backoff, which URLs are accepted.
- :mod:`.delivery`: the worker that posts the outbox, at least once, with retries
  (``callcenter webhooks run``; part of ``callcenter run``).
- :mod:`.manage`: ``callcenter webhooks add|list|remove|deliveries|log|retry``.

Tables: :mod:`callcenter.db.models_webhooks`. API tokens: :mod:`callcenter.tokens`.
"""
