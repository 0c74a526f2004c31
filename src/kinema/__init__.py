"""Kinema: self-hosted, privacy-first video generation."""

__version__ = "0.1.0"
