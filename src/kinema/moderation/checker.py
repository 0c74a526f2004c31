"""Checking prompts against a policy, then against pluggable classifiers.

How a term matches (all on ``normalize(text)``, whose tokens are separated by single spaces):

* **Whole tokens only.** A match must start where a token starts and end where a token ends, so the blocked
  ``ass`` never fires inside ``class``, ``glass`` or ``assassins``, nor ``rapist`` inside ``therapist``. A few
  inflections may follow a term (``s es d ed er ers ing``: ``kill`` matches ``kills``, ``killing``), never an
  arbitrary tail.
* **Spacing evasion without Scunthorpe.** A space inside a match is accepted only between two *single-character*
  tokens (``k i l l``, ``k.i.l.l``, ``k_i-l-l`` all normalise to ``k i l l``) or where the term itself has a
  word break (``child porn`` also matches ``child-porn`` and ``childporn``). Two ordinary words are never glued
  together, so ``a class`` or ``go re-enter`` cannot spell ``ass`` or ``gore``. Inside a run of single letters
  word ends are unknowable, so any term spelled there is blocked (``I k i l l``, ``k i l l e r``); benign prompts
  rarely spell words out letter by letter, and fragments longer than one letter (``ki ll``) are left to
  classifiers.
* **Leetspeak** is a set of accepted lookalikes per letter (``a``: ``4 @``; ``s``: ``5 $``; both ``i`` and ``l``:
  ``1 ! |``). A match made only of digits is a number, not a word, and is ignored (``room 455`` is not ``ass``).
* **Exceptions** un-block only the matches that lie inside an exception phrase: with exception ``al gore`` the
  text ``al gore`` passes but ``al gore loves gore`` is blocked by the second ``gore``.
* **Patterns** are regular expressions (case-insensitive) searched in the normalised text and in its
  ``letters_view`` (leet read as letters); a match lying inside an exception is ignored the same way.

Categories are tried in policy order, terms before patterns; the first match decides. Classifiers run only when
the policy allows the text, in the order given; the first that blocks decides.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from kinema.moderation.normalize import LEET, letters_view, normalize
from kinema.moderation.policy import Category, Policy


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check. ``matched`` is the normalised policy term (or the pattern, as written, or a
    classifier's label) that decided a refusal: never text taken from the prompt."""

    allowed: bool
    category: str | None
    matched: str | None


ALLOWED: Final = Verdict(allowed=True, category=None, matched=None)


class Classifier(Protocol):
    """A pluggable, typically model-based check, consulted only for text the policy allows.

    ``classify`` receives the prompt as the caller sent it (models read natural text better than the canonical
    form). A refusal must name a category and must not put prompt text in ``matched`` (use a label). Exceptions
    propagate to the caller of ``Moderator.check``, which should then fail the request rather than let it through.
    """

    def classify(self, text: str) -> Verdict: ...


@dataclass(frozen=True)
class AuditRecord:
    """What may be logged about a refusal. With the category's ``log_prompt = false`` only the category, the
    policy version and the prompt's SHA-256 are kept (``matched`` and ``prompt`` are None)."""

    policy_version: str
    category: str
    matched: str | None
    prompt_sha256: str
    prompt: str | None


_SUFFIXES: Final = ("s", "es", "d", "ed", "er", "ers", "ing")
# A space inside a match only between two single-character tokens: the character before the space is preceded by
# a space (or the start), the one after it is followed by a space (or the end).
_SOFT_JOIN: Final = r"(?:(?<!\S\S) (?=\S(?: |$)))?"


def _lookalike_classes() -> dict[str, str]:
    classes: dict[str, set[str]] = {}
    for char, letter in LEET.items():
        classes.setdefault(letter, {letter}).add(char)
    # 1, ! and | pass for l as well as i. The letters i and l themselves stay distinct: "heil" must not block "hell"
    # (a capital I posing as l is resolved by normalize, from the case of its neighbours).
    classes["l"] = {"l"} | (classes["i"] - {"i"})
    return {letter: "[" + "".join(re.escape(c) for c in sorted(chars)) + "]" for letter, chars in classes.items()}


