"""A small test policy, separate from the shipped default so these tests pin the matching rules, not the lists."""

from __future__ import annotations

import pytest

from kinema.moderation.checker import Moderator
from kinema.moderation.policy import Policy, parse_policy

TEST_POLICY = r"""
version = "test-1"

[categories.violence]
log_prompt = true
terms = ["kill", "gore", "rapist"]
patterns = ['\bhow to (?:make|build) (?:a )?(?:pipe )?bomb\b', '\b14 ?88\b']
exceptions = ["al gore", "gore tex", "kill switch", "how to make a bomb squad"]

[categories.profanity]
log_prompt = false
terms = ["ass", "cunt", "sex", "child porn", "csam"]
"""


@pytest.fixture(scope="session")
def policy() -> Policy:
    return parse_policy(TEST_POLICY, source="test-policy")


@pytest.fixture(scope="session")
def moderator(policy: Policy) -> Moderator:
    return Moderator(policy)
