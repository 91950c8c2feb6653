"""Data migration: the default price table (numbers in billing/prices.py)."""

from django.db import migrations


def seed(apps, schema_editor):
    from billing.prices import seed_prices

    seed_prices(apps.get_model("billing", "Price"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_prices_and_action_links")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
