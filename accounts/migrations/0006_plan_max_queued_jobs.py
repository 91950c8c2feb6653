"""Jobs waiting to start at once per plan (issue 19 item 3: queued jobs were unbounded)."""

from django.db import migrations, models

from accounts.plans import DEFAULT_PLANS


def set_queued_limits(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in DEFAULT_PLANS:
        Plan.objects.filter(name=plan["name"], max_queued_jobs__isnull=True).update(
            max_queued_jobs=plan["max_queued_jobs"]
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_plan_max_waiting_requests")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="max_queued_jobs",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(set_queued_limits, migrations.RunPython.noop),
    ]
