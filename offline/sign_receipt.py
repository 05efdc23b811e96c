"""Signs a delivery-receipt event as the vendor would now, for `sam local invoke` (a stored signature goes stale).

    python -m offline.sign_receipt events/receipts.json > /tmp/receipt.json
    sam local invoke ReceiptsFunction -e /tmp/receipt.json --env-vars samplecfg/env.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from crm import signing
from crm.config import get_settings


def signed(event: dict[str, Any], secret: str, now: float | None = None) -> dict[str, Any]:
    """The event with X-Vendor-Timestamp set to now and X-Vendor-Signature over its body."""
    timestamp = str(int(time.time() if now is None else now))
    headers = {k: v for k, v in event.get("headers", {}).items() if k.lower() not in ("x-vendor-timestamp",
                                                                                       "x-vendor-signature")}
    signature = signing.sign(secret, timestamp, event.get("body", "").encode())
    return {**event, "headers": {**headers, "x-vendor-timestamp": timestamp, "x-vendor-signature": signature}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.sign_receipt", description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path)
    args = parser.parse_args(argv)
    # The webhook secret from the usual config (WEBHOOK_SECRET, CRM_CONFIG_FILE or the development default).
    secret = get_settings().secret("webhook_secret")
    json.dump(signed(json.loads(args.event.read_text()), secret), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
