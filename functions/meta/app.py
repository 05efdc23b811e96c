"""Lambda for /health, /docs and /openapi.json; it knows every router so the document covers every route."""
from crm.api.app import create_app
from crm.api.routes import auth, customers, meta, orders
from mangum import Mangum

app = create_app(meta.router, auth.router, customers.router, orders.router)
handler = Mangum(app, lifespan="off")
