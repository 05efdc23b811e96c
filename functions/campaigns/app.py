"""Lambda for the campaigns endpoint group."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes import test_send
from crm.api.routes.campaigns import router

app = create_app(router, test_send.router)
handler = Mangum(app, lifespan="off")
