from django.db import migrations


def seed(apps, schema_editor):
    from billing.prices import seed_prices

    seed_prices(apps.get_model("billing", "Price"))  # adds change_proxy and proxy_mb


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_proxy_ledger_kind")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
