"""The IPR annotator: Interpersonal Process Recall research in psychotherapy."""

__version__ = "0.1.0"
"""Kept equal to pyproject.toml's version (a test checks); exports cite it with the commit."""
