"""Lambda for the customers endpoint group."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.customers import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
