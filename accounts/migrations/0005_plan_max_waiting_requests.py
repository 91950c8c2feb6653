"""Requests waiting at once per plan (issue 12: a busy enterprise account hit the flat cap of 8)."""

from django.db import migrations, models

from accounts.plans import DEFAULT_PLANS


def set_waiting_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"], max_waiting_requests__isnull=True).update(
            max_waiting_requests=plan["max_waiting_requests"]
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_seed_plan_job_limits")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="max_waiting_requests",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(set_waiting_limits, migrations.RunPython.noop),
    ]
