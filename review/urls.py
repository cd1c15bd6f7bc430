from django.urls import path

from review import views

urlpatterns = [
    path("", views.queue_list, name="console-queues"),
    path("queues/<slug:slug>/next/", views.claim_next, name="console-claim"),
    path("items/<int:item_id>/", views.item_page, name="console-item"),
    path("items/<int:item_id>/decide/", views.decide, name="console-decide"),
    path("items/<int:item_id>/release/", views.release, name="console-release"),
    path("items/<int:item_id>/copies/<int:copy_id>/split/", views.split, name="console-split"),
    path("preferences/", views.preferences, name="console-preferences"),
]
