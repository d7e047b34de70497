"""Checks every LLM draft must pass before it may replace the approved template text.

The approved, rendered template is the source of truth. A draft is refused when any
check fails; each check has a stable name recorded in the decision:

``no_placeholders``          no ``{name}``, ``{{Order Number}}``, ``[Customer Name]`` or ``<name>`` left over
``facts_kept``               every URL, e-mail, phone number, order id and number (prices, dates,
                             times, quantities) of the template appears unchanged
``no_new_facts``             no URL, e-mail address, phone number or code that is not in the template,
                             and no number that is in neither the template nor the customer's message
                             (a customer's own link or phone number is never repeated: that would let
                             anyone make the brand publish their link)
``no_new_offers``            no discount/coupon/free/refund-style word the template does not use
``no_codes``                 no code-like token (letters and digits, e.g. SAVE90) from nowhere
``no_copied_customer_text``  no long stretch of the customer's message or earlier messages repeated
``same_language``            written in the customer's language
``length``                   between 40 % of the template's length and the configured maximum
``not_abusive``              the brand's abuse classifier scores it below its thresholds

Customer text is data: whatever it says, a draft that introduces a number, a link,
an offer or a copied instruction fails one of these checks.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from worker.entities import EMAIL, PHONE, URL
from worker.language import detect_language
from worker.policy import Policy

PLACEHOLDER = re.compile(r"\{[^{}\n]{1,40}\}|\[\[?[A-Za-z][A-Za-z _]{1,40}\]\]?|<[A-Za-z][A-Za-z _]{1,30}>")
NUMBER = re.compile(r"\d+(?:[.,:/\-–—~〜]\d+)*")  # 5–10 and 9:00〜18:00 are one fact each
CODE = re.compile(r"\b(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{4,}\b")
OFFER_WORDS = re.compile(
    r"(?i)\b(?:discount(?:s|ed)?|coupons?|vouchers?|promo(?:tion)?s?|codes?|free(?: of charge| shipping)?|"
    r"refunds?|refunded|compensat\w*|gifts?|store credit|\d+\s*% off)\b"
    r"|割引|クーポン|無料|返金|値引|プレゼント|補償|ポイント"
)
#: "free" as in "feel free", "free to", "hands-free" is not an offer.
NOT_OFFERS = re.compile(r"(?i)\bfeel free\b|\bfree to\b|-free\b")
#: Shortest stretch of the customer's message a draft may not repeat.
COPY_CHARS = 24


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def facts(text: str, policy: Policy) -> dict[str, set[str]]:
    """URLs, e-mails, phones, entity values and numbers in ``text`` (NFKC-normalised)."""
    text = _norm(text)
    found = {
        "url": {m.group(0).rstrip(".,!?)、。") for m in URL.finditer(text)},
        "email": {m.group(0) for m in EMAIL.finditer(text)},
        "phone": {re.sub(r"\D", "", m.group(0)) for m in PHONE.finditer(text)},
    }
    for name, spec in policy.entities.items():
        found[name] = {spec.value(m) for m in spec.find(text)}
    stripped = text
    for url in found["url"] | found["email"]:
        stripped = stripped.replace(url, " ")
    found["number"] = {m.group(0).rstrip(".,:/-") for m in NUMBER.finditer(stripped)}
    return found


def _offers(text: str) -> set[str]:
    low = NOT_OFFERS.sub(" ", _norm(text).casefold())
    return {m.group(0).strip() for m in OFFER_WORDS.finditer(low)}


def _longest_copy(draft: str, customer: str, template: str) -> str:
    a, b = _norm(draft).casefold(), _norm(customer).casefold()
    if not a or not b:
        return ""
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    copied = a[match.a : match.a + match.size].strip()
    return "" if copied in _norm(template).casefold() else copied


def check_draft(
    draft: str,
    *,
    template_text: str,
    customer_text: str,
    language: str,
    policy: Policy,
    max_chars: int,
    abuse: Callable[[str], dict[str, float]] | None = None,
    abuse_thresholds: dict[str, float] | None = None,
    earlier: list[str] = (),
) -> list[Check]:
    """Run every check on ``draft``; all must pass for it to be sent."""
    checks: list[Check] = []
    left = PLACEHOLDER.findall(draft)
    checks.append(Check("no_placeholders", not left, f"left over: {left[:3]}" if left else ""))

    want, got, theirs = facts(template_text, policy), facts(draft, policy), facts(customer_text, policy)
    missing = {k: sorted(v - got.get(k, set())) for k, v in want.items() if v - got.get(k, set())}
    checks.append(Check("facts_kept", not missing, f"missing or changed: {missing}" if missing else ""))
    # only plain numbers may come from the customer's message; links, addresses and phones only from the template
    from_customer = {"number": theirs.get("number", set())}
    new = {k: sorted(v - want.get(k, set()) - from_customer.get(k, set())) for k, v in got.items()
           if v - want.get(k, set()) - from_customer.get(k, set())}
    checks.append(Check("no_new_facts", not new, f"not in the template: {new}" if new else ""))

    offers = sorted(_offers(draft) - _offers(template_text))
    checks.append(Check("no_new_offers", not offers, f"added: {offers}" if offers else ""))
    codes = sorted(set(CODE.findall(_norm(draft))) - set(CODE.findall(_norm(template_text))))
    checks.append(Check("no_codes", not codes, f"code-like tokens: {codes[:5]}" if codes else ""))

    copied = max((_longest_copy(draft, text, template_text) for text in [customer_text, *earlier]), key=len, default="")
    too_long_copy = len(copied) >= COPY_CHARS
    checks.append(Check("no_copied_customer_text", not too_long_copy,
                        f"repeats {copied[:60]!r} from the conversation" if too_long_copy else ""))

    detected = detect_language(draft, None, policy.languages, policy.default_language)
    checks.append(Check("same_language", detected == language, f"written in {detected!r}, customer wrote {language!r}"
                        if detected != language else ""))

    low = int(0.4 * len(template_text))
    ok_length = low <= len(draft) <= max_chars
    checks.append(Check("length", ok_length, "" if ok_length else f"{len(draft)} characters; allowed {low}–{max_chars}"))

    if abuse is not None and abuse_thresholds:
        scores = abuse(draft)
        over = {k: round(scores.get(k, 0.0), 3) for k, t in abuse_thresholds.items() if scores.get(k, 0.0) >= t}
        checks.append(Check("not_abusive", not over, f"abuse scores {over}" if over else ""))
    return checks


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.passed]
