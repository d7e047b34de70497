"""Checks every LLM draft must pass before it may replace the approved template text.

The approved, rendered template is the source of truth. Drafts are written by a model that
may be confused or adversarial, so every comparison is made on the canonical form of both
texts (:func:`worker.canonical.canonical`: NFKC, invisible and bidi characters removed,
look-alike letters mapped, digits of every script and numbers written in words as digits).
A draft is refused when any check fails; each check has a stable name recorded in the decision:

``no_placeholders``          no ``{name}``, ``{{Order Number}}``, ``[Customer Name]`` or ``<name>`` left over
``plain_text``               no invisible, zero-width or bidi characters and no words mixing Latin with
                             look-alike letters of another script (``kоmorebi``) that the template lacks
``facts_kept``               every URL, e-mail, phone number, order id and number (prices, dates,
                             times, quantities) of the template appears unchanged
``no_new_facts``             no URL, e-mail address, phone number or code that is not in the template,
                             and no number (in digits of any script or in words: "three", 三, さん日)
                             that is in neither the template nor the customer's message (a customer's
                             own link or phone number is never repeated)
``no_links``                 every link or domain, with or without a scheme (``evil.example``, ``www.``,
                             ``evil[.]example``, ``evil dot com``, IP addresses, markdown and HTML links)
                             is on the template's domains or the policy's ``guardrails.allowed_domains``;
                             no link markup the template lacks
``no_new_offers``            no offer term (discount, refund, free, 半額, …: the policy's term lists)
                             the template does not use
``no_new_promises``          no promise term (guarantee, tomorrow, 必ずお届け, …) the template does not
                             use, and no commitment ("we'll send", "it will arrive", 手配いたします)
                             whose verb the template does not have
``no_codes``                 no code-like token (letters and digits, e.g. SAVE90) from nowhere
``no_copied_customer_text``  no long stretch of the customer's message or earlier messages repeated
``same_language``            written in the customer's language: script rules (kana is Japanese), and a
                             statistical identifier (py3langid) over every added sentence
``length``                   between 40 % of the template's length and the configured maximum
``not_abusive``              no insult term, and the brand's abuse classifier scores it below its thresholds

Customer text is data: whatever it says, a draft that introduces a number, a link,
an offer, a promise or a copied instruction fails one of these checks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worker.canonical import canonical, hidden_characters, mixed_script_words
from worker.entities import EMAIL, PHONE, URL
from worker.language import detect_language, identify
from worker.policy import Policy

PLACEHOLDER = re.compile(r"\{[^{}\n]{1,40}\}|\[\[?[A-Za-z][A-Za-z _]{1,40}\]\]?|<[A-Za-z][A-Za-z _]{1,30}>")
NUMBER = re.compile(r"\d+(?:[.,:/\-–—~〜]\d+)*")  # 5–10 and 9:00〜18:00 are one fact each
CODE = re.compile(r"\b(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{4,}\b")
#: "free" as in "feel free", "free to", "hands-free" is not an offer.
NOT_OFFERS = re.compile(r"(?i)\bfeel free\b|\bfree to\b|-free\b")
#: Shortest stretch of the customer's message a draft may not repeat.
COPY_CHARS = 24

# -- links ----------------------------------------------------------------------------------------

#: Top-level domains recognised without a scheme: every two-letter (country) code and these.
GENERIC_TLDS = frozenset(
    "com net org info biz edu gov mil int xyz top site online shop store link click app dev page web blog news "
    "live life world today space website tech cloud email io ai me ly gl to cc tv co jp uk us ru cn de fr "
    "example test local onion zip mov icu club vip win bid loan work date party review stream download racing "
    "men science trade webcam gdn kim country cricket accountant faith".split()
)
_DOMAIN = re.compile(
    r"(?<![\w@.\-])((?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,24}|xn--[a-z0-9\-]{1,59}))(?![\w\-]|\.[a-z0-9])"
)
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_SCHEME = re.compile(r"(?i)\b(?:https?|ftp|javascript|data|mailto|tel|sms|file|intent|market|whatsapp|line|tg)\s*:")
_MARKUP = re.compile(
    r"\[[^\]\n]{0,200}\]\s*\([^)\n]{0,500}\)|<\s*/?\s*[a-z][a-z0-9]*(?:\s[^<>]{0,500})?>|<(?:https?|www)[^>\s]*>",
    re.IGNORECASE,
)
#: Dots written out or bracketed to slip a domain past a filter: evil[.]com, evil(dot)com, evil dot com, evil . com.
_OBFUSCATED_DOT = re.compile(
    r"\s*[\[({]\s*(?:\.|dot)\s*[\])}]\s*|\s+dot\s+|\s+\.\s*(?=[a-z]{2,6}\b)|(?<=[a-z0-9])\.\s+(?=(?:com|net|org|io|ly|me|co|jp|xyz|shop|store|app|link|click|top|site|online|info|biz|ru|cn)\b)"
)


def _link_view(text: str) -> str:
    """The canonical text with obfuscated dots joined, lower-cased: where domains are searched."""
    return _OBFUSCATED_DOT.sub(".", canonical(text, words=False).casefold())


def domains(text: str) -> set[str]:
    """Every domain or IP address written in ``text``, with or without a scheme."""
    view = _link_view(text)
    found = {
        m.group(1).rstrip(".")
        for m in _DOMAIN.finditer(view)
        if m.group(1).rsplit(".", 1)[-1] in GENERIC_TLDS
        or len(m.group(1).rsplit(".", 1)[-1]) == 2
        or m.group(1).rsplit(".", 1)[-1].startswith("xn--")
    }
    found |= set(_IPV4.findall(view))
    return found


def _allowed(domain: str, allowed: set[str]) -> bool:
    return any(domain == a or domain.endswith("." + a) for a in allowed)


# -- terms and commitments ----------------------------------------------------------------------

_EN_COMMITMENT = re.compile(
    r"\b(?:we|i|our team|someone|somebody|they|a colleague|our staff)(?:\s+(?:will|shall|are going to|am going to|"
    r"'re going to|promise to|guarantee to|commit to)|'ll|’ll)\s+(?:(?:definitely|certainly|personally|also|now|"
    r"happily|gladly|absolutely|surely|then|immediately|quickly|make sure to|be sure to|be (?:happy|glad|delighted|"
    r"pleased) to)\s+)*([a-z]+)"
    r"|\b(?:you|it|this|that|your [a-z]+|the [a-z]+|everything|they)(?:'ll|’ll|\s+will|\s+(?:is|are) going to)\s+"
    r"(?:(?:definitely|certainly|surely|also|then|now|soon|quickly)\s+)*([a-z]+)(?:\s+(?:an?|the|your|a full|full|by|on|in)?\s*([a-z]+))?"
)
_EN_HARMLESS = frozenset(
    {
        "help",
        "assist",
        "answer",
        "reply",
        "respond",
        "find",
        "need",
        "want",
        "see",
        "like",
        "love",
        "enjoy",
        "know",
        "can",
        "may",
    }
)
_JA_COMMITMENT = re.compile(
    r"([\u4e00-\u9fffァ-ヶー]{1,8})[ぁ-ゖ]{0,2}?(?:いたします|致します|させていただきます|させて頂きます|します|いたしました|できます)"
)
_JA_HARMLESS = frozenset({"案内", "説明", "紹介", "感謝", "失礼", "確認", "期待", "願", "お願", "祈"})


def _folded(text: str) -> str:
    return canonical(text).casefold()


def terms_found(text: str, policy: Policy, kind: str) -> set[str]:
    folded = _folded(text)
    if kind == "offer":
        folded = NOT_OFFERS.sub(" ", folded)
    return {f"{t}" for lst in policy.guardrails.lists() if lst.kind == kind for t in lst.found(folded)}


def _has_word(word: str, text: str) -> bool:
    """``word`` (or, for longer words, its first five letters: ship/shipped) starts a word of ``text``."""
    if len(word) <= 4:
        return re.search(rf"\b{re.escape(word)}\b", text) is not None
    return re.search(rf"\b{re.escape(word[:5])}", text) is not None


def commitments(draft: str, template: str) -> list[str]:
    """Commitments in ``draft`` whose verb (or its object) the template does not have."""
    d, t = _folded(draft), _folded(template)
    new = []
    for m in _EN_COMMITMENT.finditer(d):
        verb = m.group(1) or m.group(2)
        noun = m.group(3) if m.group(2) else None
        if verb in _EN_HARMLESS or _has_word(verb, t) or (noun and len(noun) > 3 and _has_word(noun, t)):
            continue
        new.append(m.group(0).strip())
    for m in _JA_COMMITMENT.finditer(d):
        core = m.group(1)
        if core in _JA_HARMLESS or core in t or core[-2:] in t:
            continue
        new.append(m.group(0))
    return new


# -- facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _norm(text: str) -> str:
    return canonical(text, words=False)


def facts(text: str, policy: Policy) -> dict[str, set[str]]:
    """URLs, e-mails, phones, entity values and numbers in ``text`` (canonical form, numbers in words as digits)."""
    text = canonical(text)
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


def _longest_copy(draft: str, customer: str, template: str) -> str:
    a, b = _norm(draft).casefold(), _norm(customer).casefold()
    if not a or not b:
        return ""
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    copied = a[match.a : match.a + match.size].strip()
    return "" if copied in _norm(template).casefold() else copied


def link_problems(draft: str, template: str, policy: Policy) -> list[str]:
    allowed = set(policy.guardrails.allowed_domains) | domains(template)
    problems = [f"domain {d}" for d in sorted(domains(draft)) if not _allowed(d, allowed)]
    view_t = _norm(template)
    markup = [m.group(0)[:60] for m in _MARKUP.finditer(_norm(draft)) if m.group(0) not in view_t]
    problems += [f"link markup {m!r}" for m in markup]
    schemes = {m.group(0).lower().replace(" ", "") for m in _SCHEME.finditer(_norm(draft))}
    schemes -= {m.group(0).lower().replace(" ", "") for m in _SCHEME.finditer(view_t)}
    problems += [f"scheme {s}" for s in sorted(schemes)]
    return problems


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff66-\uff9f]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")
_NOT_WORDS = re.compile(r"(?i)\b(?:https?://|www\.)\S+|\S+@\S+|\b[\w.-]+\.[a-z]{2,24}\b|[\d\W_]+")


def language_problem(draft: str, template: str, language: str, policy: Policy, name: str | None) -> str:
    """Why ``draft`` is not (only) in ``language``, or ""."""
    text, tmpl = _norm(draft), _norm(template)
    added = [s.strip() for s in _SENTENCE.findall(text) if s.strip() and s.strip() not in tmpl]
    if name:
        added = [s.replace(name, " ") for s in added]
    extra = tuple(policy.languages)
    if language == "ja":
        if _KANA.search(tmpl) and not _KANA.search(text):
            return "no Japanese (kana) in the draft"
        for sentence in added:
            letters = _NOT_WORDS.sub(" ", sentence)
            if len(_LATIN_LETTER.findall(letters)) >= 12 and not _CJK.search(letters):
                lang, prob = identify(letters, extra)
                return f"a sentence in {lang if prob >= 0.5 else 'a Latin-script language'}: {sentence[:60]!r}"
        return ""
    if language in ("zh", "ko"):
        detected = detect_language(text, None, policy.languages, policy.default_language)
        return "" if detected == language else f"written in {detected!r}"
    if _CJK.search(text) and not _CJK.search(tmpl):
        return f"Japanese/Chinese/Korean characters in a {language!r} reply"
    whole = _NOT_WORDS.sub(" ", " ".join(added))
    if len(_LATIN_LETTER.findall(whole)) >= 12:
        lang, prob = identify(whole, extra)
        if lang != language and prob >= 0.8:
            return f"the added text reads as {lang!r} (p={prob:.2f})"
    for sentence in added:
        letters = _NOT_WORDS.sub(" ", sentence)
        if len(_LATIN_LETTER.findall(letters)) >= 12:
            lang, prob = identify(letters, extra)
            if lang != language and prob >= 0.9:
                return f"a sentence in {lang!r} (p={prob:.2f}): {sentence[:60]!r}"
    return ""


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
    earlier: Sequence[str] = (),
    customer_name: str | None = None,
) -> list[Check]:
    """Run every check on ``draft``; all must pass for it to be sent."""
    checks: list[Check] = []
    left = PLACEHOLDER.findall(draft)
    checks.append(Check("no_placeholders", not left, f"left over: {left[:3]}" if left else ""))

    hidden = sorted(set(hidden_characters(draft)) - set(hidden_characters(template_text)))
    lookalike = sorted(set(mixed_script_words(draft)) - set(mixed_script_words(template_text)))
    plain = not hidden and not lookalike
    checks.append(
        Check(
            "plain_text",
            plain,
            "" if plain else f"invisible characters {hidden[:5]}; look-alike letters in {lookalike[:3]}",
        )
    )

    want, got, theirs = facts(template_text, policy), facts(draft, policy), facts(customer_text, policy)
    missing = {k: sorted(v - got.get(k, set())) for k, v in want.items() if v - got.get(k, set())}
    checks.append(Check("facts_kept", not missing, f"missing or changed: {missing}" if missing else ""))
    # only plain numbers may come from the customer's message; links, addresses and phones only from the template
    from_customer = {"number": theirs.get("number", set())}
    new = {
        k: sorted(v - want.get(k, set()) - from_customer.get(k, set()))
        for k, v in got.items()
        if v - want.get(k, set()) - from_customer.get(k, set())
    }
    checks.append(Check("no_new_facts", not new, f"not in the template: {new}" if new else ""))

    links = link_problems(draft, template_text, policy)
    checks.append(Check("no_links", not links, f"not allowed: {links[:5]}" if links else ""))

    offers = sorted(terms_found(draft, policy, "offer") - terms_found(template_text, policy, "offer"))
    checks.append(Check("no_new_offers", not offers, f"added: {offers[:5]}" if offers else ""))
    promises = sorted(terms_found(draft, policy, "promise") - terms_found(template_text, policy, "promise"))
    committed = commitments(draft, template_text)
    checks.append(
        Check(
            "no_new_promises",
            not promises and not committed,
            f"promise terms {promises[:5]}; commitments the template does not make {committed[:3]}"
            if promises or committed
            else "",
        )
    )
    codes = sorted(set(CODE.findall(_norm(draft))) - set(CODE.findall(_norm(template_text))))
    checks.append(Check("no_codes", not codes, f"code-like tokens: {codes[:5]}" if codes else ""))

    copied = max((_longest_copy(draft, text, template_text) for text in [customer_text, *earlier]), key=len, default="")
    too_long_copy = len(copied) >= COPY_CHARS
    checks.append(
        Check(
            "no_copied_customer_text",
            not too_long_copy,
            f"repeats {copied[:60]!r} from the conversation" if too_long_copy else "",
        )
    )

    wrong = language_problem(draft, template_text, language, policy, customer_name)
    checks.append(Check("same_language", not wrong, f"customer wrote {language!r}; {wrong}" if wrong else ""))

    low = int(0.4 * len(template_text))
    ok_length = low <= len(draft) <= max_chars
    checks.append(
        Check("length", ok_length, "" if ok_length else f"{len(draft)} characters; allowed {low}–{max_chars}")
    )

    insults = sorted(terms_found(draft, policy, "insult") - terms_found(template_text, policy, "insult"))
    over: dict[str, float] = {}
    if abuse is not None and abuse_thresholds:
        scores = abuse(canonical(draft, words=False))
        over = {k: round(scores.get(k, 0.0), 3) for k, t in abuse_thresholds.items() if scores.get(k, 0.0) >= t}
    checks.append(
        Check(
            "not_abusive",
            not over and not insults,
            f"abuse scores {over}; insult terms {insults[:5]}" if over or insults else "",
        )
    )
    return checks


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.passed]
