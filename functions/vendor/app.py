"""Lambda for the mock messaging vendor (POST /api/mock-send)."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.vendor import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
