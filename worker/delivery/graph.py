"""Meta Graph API client: WhatsApp Cloud API, Messenger, Instagram messaging and comments, Page comments.

Calls (paths relative to the Graph base URL, ``REPLYGUARD_META_API_BASE``):

=================================  ===============================================================
WhatsApp text / template reply     ``POST /{phone_number_id}/messages``
Messenger / Instagram DM reply     ``POST /me/messages`` ``{recipient: {id}, messaging_type: RESPONSE}``
private reply to a comment         ``POST /{account_id}/messages`` ``{recipient: {comment_id}}``
public reply to a comment          Instagram ``POST /{comment_id}/replies``; Facebook ``POST /{comment_id}/comments``
hide / unhide a comment            Instagram ``POST /{comment_id}?hide=true|false``; Facebook ``?is_hidden=…``
=================================  ===============================================================

The access token goes in the ``Authorization: Bearer`` header (never in a URL, so never in a
log line). Graph errors (``{"error": {"code", "error_subcode", "message"}}``) are mapped to
transient (rate limits, temporary errors, 5xx) or permanent (expired token, invalid
recipient, window closed) delivery errors.
"""

from __future__ import annotations

from typing import Any

import httpx

from worker.delivery.http import call, generic_error, json_body, retry_after
from worker.exceptions import DeliveryError, PermanentDeliveryError, TransientDeliveryError

#: Graph error codes that mean "slow down" (application, user, page, WhatsApp throughput / pair limits).
RATE_LIMIT_CODES = {4, 17, 32, 613, 80001, 80002, 80004, 80006, 80007, 130429, 131048, 131056}
#: Temporary server-side problems.
TEMPORARY_CODES = {1, 2, 131000, 131016, 133004}
#: The 24-hour window has closed (WhatsApp re-engagement; Messenger/Instagram outside the window).
WINDOW_CODES = {131047}
WINDOW_SUBCODES = {2018278, 2534022}
#: The recipient cannot be reached.
RECIPIENT_CODES = {551, 131026, 131030, 131021}
RECIPIENT_SUBCODES = {2018001, 2018108, 1545041, 2534014}


def classify(response: httpx.Response) -> DeliveryError:
    """Map a Graph API error answer to a delivery error."""
    error = json_body(response).get("error")
    if not isinstance(error, dict):
        return generic_error(response)
    code = error.get("code")
    sub = error.get("error_subcode")
    status = response.status_code
    detail = f"Graph error {code}" + (f"/{sub}" if sub else "") + f": {str(error.get('message', ''))[:200]}"
    if status == 429 or code in RATE_LIMIT_CODES:
        return TransientDeliveryError("rate_limited", detail, status=status, retry_after=retry_after(response))
    if status >= 500 or code in TEMPORARY_CODES or error.get("is_transient") is True:
        return TransientDeliveryError("server_error", detail, status=status, retry_after=retry_after(response))
    if code == 190 or (status == 401):
        return PermanentDeliveryError("token_expired", detail, status=status)
    if code in WINDOW_CODES or sub in WINDOW_SUBCODES:
        return PermanentDeliveryError("window_closed", detail, status=status)
    if code in RECIPIENT_CODES or sub in RECIPIENT_SUBCODES:
        return PermanentDeliveryError("invalid_recipient", detail, status=status)
    return PermanentDeliveryError("rejected", detail, status=status)


class GraphClient:
    """One access token's view of the Graph API."""

    def __init__(self, base_url: str, token: str, http: httpx.Client):
        self.base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.http = http

    def _post(
        self, path: str, payload: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = call(
            self.http,
            "POST",
            f"{self.base}/{path.lstrip('/')}",
            classify=classify,
            headers=self._headers,
            json=payload,
            params=params,
        )
        return json_body(response)

    # -- WhatsApp Cloud API ------------------------------------------------------------

    def whatsapp_text(
        self, phone_number_id: str, to: str, body: str, *, reply_to: str | None = None, callback_data: str | None = None
    ) -> str:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": body},
        }
        if reply_to:
            payload["context"] = {"message_id": reply_to}
        if callback_data:
            payload["biz_opaque_callback_data"] = callback_data  # echoed back in status webhooks
        return _whatsapp_id(self._post(f"{phone_number_id}/messages", payload))

    def whatsapp_template(
        self, phone_number_id: str, to: str, name: str, language: str, *, callback_data: str | None = None
    ) -> str:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {"name": name, "language": {"code": language}},
        }
        if callback_data:
            payload["biz_opaque_callback_data"] = callback_data
        return _whatsapp_id(self._post(f"{phone_number_id}/messages", payload))

    # -- Messenger and Instagram messaging -----------------------------------------------

    def send_message(self, recipient_id: str, text: str, *, tag: str | None = None) -> str:
        payload: dict[str, Any] = {
            "recipient": {"id": recipient_id},
            "messaging_type": "RESPONSE",
            "message": {"text": text},
        }
        if tag:  # e.g. HUMAN_AGENT: a person answering after the 24-hour window (up to 7 days)
            payload.update(messaging_type="MESSAGE_TAG", tag=tag)
        data = self._post("me/messages", payload)
        return str(data.get("message_id") or "")

    def private_reply(self, account_id: str, comment_id: str, text: str) -> str:
        data = self._post(
            f"{account_id}/messages", {"recipient": {"comment_id": comment_id}, "message": {"text": text}}
        )
        return str(data.get("message_id") or "")

    # -- comments ----------------------------------------------------------------------

    def comment_reply(self, platform: str, comment_id: str, text: str) -> str:
        edge = "replies" if platform == "instagram" else "comments"
        return str(self._post(f"{comment_id}/{edge}", {"message": text}).get("id") or "")

    def hide_comment(self, platform: str, comment_id: str, *, hidden: bool = True) -> str:
        field = "hide" if platform == "instagram" else "is_hidden"
        data = self._post(comment_id, params={field: "true" if hidden else "false"})
        if data.get("success") is False:
            raise PermanentDeliveryError("rejected", "Graph answered success=false to hiding the comment")
        return ""


def _whatsapp_id(data: dict[str, Any]) -> str:
    messages = data.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return str(messages[0].get("id") or "")
    return ""
