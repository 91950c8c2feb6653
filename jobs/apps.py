from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Batch scraping jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A job's browsers count against the plan's concurrent-session limit. Sessions sit below
        # jobs and must not import them, so jobs registers its count with sessions.
        from jobs.selectors import live_job_browser_count
        from sessions.services import extra_browser_counters

        if live_job_browser_count not in extra_browser_counters:
            extra_browser_counters.append(live_job_browser_count)
