# Built concurrently: the actions table is the largest one, and a plain CREATE INDEX would block
# every action insert while it builds.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0002_seed_plans"),
        ("browser_sessions", "0006_action_lease"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="action",
            index=models.Index(fields=["created_at"], name="action_created"),
        ),
    ]
