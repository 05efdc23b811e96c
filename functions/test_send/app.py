"""Lambda for POST /api/campaigns/test-send: the one API function that may send through the campaign channel."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes import test_send

app = create_app(test_send.router)
handler = Mangum(app, lifespan="off")
