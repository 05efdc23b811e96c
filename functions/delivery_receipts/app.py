"""Consumer of the delivery-receipt queue: the vendor's receipts applied to their logs, a batch at a time."""
from crm.consumers.receipts import delivery_receipt_handler as handler  # noqa: F401
