"""Consumer of the customer ingest queue."""
from crm.consumers.ingest import customer_ingest_handler as handler  # noqa: F401
