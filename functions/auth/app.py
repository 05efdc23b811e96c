"""Lambda for the auth endpoint group; refuses to start in production with sign-in open to everyone."""
from mangum import Mangum

from crm.access.users import refuse_open_sign_in
from crm.api.app import create_app
from crm.api.routes.auth import router
from crm.config import get_settings

refuse_open_sign_in(get_settings())
app = create_app(router)
handler = Mangum(app, lifespan="off")
