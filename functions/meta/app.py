"""Lambda for /health, /docs and /openapi.json; the document covers the routes every function serves."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes import documented, meta

app = create_app(meta.router, documents=documented())
handler = Mangum(app, lifespan="off")
