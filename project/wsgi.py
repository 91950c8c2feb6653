import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()

from project.db import connection_budget_verify  # noqa: E402  (needs the settings set up above)

# A web process whose configuration could exhaust PostgreSQL's connections does not start.
connection_budget_verify()
