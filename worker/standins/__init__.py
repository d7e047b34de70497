"""Loopback stand-ins for the platforms replyguard talks to: small HTTP servers that speak the
documented request and response shapes, check what they can (token, required fields), and record
every request. Tests, the demo and the benchmarks use them; they are not mocks of replyguard code.

``GraphStandIn``     Meta Graph API (WhatsApp Cloud API, Messenger / Instagram send, comments)
``YouTubeStandIn``   YouTube Data API v3 (commentThreads.list, comments.insert, setModerationStatus)
``ChatwootStandIn``  Chatwoot application API (messages, toggle_status)
``WebhookReceiver``  a CRM receiving replyguard's signed webhooks (checks the signature)

Run one by hand: ``python -m worker.standins graph --port 8081``.
"""

from worker.standins.base import Recorded, Scripted, StandIn
from worker.standins.platforms import ChatwootStandIn, GraphStandIn, WebhookReceiver, YouTubeStandIn

__all__ = ["ChatwootStandIn", "GraphStandIn", "Recorded", "Scripted", "StandIn", "WebhookReceiver", "YouTubeStandIn"]
