"""Lambda for the unsubscribe page of every e-mail's link (GET and one-click POST /u/{token})."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes.unsubscribe import router

app = create_app(router)
handler = Mangum(app, lifespan="off")
