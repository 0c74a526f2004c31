"""The canonical form: what it folds, what it keeps, and that it is a fixed point."""

from __future__ import annotations

import random

import pytest

from kinema.moderation.normalize import letters_view, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Kill", "kill"),
        ("  k.i.l.l!!  ", "k i l l"),
        ("k_i-l-l", "k i l l"),
        ("ｋｉｌｌ", "kill"),  # fullwidth
        ("𝐤𝐢𝐥𝐥 𝓀𝒾𝓁𝓁 𝕜𝕚𝕝𝕝", "kill kill kill"),  # mathematical alphanumerics
        ("ⓚⓘⓛⓛ", "kill"),  # circled
        ("🇰🇮🇱🇱 🅺🅸🅻🅻", "kill kill"),  # regional indicators, negative squared
        ("кіll", "kill"),  # Cyrillic ka and i
        ("ΚΙLL", "kill"),  # Greek capitals
        ("ᴋɪʟʟ", "kill"),  # small capitals
        ("kíłł", "kill"),  # accent, stroked l
        ("k̶i̶l̶l̶", "kill"),  # combining strikethrough
        ("k\u200bi\u200cl\u200dl\u2060\ufeff", "kill"),  # zero-width characters
        ("ki\u3164ll", "kill"),  # Hangul filler: a "letter" that renders as nothing
        ("k\u00adill", "kill"),  # soft hyphen
        ("İstanbul Straße", "istanbul strasse"),
        ("kiIl KlLL Ill", "kill kill ill"),  # I and l read from the case of their neighbours
        ("assassin's creed", "assassins creed"),
        ("k!ll k|ll wow!", "k!ll k|ll wow"),  # ! and | only between word characters
        ("$100 @$$", "$100 @$$"),
        ("", ""),
        ("?!... ---", ""),
    ],
)
def test_folds_to_the_canonical_form(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Привет мир", "привет мир"),  # Cyrillic words with non-lookalike letters stay Cyrillic
        ("ΗΛΙΟΣ", "ηλιοσ"),  # Greek, likewise (case-folded; σ is the folded final sigma)
        ("сор", "cop"),  # ...but a token made only of lookalikes reads as Latin
        ("猫が好き", "猫 が 好 き"),  # spaceless scripts: one token per character, kana voicing kept
        ("हिंदी फ़िल्म।", "हिंदी फ़िल्म"),  # Indic vowel signs are spelling, not decoration
    ],
)
def test_leaves_other_scripts_readable(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_marks_of_another_script_are_stripped() -> None:
    # A Devanagari vowel sign after a Latin letter is an evasion trick, not spelling.
    assert normalize("kil\u093fl") == "kill"


def test_letters_view_reads_leet_only_in_words() -> None:
    view = letters_view(normalize("k1ll 4ss @$$ 1080p $100 1488 g0r3"))
    assert view == "kill ass @$$ iobop $100 1488 gore"
    assert len(view) == len(normalize("k1ll 4ss @$$ 1080p $100 1488 g0r3"))


_ALPHABET = (
    "abcXYZIlL019 @$!|'’_-.\u200b\u200d\u00ad\u3164\u0301\u0336\u3099\u093fаеіоркснΑΒΗΜΝΥΖηλςσΐİßŉﬁｋ𝐤ⓚ🇰ᴋłø猫がかहि्ภา"
)


def test_normalize_is_idempotent() -> None:
    rng = random.Random(1234)
    samples = ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    samples += ["".join(chr(rng.randint(0x20, 0x2FFFF)) for _ in range(rng.randint(0, 8))) for _ in range(3000)]
    for text in samples:
        once = normalize(text)
        assert normalize(once) == once, ascii(text)
        assert once == once.strip() and "  " not in once
