"""Lambda for the AI endpoint group."""
from crm.api.app import create_app
from crm.api.routes.ai import router
from mangum import Mangum

app = create_app(router)
handler = Mangum(app, lifespan="off")
