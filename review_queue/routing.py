from django.urls import path

from review_queue.consumers import ConsoleConsumer
from wellbeing.lead_consumer import LeadConsumer

websocket_urlpatterns = [
    path("ws/console/", ConsoleConsumer.as_asgi()),
    path("ws/lead/<int:team_id>/", LeadConsumer.as_asgi()),
]
