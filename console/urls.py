"""The console's pages, under /console/ (project/urls.py)."""

from django.urls import path

from console.views import auth, billing, jobs, keys, members, overview, sessions, usage

app_name = "console"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("overview/numbers/", overview.overview_numbers_fragment, name="overview-numbers"),
    path("usage/", usage.usage, name="usage"),
    path("usage.csv", usage.usage_csv, name="usage-csv"),
    path("sessions/", sessions.session_list, name="sessions"),
    path("sessions/<str:session_id>/", sessions.session_detail, name="session"),
    path("sessions/<str:session_id>/live/", sessions.session_live, name="session-live"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<str:job_id>/", jobs.job_detail, name="job"),
    path("jobs/<str:job_id>/cancel/", jobs.job_cancel_view, name="job-cancel"),
    path("jobs/<str:job_id>/results.<str:fmt>", jobs.job_results, name="job-results"),
    path("billing/", billing.billing, name="billing"),
    path("billing/ledger.csv", billing.ledger_csv, name="ledger-csv"),
    path("billing/checkout/", billing.checkout, name="checkout"),
    path("billing/alert/", billing.alert_set, name="alert"),
    path("keys/", keys.keys, name="keys"),
    path("keys/create/", keys.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key-revoke"),
    path("keys/<int:key_id>/cap/", keys.key_cap, name="key-cap"),
    path("members/", members.member_list, name="members"),
    path("members/invite/", members.member_invite, name="member-invite"),
    path("members/<int:membership_id>/role/", members.member_role, name="member-role"),
    path("members/<int:membership_id>/remove/", members.member_remove, name="member-remove"),
    path("account/", members.account_switch, name="account-switch"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("password-reset/", auth.password_reset, name="password-reset"),
    path("password-reset/sent/", auth.password_reset_done, name="password-reset-done"),
    path("password-reset/<uidb64>/<token>/", auth.password_reset_confirm, name="password-reset-confirm"),
    path("password-reset/complete/", auth.password_reset_complete, name="password-reset-complete"),
    path("invite/<uidb64>/<token>/", auth.invite_accept, name="invite-accept"),
    # Last: any other address under /console/ is the console's own 404 page (not the API's JSON).
    path("<path:rest>", overview.not_found, name="not-found"),
]
