"""The mock vendor's delayed reports: signed receipts POSTed to the receipt URL."""
from crm.consumers.campaigns import vendor_receipt_handler as handler  # noqa: F401
