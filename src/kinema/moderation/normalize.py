"""The canonical form prompts and policy terms are matched in.

``normalize(text)`` returns the text as a sequence of *tokens* separated by single ASCII spaces, where:

* invisible characters are gone: format characters (zero-width space/joiners, word joiner, BOM, soft hyphen,
  bidi controls, tag characters) and a few invisible "letters" (Hangul fillers, braille blank);
* compatibility forms are folded (NFKC): fullwidth ``ｋｉｌｌ``, mathematical ``𝐤𝐢𝐥𝐥``, circled, superscript;
  enclosed letters NFKC leaves alone (regional indicators, negative circled/squared) become ASCII letters too;
* combining marks are stripped (``kíll``, ``k̶i̶l̶l̶`` -> ``kill``), except where a script spells with them
  (Indic vowel signs, Thai vowels, kana voicing) and they follow a letter of that script; the text is case-folded;
* a capital ``I`` inside a lower-case word becomes ``l`` and a small ``l`` inside an upper-case word ``i``
  (``kiIl``, ``KlLL``), since fonts draw them alike;
* Latin lookalikes are folded to ASCII (Cyrillic ``а``, Greek ``Κ``, small capitals ``ᴋ``, stroked ``ł``), but
  only in tokens that already contain an ASCII letter or consist entirely of lookalikes. A genuine Russian or
  Greek word (one with any letter that has no Latin twin) is left in its script, so it cannot turn into English
  by accident. The map is a subset of Unicode's confusables.txt (UTS #39) plus near-lookalikes it omits;
* a token is a run of letters and digits, plus ``@`` and ``$`` (leetspeak for ``a`` and ``s``) anywhere in it and
  ``!`` / ``|`` between two such characters (``k!ll``; a trailing ``!`` stays punctuation). Apostrophes inside
  a word are dropped (``assassin's`` -> ``assassins``); every other character separates tokens;
* characters of scripts written without spaces (CJK ideographs, kana) are tokens of their own, so terms in those
  scripts can match inside a sentence.

Digits and leet symbols are *kept* in the canonical form: whether ``1`` means ``i`` or ``l`` is left to the
matcher, which accepts both, and ``letters_view`` reads leet as letters for regex patterns. ``normalize`` is
idempotent.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

LEET: Final[dict[str, str]] = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "i",
}
"""Leetspeak characters and the letter each most often stands for (``1``, ``!`` and ``|`` also pass for ``l``)."""

# Not Cf, yet invisible or blank when rendered; attackers use them exactly because they survive naive stripping.
_EXTRA_INVISIBLE: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_MARKS: Final = frozenset({"Mn", "Mc", "Me"})

# Scripts whose combining marks are part of the spelling (Indic vowel signs, Thai vowels, kana voicing): marks
# are kept only right after a base character of the same script, and stripped everywhere else (accents, zalgo).
_MARK_SCRIPTS: Final = (
    (0x0900, 0x0980), (0x0980, 0x0A00), (0x0A00, 0x0A80), (0x0A80, 0x0B00), (0x0B00, 0x0B80), (0x0B80, 0x0C00),
    (0x0C00, 0x0C80), (0x0C80, 0x0D00), (0x0D00, 0x0D80), (0x0D80, 0x0E00), (0x0E00, 0x0E80), (0x0E80, 0x0F00),
    (0x0F00, 0x1000), (0x1000, 0x10A0), (0x1780, 0x1800), (0x3040, 0x3100),
)  # fmt: skip
_KEPT_MARKS: Final = "".join(
    chr(o) for lo, hi in _MARK_SCRIPTS for o in range(lo, hi) if unicodedata.category(chr(o)) in _MARKS
)

# Lookalikes applied after case folding. Keys are lower-case or caseless; the values are ASCII letters.
_LOOKALIKES: Final[dict[str, str]] = {
    # Cyrillic
    "а": "a", "в": "b", "ь": "b", "с": "c", "ԁ": "d", "е": "e", "ҽ": "e", "ԍ": "g", "һ": "h", "н": "h",
    "і": "i", "ӏ": "i", "ꙇ": "i", "ј": "j", "к": "k", "м": "m", "п": "n", "о": "o", "р": "p", "ԛ": "q",
    "г": "r", "ѕ": "s", "т": "t", "ѵ": "v", "ѡ": "w", "ԝ": "w", "х": "x", "у": "y", "ү": "y",
    # Greek (upper-case letters reach these through case folding, except those in _UPPER_LOOKALIKES)
    "α": "a", "β": "b", "ϲ": "c", "ε": "e", "η": "n", "ι": "i", "ϳ": "j", "κ": "k", "μ": "u", "ν": "v",
    "ο": "o", "σ": "o", "ρ": "p", "ϱ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "γ": "y", "ϻ": "m",
    # Latin small capitals and IPA letters, which NFKC does not fold
    "ᴀ": "a", "ɑ": "a", "ʙ": "b", "ƅ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ɡ": "g",
    "ʜ": "h", "ɪ": "i", "ı": "i", "ɩ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ǀ": "l", "ᴍ": "m", "ɴ": "n",
    "ᴏ": "o", "ᴑ": "o", "ᴘ": "p", "ʀ": "r", "ᴦ": "r", "ꜱ": "s", "ƽ": "s", "ᴛ": "t", "ᴜ": "u", "ʋ": "u",
    "ᴠ": "v", "ᴡ": "w", "ɯ": "w", "ʏ": "y", "ɣ": "y", "ᴢ": "z",
    # Stroked letters have no decomposition, so stripping combining marks does not reach them
    "ł": "l", "ƚ": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ɨ": "i", "ƀ": "b", "ɇ": "e",
}  # fmt: skip

# Greek capitals whose lower-case form resembles a *different* Latin letter (Η looks like H, η like n).
_UPPER_LOOKALIKES: Final[dict[str, str]] = {"Η": "h", "Μ": "m", "Ν": "n", "Υ": "y", "Ζ": "z"}

_LOWER_TABLE: Final = str.maketrans(_LOOKALIKES)
_UPPER_TABLE: Final = str.maketrans(_UPPER_LOOKALIKES)

# Enclosed letters NFKC leaves alone: regional indicators (flag letters), negative circled and negative squared.
_ENCLOSED_TABLE: Final = str.maketrans(
    {chr(start + i): chr(ord("a") + i) for start in (0x1F1E6, 0x1F150, 0x1F170) for i in range(26)}
)

# Python's \w has no combining marks; the ones kept above belong inside words.
_WORD: Final = rf"(?:[^\W_]|[@$]|[{re.escape(_KEPT_MARKS)}])"
# A character of a script written without spaces, with any marks that belong to it (kana voicing).
_SPACELESS_SCRIPTS: Final = re.compile(
    f"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f][{re.escape(_KEPT_MARKS)}]*)"
)
_INNER_APOSTROPHE: Final = re.compile(rf"(?<={_WORD})['’‘`](?={_WORD})")
_TOKEN: Final = re.compile(rf"{_WORD}+(?:[!|]+{_WORD}+)*")
_LETTERS_TABLE: Final = str.maketrans(LEET)
# In most fonts a capital I and a small l look alike; which one is meant shows in the case of the neighbours:
# "kiIl" (I inside a lower-case word) is "kill", "KlLL" (l inside an upper-case word) is "KILL".
_CAPITAL_I_AS_L: Final = re.compile(r"(?<=[a-z])I")
_SMALL_L_AS_I: Final = re.compile(r"(?<=[A-Z])l(?=[A-Z])")


def _mark_script(char: str) -> int:
    """Index of the mark-keeping script ``char`` belongs to, or -1."""
    o = ord(char)
    return next((i for i, (lo, hi) in enumerate(_MARK_SCRIPTS) if lo <= o < hi), -1)


def _strip_marks(text: str) -> str:
    """``text`` decomposed (NFKD), without invisible characters and stray combining marks, recomposed (NFKC)."""
    kept: list[str] = []
    script = -1  # the mark-keeping script of the last base character, if any
    for c in unicodedata.normalize("NFKD", text):
        category = unicodedata.category(c)
        if category == "Cf" or c in _EXTRA_INVISIBLE:
            continue
        if category in _MARKS:
            if script >= 0 and _mark_script(c) == script:
                kept.append(c)
            continue
        # Marks are kept only on letters and digits: on a symbol they would start a token of their own.
        script = _mark_script(c) if c >= "\u0900" and c.isalnum() else -1
        kept.append(c)
    return unicodedata.normalize("NFKC", "".join(kept))


def _is_lookalike(char: str) -> bool:
    return char in _UPPER_LOOKALIKES or char.casefold() in _LOOKALIKES


def _fold_token(token: str) -> str:
    """One token case-folded, with Latin lookalikes replaced when the token reads as (disguised) Latin."""
    token = _CAPITAL_I_AS_L.sub("l", _SMALL_L_AS_I.sub("i", token))
    folded = token.casefold()
    if not folded.isascii():
        # Case folding can introduce combining marks (İ -> i + U+0307).
        folded = _strip_marks(folded)
    if folded.isascii():
        return folded
    letters = [c for c in token if c.isalpha()]
    # The decision looks at the token before folding but is case-blind (_is_lookalike checks both cases), so a
    # second pass over the output makes the same decision: that is what keeps normalize idempotent.
    if any(c.isascii() and c.isalpha() for c in folded) or all(_is_lookalike(c) for c in letters):
        return _strip_marks(token.translate(_UPPER_TABLE).casefold()).translate(_LOWER_TABLE)
    return folded


def normalize(text: str) -> str:
    """The canonical matching form of ``text`` (see the module docstring); idempotent, never raises.

    Returns lower-case tokens joined by single spaces, with no leading or trailing space; "" when ``text`` has
    no letters, digits or leet symbols.
    """
    text = _strip_marks(text).translate(_ENCLOSED_TABLE)
    text = _SPACELESS_SCRIPTS.sub(r" \1 ", text)
    text = _INNER_APOSTROPHE.sub("", text)
    return " ".join(_fold_token(token) for token in _TOKEN.findall(text))


def letters_view(normalized: str) -> str:
    """``normalized`` with leetspeak read as letters in every token that has a letter (``k1ll`` -> ``kill``).

    Tokens without a letter are numbers or symbols and stay as they are (``1080``, ``$100``). The result has the
    same length as ``normalized``, so a match position in one is the same position in the other.
    """
    return " ".join(
        token.translate(_LETTERS_TABLE) if any(c.isalpha() for c in token) else token for token in normalized.split(" ")
    )
