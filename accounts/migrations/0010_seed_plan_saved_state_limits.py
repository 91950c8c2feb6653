"""Saved-state limits of the seeded plans that existed before saved states (new installs get them
from seeding)."""

from django.db import migrations

from accounts.plans import DEFAULT_PLANS


def set_saved_state_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"]).update(
            saved_state_max_bytes=plan["saved_state_max_bytes"],
            max_saved_states=plan["max_saved_states"],
            saved_state_retention_days=plan["saved_state_retention_days"],
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0009_plan_saved_state_limits")]

    operations = [migrations.RunPython(set_saved_state_limits, migrations.RunPython.noop)]
