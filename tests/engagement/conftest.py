"""Engagement tests run campaigns as the campaign tests do: the same audience, segment and scripted vendor."""
from tests.campaigns.conftest import audience, segment_id, vendor  # noqa: F401 - fixtures
