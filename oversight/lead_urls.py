from django.urls import path

from oversight import lead_views

urlpatterns = [
    path("", lead_views.teams, name="lead-teams"),
    path("teams/<int:team_id>/", lead_views.dashboard, name="lead-team"),
    path("teams/<int:team_id>/limits/", lead_views.tighten, name="lead-team-limits"),
    path("teams/<int:team_id>/reviewers/<int:reviewer_id>/<slug:action>/", lead_views.act, name="lead-team-act"),
]
