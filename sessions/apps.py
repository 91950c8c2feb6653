from django.apps import AppConfig


class BrowserSessionsConfig(AppConfig):
    # django.contrib.sessions owns the label "sessions".
    name = "sessions"
    label = "browser_sessions"
    verbose_name = "Browser sessions"
    default_auto_field = "django.db.models.BigAutoField"
