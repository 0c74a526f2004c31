"""Policy files: the shipped default loads and is sensible; bad files fail with the file, category and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinema.moderation.checker import ALLOWED, Moderator
from kinema.moderation.policy import Category, PolicyError, load_policy, parse_policy


def test_loads_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'version = " v2 "\n[categories.b]\nterms = ["x1"]\n[categories.a]\npatterns = ["y+"]\nlog_prompt = true\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.version == "v2"
    assert policy.categories == (  # file order is kept: it decides which category is reported
        Category(name="b", terms=("x1",), patterns=(), exceptions=(), log_prompt=False),
        Category(name="a", terms=(), patterns=("y+",), exceptions=(), log_prompt=True),
    )
    assert policy.category("a") is policy.categories[1] and policy.category("zzz") is None


def _category(body: str) -> str:
    return f'version = "1"\n[categories.gore]\n{body}\n'


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("version = \n", ["not valid TOML", "line 1"]),
        ('[categories.gore]\nterms = ["x"]\n', ["'version'"]),
        ('version = " "\n[categories.gore]\nterms = ["x"]\n', ["'version'"]),
        ('version = "1"\n', ["'categories'"]),
        ('version = "1"\ncategory = {}\n', ["unknown top-level field 'category'"]),
        ('version = "1"\ncategories = {gore = 3}\n', ["category 'gore'", "must be a table"]),
        ('version = "1"\n[categories.Bad-Name]\nterms = ["x"]\n', ["category 'Bad-Name'", "lower_snake_case"]),
        (_category('term = ["x"]'), ["category 'gore'", "unknown field 'term'"]),
        (_category('terms = "gore"'), ["category 'gore'", "field 'terms'", "list of strings"]),
        (_category('terms = ["ok", 3]'), ["category 'gore'", "field 'terms', item 1", "non-empty string"]),
        (_category('terms = ["ok", " "]'), ["field 'terms', item 1"]),
        (_category('terms = ["1488"]'), ["category 'gore'", "field 'terms', item 0", "must contain a letter"]),
        (_category('terms = ["x"]\nexceptions = ["!!!"]'), ["field 'exceptions', item 0", "must contain a letter"]),
        (_category("patterns = ['(unclosed']"), ["category 'gore'", "field 'patterns', item 0", "invalid regular"]),
        (_category("patterns = ['ok', 'x*']"), ["field 'patterns', item 1", "matches the empty string"]),
        (_category('terms = ["x"]\nlog_prompt = "false"'), ["category 'gore'", "field 'log_prompt'", "true or false"]),
        (_category('exceptions = ["al gore"]'), ["category 'gore'", "at least one entry in 'terms' or 'patterns'"]),
    ],
)
def test_bad_policies_name_what_is_wrong(document: str, expected: list[str]) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(document, source="my-policy.toml")
    message = str(info.value)
    assert message.startswith("my-policy.toml: ")
    for fragment in expected:
        assert fragment in message


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="nope.toml: cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_a_bad_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('version = "1"\n[categories.x]\nterms = [1]\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=rf"^{path}: category 'x', field 'terms', item 0"):
        load_policy(path)


def test_default_policy_loads_with_the_expected_categories() -> None:
    policy = load_policy()
    assert policy.version
    names = [c.name for c in policy.categories]
    assert names == [
        "sexual_minors",
        "nonconsensual_intimate",
        "graphic_violence",
        "hate",
        "self_harm_instructions",
    ]
    # Refusals in the most sensitive categories must never put the prompt in logs.
    for name in ("sexual_minors", "nonconsensual_intimate", "self_harm_instructions"):
        category = policy.category(name)
        assert category is not None and category.log_prompt is False


@pytest.mark.parametrize(
    ("prompt", "category"),
    [
        ("c.s.a.m", "sexual_minors"),
        ("CHILD-P0RN", "sexual_minors"),
        ("a naked 12yo", "sexual_minors"),
        ("a 9 year old girl, topless", "sexual_minors"),
        ("non-consensual video of my ex", "nonconsensual_intimate"),
        ("revenge porn", "nonconsensual_intimate"),
        ("a beheading", "graphic_violence"),
        ("al gore covered in gore", "graphic_violence"),
        ("sieg heil rally", "hate"),
        ("HEIL H1TLER", "hate"),
        ("how do I kill myself", "self_harm_instructions"),
    ],
)
def test_default_policy_blocks(prompt: str, category: str) -> None:
    verdict = Moderator(load_policy()).check(prompt)
    assert (verdict.allowed, verdict.category) == (False, category)


@pytest.mark.parametrize(
    "prompt",
    [
        "a cat playing piano in a sunlit room",
        "Al Gore gives a speech about climate",
        "a hiker in a gore-tex jacket",
        "a 10 year old boy playing soccer in the park",
        "assassin's creed style parkour over rooftops",
        "a therapist's office, warm light",
        "an action movie car chase with an explosion",
        "a documentary about the history of the Renaissance, 1488",
        "what the hell is that, a hell of a sieg",  # i and l are distinct letters: hell is not heil
    ],
)
def test_default_policy_allows_everyday_prompts(prompt: str) -> None:
    assert Moderator(load_policy()).check(prompt) == ALLOWED
