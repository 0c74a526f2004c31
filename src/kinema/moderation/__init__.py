"""Prompt moderation: a TOML policy of blocked terms and patterns, matched on a canonical form of the text.

``normalize`` (in ``normalize.py``) defines the canonical form, ``policy.py`` loads and validates policy files,
and ``checker.py`` holds the ``Moderator`` that checks prompts against a policy and then any pluggable classifiers.
"""
