"""Lambda for the campaigns endpoint group."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.campaigns import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
