"""Test ground for Lemonade: the real lemond harness (lemond.py) and a loopback stand-in (fake_lemond.py)."""
