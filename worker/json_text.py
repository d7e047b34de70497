"""The head of a message's outbox entries as JSON text, written as pydantic-core's ``to_json``
writes it, from an f-string.

``to_json`` of the head's seven fields (~14k instructions with the dict) is one of a decision's
largest costs after its own JSON. Its values are str (the post id may be null), so the text is an
f-string of each one quoted by ``json``'s C ``encode_basestring`` (~8k), which escapes exactly what
pydantic-core's serde_json escapes: ``"`` and ``\\``, the control characters U+0000–U+001F (``\\b``
``\\t`` ``\\n`` ``\\f`` ``\\r`` in their short forms, the others as ``\\u00xx`` in lowercase), nothing
else (non-ASCII, DEL, U+2028 as they are); tests/test_outbox_head.py compares the two on every
character below U+3000 and on the demo and benchmark traffic. A value that is not a str makes the
quoting raise TypeError, and a lone surrogate makes ``.encode()`` raise UnicodeEncodeError (which
``to_json`` refuses too): the caller then writes the head with ``to_json`` as before.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _quoted  # the C function (the pure-Python one writes the same)
from typing import Any


def outbox_head(ev: dict[str, Any]) -> bytes:
    """``to_json(store._outbox_head(event))`` with a comma instead of its closing brace (``ev``: the
    event's ``__dict__``). TypeError when a value is not a str (the post id: nor None),
    UnicodeEncodeError for a lone surrogate."""
    post = ev["post_id"]
    return (
        f'{{"brand":{_quoted(ev["brand"])},"message_id":{_quoted(ev["id"])},"platform":{_quoted(ev["platform"])},'
        f'"kind":{_quoted(ev["kind"])},"conversation_id":{_quoted(ev["conversation_id"])},'
        f'"post_id":{"null" if post is None else _quoted(post)},"author_id":{_quoted(ev["author"].__dict__["id"])},'
    ).encode()
