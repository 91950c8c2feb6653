"""Job limits of the seeded plans that existed before jobs (new installs get them from seeding)."""

from django.db import migrations

from accounts.plans import DEFAULT_PLANS


def set_job_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"]).update(
            max_job_urls=plan["max_job_urls"], max_running_jobs=plan["max_running_jobs"]
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_plan_job_limits")]

    operations = [migrations.RunPython(set_job_limits, migrations.RunPython.noop)]
