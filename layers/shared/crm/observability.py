"""Powertools logger shared by every function; the service name says which function logged."""
from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "mini-crm"))
# Mangum writes a line of its own per request with the raw path, which may hold an address or an unsubscribe token
# (ours names the route instead: crm.api.app); its warnings and errors still come through.
logging.getLogger("mangum.http").setLevel(logging.WARNING)
