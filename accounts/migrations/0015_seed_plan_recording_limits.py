"""Recording limits of the seeded plans that existed before them (new installs get them from
seeding)."""

from django.db import migrations

from accounts.plans import DEFAULT_PLANS


def set_recording_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"]).update(
            recording_retention_days=plan["recording_retention_days"],
            recording_storage_bytes=plan["recording_storage_bytes"],
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0014_plan_recording_limits")]

    operations = [migrations.RunPython(set_recording_limits, migrations.RunPython.noop)]
