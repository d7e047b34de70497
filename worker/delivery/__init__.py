"""Delivery: carrying decisions out on the platforms, exactly once where the platform allows it.

``deliverer``  the consumer group over the outbox streams (XREADGROUP / XAUTOCLAIM / XACK) and the
               idempotency protocol around every outbound call
``plan``       from an outbox entry and its decision to the calls to make (the 24-hour window,
               WhatsApp templates, private replies, YouTube moderation, connectors)
``graph``      Meta Graph API client (WhatsApp Cloud API, Messenger, Instagram, Facebook comments)
``youtube``    YouTube Data API client and the comment poller
``chatwoot``   Chatwoot Agent Bot: inbound webhook adapter and the messages / toggle_status client
``webhooks``   outbound signed webhooks for CRM and ticketing systems
``http``       one place where httpx errors and HTTP statuses become delivery errors
"""
