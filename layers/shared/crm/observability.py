"""Powertools logger shared by every function; the service name says which function logged."""
from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "mini-crm"))
