from django.urls import path

from oversight.lead_consumer import LeadConsumer
from review.consumers import ConsoleConsumer

websocket_urlpatterns = [
    path("ws/console/", ConsoleConsumer.as_asgi()),
    path("ws/lead/<int:team_id>/", LeadConsumer.as_asgi()),
]
