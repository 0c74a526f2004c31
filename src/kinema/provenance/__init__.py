"""Provenance of the media Kinema generates: what made it, verifiably."""
