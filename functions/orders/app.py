"""Lambda for the orders endpoint group."""
from crm.api.app import create_app
from crm.api.routes.orders import router
from mangum import Mangum

app = create_app(router)
handler = Mangum(app, lifespan="off")
