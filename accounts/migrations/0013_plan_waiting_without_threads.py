"""The seeded plans' `max_waiting_requests` (issue 20): a waiting request no longer holds a web
thread, so the caps are sized by the plan (free 8, pro 64, enterprise 500), not by the web's
threads. Only a value still at its old default is raised: an operator's own value is kept."""

from django.db import migrations

from accounts.plans import DEFAULT_PLANS

_OLD_DEFAULTS = {"free": 4, "pro": 16, "enterprise": 32}


def raise_waiting_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"], max_waiting_requests=_OLD_DEFAULTS[plan["name"]]).update(
            max_waiting_requests=plan["max_waiting_requests"]
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0012_plan_record_sessions")]

    operations = [migrations.RunPython(raise_waiting_limits, migrations.RunPython.noop)]
