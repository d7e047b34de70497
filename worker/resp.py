"""Redis's protocol (RESP) for the commands replyguard packs itself (``store.Evalsha``: a batch's
script calls, ~27 arguments a message), written as redis-py's ``pack_command`` writes them: str as
UTF-8, bytes as they are, int and float as their text, anything else refused.

An argument packed by a Python loop costs ~1.9k instructions (CPython's ~40 bytecodes for the type
dispatch, the encoding, the length line and three appends), and a batch of 256 has ~7,000. When the
keys of a script call are all exactly ``str`` and its arguments all exactly ``bytes`` (a persist
call's JSON, an SLA start's) or all ``str`` (a context read's ids), each list is packed by C-level
passes instead: the exact types by ``set(map(type,
…))``, the lengths by ``map``, each length's line looked up, lines and values interleaved by slice
assignment, and one ``"\\r\\n".join``. The keys' text is encoded once, after the join, and only when
it is all ASCII (then a character is a byte, so lengths counted in characters are the bytes'
lengths); otherwise, and for arguments of other or mixed types, the loop packs them. The calls of
1,536 benchmark messages (context reads, persist chunks, SLA starts), packed alone: ~52k → ~33k
instructions a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

#: the RESP length lines of arguments shorter than 1,024 bytes (keys, numbers, ids, most JSON
#: entries), looked up instead of formatted: ~40 kB a process
_RESP_LENGTHS = [b"$%d\r\n" % n for n in range(1024)]
#: the same without their CRLF (the join adds it), as text for keys and as bytes for arguments up to
#: 4 kB (a decision's JSON is ~2 kB, an SLA timer's ~1.4 kB): ~250 kB a process
_TEXT_HEADS = ["$%d" % n for n in range(1024)]
_BYTES_HEADS = [b"$%d" % n for n in range(4096)]
_ONLY_STR = {str}
_ONLY_BYTES = {bytes}
#: the length lines under 1,024 bytes without their line end, for :func:`_resp_strings` (its cut)
_RESP_HEADS = _BYTES_HEADS[:1024]


def _resp_argument(arg: Any) -> bytes:
    """An argument that is not exactly str or bytes, as redis-py packs it (a str or bytes subclass,
    an int or float as its text; bool and anything else refused)."""
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        return repr(arg).encode()
    if isinstance(arg, bytes):
        return arg
    raise TypeError(f"a script argument must be str, bytes, int or float, not {type(arg).__name__}")


def _bulk_loop(args: Sequence[Any]) -> bytes:
    """``args`` as RESP bulk strings, one by one: dispatched on the exact type, the length line
    looked up and the argument appended as it is (``b"$%d\r\n%s\r\n" % ...`` formatted and copied
    every argument: ~40 % more instructions)."""
    parts: list[bytes] = []
    append = parts.append
    lengths = _RESP_LENGTHS
    for arg in args:
        kind = type(arg)
        if kind is str:
            arg = arg.encode()
        elif kind is not bytes:
            arg = repr(arg).encode() if kind is int or kind is float else _resp_argument(arg)
        size = len(arg)
        append(lengths[size] if size < 1024 else b"$%d\r\n" % size)
        append(arg)
        append(b"\r\n")
    return b"".join(parts)


def resp_command(args: Sequence[Any]) -> bytes:
    """One command in RESP, as redis-py's ``pack_command`` writes it for these arguments (str as
    UTF-8, int and float as their text), ~3x cheaper than redis-py (which checks and encodes each
    argument through several calls). A command of strings only, each under 1,024 bytes, is made
    without a Python step an argument (:func:`_resp_strings`)."""
    if _ONLY_STR.issuperset(map(type, args)):
        try:
            return _resp_strings(args)
        except IndexError:  # an argument of 1,024 bytes or more
            pass
    return b"*%d\r\n" % len(args) + _bulk_loop(args)


def _resp_strings(args: Sequence[Any]) -> bytes:
    """``resp_command(args)`` when every argument is exactly a str, each under 1,024 bytes in UTF-8
    (IndexError past the looked-up lengths): each encoded, its length line looked up and all joined
    by C loops."""
    encoded = list(map(str.encode, args))
    heads = map(_RESP_HEADS.__getitem__, map(len, encoded))
    return b"*%d\r\n%b\r\n" % (len(args), b"\r\n".join(chain.from_iterable(zip(heads, encoded, strict=True))))


def _interleaved(pieces: list[Any], start: int, values: Sequence[Any], heads: list[Any], form: Any) -> None:
    """Put each of ``values`` after its length line into ``pieces`` from ``start`` on, for a join with
    CRLF. ``heads``: the length lines of values shorter than it holds; longer ones are ``form % size``."""
    end = start + 2 * len(values)
    try:
        pieces[start:end:2] = map(heads.__getitem__, map(len, values))
    except IndexError:  # a value longer than the table
        pieces[start:end:2] = [heads[n] if n < len(heads) else form % n for n in map(len, values)]
    pieces[start + 1 : end : 2] = values


def evalsha_command(sha: str, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
    """``EVALSHA <sha> <number of keys> *keys *args`` in RESP: the bytes of
    ``resp_command(("EVALSHA", sha, len(keys), *keys, *args))``, with the keys packed by one join when
    they are all exactly str and ASCII (as keys are), and the arguments when they are all exactly
    bytes (as a persist call's or an SLA start's are) or all exactly str and ASCII (a context read's)."""
    total = 3 + len(keys) + len(args)
    prefix = None  # the command up to its last key, without the CRLF after it
    if type(sha) is str and set(map(type, keys)) <= _ONLY_STR:
        count = str(len(keys))
        text: list[str] = [""] * (5 + 2 * len(keys))
        text[:5] = ["*%d\r\n$7\r\nEVALSHA" % total, _TEXT_HEADS[len(sha)], sha, _TEXT_HEADS[len(count)], count]
        _interleaved(text, 5, keys, _TEXT_HEADS, "$%d")
        joined = "\r\n".join(text)
        if joined.isascii():
            prefix = joined.encode()
    if prefix is None:
        prefix = resp_command(("EVALSHA", sha, len(keys), *keys))[:-2]
        prefix = b"*%d" % total + prefix[prefix.index(b"\r\n") :]
    kinds = set(map(type, args))
    if kinds <= _ONLY_BYTES:
        pieces: list[bytes] = [b""] * (2 + 2 * len(args))  # the last stays empty: the join ends with CRLF
        pieces[0] = prefix
        _interleaved(pieces, 1, args, _BYTES_HEADS, b"$%d")
        return b"\r\n".join(pieces)
    if kinds <= _ONLY_STR:  # a context read's ids and numbers
        text = [""] * (1 + 2 * len(args))
        _interleaved(text, 0, args, _TEXT_HEADS, "$%d")
        joined = "\r\n".join(text)
        if joined.isascii():
            return prefix + b"\r\n" + joined.encode()
    return prefix + b"\r\n" + _bulk_loop(args)
