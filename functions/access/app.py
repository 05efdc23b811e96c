"""Lambda for /api/me and the admins' routes: users, API keys, the audit trail; and the suppression list."""
from mangum import Mangum

from crm.api.app import create_app
from crm.api.routes import consent
from crm.api.routes.access import routers

app = create_app(*routers, consent.router)
handler = Mangum(app, lifespan="off")
