"""The batch jobs API, under /v1/. No trailing slashes, as everywhere."""

from django.urls import path

from jobs.api import views

urlpatterns = [
    path("jobs", views.JobListCreateView.as_view(), name="jobs"),
    path("jobs/<str:job_id>", views.JobDetailView.as_view(), name="job"),
    path("jobs/<str:job_id>/results", views.JobResultsView.as_view(), name="job-results"),
    path("jobs/<str:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
]
