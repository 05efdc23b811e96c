"""Lambda for the tracked links of campaign messages (GET /c/{token}): queues the click and redirects; no database."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.clicks import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