_CLASSES: Final = _lookalike_classes()


def _char(c: str) -> str:
    return _CLASSES.get(c, re.escape(c))


def _word(word: str) -> str:
    return _SOFT_JOIN.join(_char(c) for c in word)


def phrase_regex(phrase: str) -> re.Pattern[str]:
    """The regex that finds ``phrase`` (a term or exception, as written) in normalised text, per the module rules."""
    words = letters_view(normalize(phrase)).split(" ")
    suffixes = "|".join("".join(_char(c) for c in s) for s in _SUFFIXES)
    return re.compile(rf"(?<!\S){' ?'.join(_word(w) for w in words)}(?:{suffixes})?(?!\S)")


def _matches(regex: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Every non-empty match, overlapping ones included: an ignored match must not hide one that counts."""
    pos = 0
    while (m := regex.search(text, pos)) is not None:
        if m.end() > m.start():
            yield m
        pos = m.start() + 1


def _is_word(span: str) -> bool:
    return any(c.isalpha() or c in "@$" for c in span)


@dataclass(frozen=True)
class _CompiledCategory:
    category: Category
    terms: tuple[tuple[str, re.Pattern[str]], ...]
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    exceptions: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, category: Category) -> _CompiledCategory:
        return cls(
            category=category,
            terms=tuple((normalize(t), phrase_regex(t)) for t in category.terms),
            patterns=tuple((p, re.compile(p, re.IGNORECASE)) for p in category.patterns),
            exceptions=tuple(phrase_regex(e) for e in category.exceptions),
        )

    def first_match(self, normalized: str, letters: str) -> str | None:
        """The normalised term or pattern that blocks the text, or None."""
        excepted = [m.span() for regex in self.exceptions for m in _matches(regex, normalized)]

        def counts(m: re.Match[str]) -> bool:
            start, end = m.span()
            return not any(a <= start and end <= b for a, b in excepted)

        for term, regex in self.terms:
            if any(_is_word(m.group()) and counts(m) for m in _matches(regex, normalized)):
                return term
        for pattern, regex in self.patterns:
            if any(counts(m) for view in (normalized, letters) for m in _matches(regex, view)):
                return pattern
        return None


class Moderator:
    """Checks texts against a policy and then classifiers. Immutable after construction; safe to share."""

    def __init__(self, policy: Policy, classifiers: Sequence[Classifier] = ()) -> None:
        self.policy = policy
        self.classifiers = tuple(classifiers)
        self._compiled = tuple(_CompiledCategory.compile(c) for c in policy.categories)

    def check(self, text: str) -> Verdict:
        """``ALLOWED``, or the refusal of the first category (policy order) or classifier that blocks ``text``.

        The policy is checked first; classifiers are consulted only when it allows the text. A classifier refusal
        without a category is labelled with the classifier's class name.
        """
        normalized = normalize(text)
        letters = letters_view(normalized)
        for compiled in self._compiled:
            matched = compiled.first_match(normalized, letters)
            if matched is not None:
                return Verdict(allowed=False, category=compiled.category.name, matched=matched)
        for classifier in self.classifiers:
            verdict = classifier.classify(text)
            if not verdict.allowed:
                return verdict if verdict.category else replace(verdict, category=type(classifier).__name__)
        return ALLOWED

    def audit_record(self, text: str, verdict: Verdict) -> AuditRecord:
        """What to log for the refusal ``verdict`` of ``text``, honouring the category's ``log_prompt``.

        Refusals by classifiers whose category is not in the policy never keep the prompt. Raises ValueError
        for a verdict that allows the text.
        """
        if verdict.allowed or verdict.category is None:
            raise ValueError("audit records are for refusals")
        category = self.policy.category(verdict.category)
        keep = category is not None and category.log_prompt
        return AuditRecord(
            policy_version=self.policy.version,
            category=verdict.category,
            matched=verdict.matched if keep else None,
            prompt_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            prompt=text if keep else None,
        )
