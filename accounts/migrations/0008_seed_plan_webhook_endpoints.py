"""Webhook endpoint limits of the seeded plans (new installs get them from seeding)."""

from django.db import migrations

from accounts.plans import DEFAULT_PLANS


def set_webhook_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"], max_webhook_endpoints=10).update(
            max_webhook_endpoints=plan["max_webhook_endpoints"]
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_plan_max_webhook_endpoints")]

    operations = [migrations.RunPython(set_webhook_limits, migrations.RunPython.noop)]
