from django.contrib import admin
from django.urls import include, path

from sessions.api import urls as computer_urls

handler404 = "project.exceptions.json_404"
handler500 = "project.exceptions.json_500"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include((computer_urls.urlpatterns, "computers"), namespace="v1")),
    path("", include((computer_urls.urlpatterns, "computers"), namespace="root")),
]
