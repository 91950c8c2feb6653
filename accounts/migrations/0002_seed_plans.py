"""Data migration: the free, pro and enterprise plans (numbers in accounts/plans.py)."""

from django.db import migrations


def seed(apps, schema_editor):
    from accounts.plans import seed_plans

    seed_plans(apps.get_model("accounts", "Plan"))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    # Reversing keeps the rows: accounts may point at them.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
