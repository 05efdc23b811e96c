"""Lambda for /health, /docs and /openapi.json; the document covers the routes every function serves."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes import ai, auth, campaigns, customers, meta, orders, receipts, segments, vendor

app = create_app(meta.router, documents=[auth.router, customers.router, orders.router, segments.router,
                                         campaigns.router, ai.router, vendor.router, receipts.router])
handler = Mangum(app, lifespan="off")
