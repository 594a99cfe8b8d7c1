"""The distribution's version (read by pyproject.toml at build time and by `engine --version`)."""

__version__ = "0.2.0"
