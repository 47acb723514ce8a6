"""The IPR annotator's WSGI entry point: ``flask --app app ...`` finds ``create_app`` here."""

from ipr.web.factory import create_app

__all__ = ["create_app"]
