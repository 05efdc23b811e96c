"""Consent tests send campaigns through the scripted vendor of the campaign tests."""
from tests.campaigns.conftest import vendor  # noqa: F401 - a fixture shared with the campaign tests
