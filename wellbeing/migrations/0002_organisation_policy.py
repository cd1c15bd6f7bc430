from django.db import migrations


def create_policy(apps, schema_editor):
    # The organisation's policy exists from the start (with the documented defaults), so admins edit, not add.
    apps.get_model("wellbeing", "OrganisationPolicy").objects.get_or_create(pk=1)


class Migration(migrations.Migration):

    dependencies = [("wellbeing", "0001_initial")]

    operations = [migrations.RunPython(create_policy, migrations.RunPython.noop)]
