"""/v1/webhooks. No trailing slashes, as everywhere."""

from django.urls import path

from webhooks.api import views

urlpatterns = [
    path("webhooks", views.EndpointListView.as_view(), name="webhooks"),
    path(
        "webhooks/deliveries/<int:delivery_id>/redeliver",
        views.DeliveryRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("webhooks/<str:endpoint_id>", views.EndpointDetailView.as_view(), name="webhook"),
    path("webhooks/<str:endpoint_id>/rotate", views.EndpointRotateView.as_view(), name="webhook-rotate"),
    path("webhooks/<str:endpoint_id>/test", views.EndpointTestView.as_view(), name="webhook-test"),
    path(
        "webhooks/<str:endpoint_id>/deliveries", views.DeliveryListView.as_view(), name="webhook-deliveries"
    ),
]
