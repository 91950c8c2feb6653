from django.urls import path

from billing.api import views

urlpatterns = [
    path("account", views.AccountView.as_view(), name="account"),
    path("usage", views.UsageView.as_view(), name="usage"),
    path("ledger", views.LedgerView.as_view(), name="ledger"),
]
