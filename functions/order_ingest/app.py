"""Consumer of the order ingest queue."""
from crm.consumers.ingest import order_ingest_handler as handler  # noqa: F401
