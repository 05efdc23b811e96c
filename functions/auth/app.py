"""Lambda for the auth endpoint group."""
from crm.api.app import create_app
from crm.api.routes.auth import router
from mangum import Mangum

app = create_app(router)
handler = Mangum(app, lifespan="off")
