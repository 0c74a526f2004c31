"""Matching rules: evasions are caught, words that merely contain a term are not, exceptions and patterns work."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

from kinema.moderation.checker import ALLOWED, Moderator, Verdict
from kinema.moderation.normalize import normalize
from kinema.moderation.policy import Policy, parse_policy


@pytest.mark.parametrize(
    "prompt",
    [
        # case, spacing, punctuation
        "kill",
        "KILL him",
        "KiLl",
        "k i l l",
        "k  i \t l \n l",
        "k.i.l.l",
        "k_i-l-l",
        "k/i/l/l",
        "k*i*l*l",
        "please k i l l him",
        "I k i l l",  # a letter-by-letter run may start with a real one-letter word
        "k i l l e r",
        # inflections
        "kills",
        "killing the guard",
        "killed",
        # leetspeak
        "k1ll",
        "ki11",
        "k!ll",
        "k|ll",
        "kiIl",  # capital I posing as l
        "KlLL",  # small l posing as I
        "k 1 l l",
        # Unicode confusables
        "кill",  # Cyrillic ka
        "kіll",  # Cyrillic i
        "ΚΙLL",  # Greek capitals
        "ｋｉｌｌ",  # fullwidth
        "𝐤𝐢𝐥𝐥",  # mathematical bold
        "𝓀𝒾𝓁𝓁",  # mathematical script
        "𝕜𝕚𝕝𝕝",  # double-struck
        "ᴋɪʟʟ",  # small capitals
        "ⓚⓘⓛⓛ",
        "🇰🇮🇱🇱",
        # zero-width and invisible characters
        "k\u200bill",
        "ki\u200c\u200dll",
        "ki\u2060l\ufeffl",
        "k\u00adill",
        "ki\u3164ll",
        # combining marks and diacritics
        "kíll",
        "k̶i̶l̶l̶",
        "k\u0300\u0301\u0302i\u0489ll",
        "kïłł",
        # combinations
        "Ｋ.1.ł.Ｌ",
        "ｋ і 1 ł",
    ],
)
def test_evasions_of_a_term_are_caught(moderator: Moderator, prompt: str) -> None:
    assert moderator.check(prompt) == Verdict(allowed=False, category="violence", matched="kill")


@pytest.mark.parametrize(
    ("prompt", "matched"),
    [
        ("you ass", "ass"),
        ("@ss", "ass"),
        ("a$$", "ass"),
        ("@$$", "ass"),
        ("4ss", "ass"),
        ("a s s", "ass"),
        ("сѕам", "csam"),  # every letter Cyrillic
        ("c$4m", "csam"),
        ("child porn", "child porn"),
        ("child-porn", "child porn"),
        ("childporn", "child porn"),
        ("CHILD_P0RN", "child porn"),
        ("c h i l d p o r n", "child porn"),
        ("the rapist", "rapist"),
        ("g0r3", "gore"),
    ],
)
def test_other_terms_and_multiword_terms(moderator: Moderator, prompt: str, matched: str) -> None:
    verdict = moderator.check(prompt)
    assert not verdict.allowed
    assert verdict.matched == matched


@pytest.mark.parametrize(
    "prompt",
    [
        "a class about glass",
        "assassin's creed scene",
        "an assassin in the embassy",
        "a bass guitar solo, passing the assessment",
        "the therapist's office",
        "therapists",
        "Scunthorpe United fans",
        "Sussex and Essex coastline",
        "a skillful killdeer near Killarney",  # kill inside words
        "a grasshopper on a massive compass",
        "a cla ss, a gl a ss",  # only single letters are glued together, never longer fragments
        "go re-enter the room",  # "go" + "re" spells a term; two words are never glued
        "room 455 at 4:55",  # numbers are not leetspeak
        "a 4k video at 1080p",
        "",
    ],
)
def test_words_that_contain_a_term_pass(moderator: Moderator, prompt: str) -> None:
    assert moderator.check(prompt) == ALLOWED


@pytest.mark.parametrize(
    ("prompt", "allowed"),
    [
        ("Al Gore gives a speech", True),
        ("AL G0RE on stage", True),
        ("a hiker in a gore-tex jacket", True),
        ("flip the kill switch", True),
        ("flip the kill switches", True),
        ("gore", False),
        ("al gore covered in gore", False),  # the second gore is outside the exception
        ("kill switch, then kill him", False),
        ("al gore-tex", True),
    ],
)
def test_exceptions_unblock_only_matches_inside_them(moderator: Moderator, prompt: str, allowed: bool) -> None:
    assert moderator.check(prompt).allowed is allowed


def test_patterns_block_and_report_the_pattern(moderator: Moderator, policy: Policy) -> None:
    bomb = policy.categories[0].patterns[0]
    assert moderator.check("How to make a pipe-bomb?") == Verdict(False, "violence", bomb)
    assert moderator.check("h0w t0 m4ke a b0mb") == Verdict(False, "violence", bomb)  # seen in the letters view
    assert moderator.check("14/88") == Verdict(False, "violence", policy.categories[0].patterns[1])
    assert moderator.check("a bomb squad documentary").allowed
    assert moderator.check("how to make a bomb squad costume").allowed  # the exception covers the pattern match


def test_an_excepted_match_does_not_hide_an_overlapping_one() -> None:
    policy = parse_policy('version = "1"\n[categories.c]\npatterns = ["go kill|kill it"]\nexceptions = ["go kill"]\n')
    assert Moderator(policy).check("go kill").allowed
    assert not Moderator(policy).check("go kill it").allowed  # "kill it" starts inside the excepted "go kill"


def test_first_category_in_policy_order_wins(moderator: Moderator) -> None:
    assert moderator.check("sex and gore").category == "violence"


@pytest.mark.parametrize(
    "prompt",
    ["kill the guard", "a scene where someone says k.1.l.l over and over", "you @ss, " * 50, "сѕам please"],
)
def test_matched_is_a_normalised_policy_term_never_prompt_text(
    moderator: Moderator, policy: Policy, prompt: str
) -> None:
    verdict = moderator.check(prompt)
    normalised_terms = {normalize(t) for c in policy.categories for t in c.terms}
    assert not verdict.allowed
    assert verdict.matched in normalised_terms
    assert verdict.matched != prompt and prompt not in (verdict.matched or "")


@dataclass
class _Recording:
    verdict: Verdict
    seen: list[str] = field(default_factory=list)

    def classify(self, text: str) -> Verdict:
        self.seen.append(text)
        return self.verdict


def test_classifiers_run_after_the_policy_and_can_block(policy: Policy) -> None:
    allow = _Recording(ALLOWED)
    block = _Recording(Verdict(False, "nsfw_model", "nsfw>0.9"))
    never = _Recording(Verdict(False, "other", "x"))
    moderator = Moderator(policy, [allow, block, never])

    assert moderator.check("a sunset over the sea") == Verdict(False, "nsfw_model", "nsfw>0.9")
    assert allow.seen == block.seen == ["a sunset over the sea"]  # the raw prompt, in order
    assert never.seen == []  # the first block wins

    assert moderator.check("k i l l") == Verdict(False, "violence", "kill")
    assert allow.seen == ["a sunset over the sea"]  # the policy blocked first; classifiers were not consulted


def test_classifiers_that_allow_leave_the_text_allowed(policy: Policy) -> None:
    assert Moderator(policy, [_Recording(ALLOWED)]).check("a sunset") == ALLOWED


def test_a_classifier_refusal_without_a_category_is_labelled(policy: Policy) -> None:
    verdict = Moderator(policy, [_Recording(Verdict(False, None, None))]).check("a sunset")
    assert verdict == Verdict(False, "_Recording", None)


def test_audit_record_honours_log_prompt(moderator: Moderator) -> None:
    prompt = "you a$$"
    record = moderator.audit_record(prompt, moderator.check(prompt))  # profanity: log_prompt = false
    assert record.category == "profanity"
    assert record.prompt is None and record.matched is None
    assert record.prompt_sha256 == hashlib.sha256(prompt.encode()).hexdigest()
    assert record.policy_version == "test-1"

    record = moderator.audit_record("k1ll", moderator.check("k1ll"))  # violence: log_prompt = true
    assert (record.prompt, record.matched) == ("k1ll", "kill")


def test_audit_record_of_unknown_category_never_keeps_the_prompt(moderator: Moderator) -> None:
    record = moderator.audit_record("text", Verdict(False, "from_a_classifier", "label"))
    assert record.prompt is None and record.matched is None


def test_audit_record_refuses_allowed_verdicts(moderator: Moderator) -> None:
    with pytest.raises(ValueError):
        moderator.audit_record("fine", ALLOWED)
