"""Lambda for the customers endpoint group (and the erasure of a customer)."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.customers import erasure_router, router

app = create_app(router, erasure_router)
handler = Mangum(app, lifespan="off")
