"""Lambda for the auth endpoint group."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.auth import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
