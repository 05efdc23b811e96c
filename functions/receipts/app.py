"""Lambda for vendor delivery receipts: an HttpApi route and its own Function URL."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.receipts import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
