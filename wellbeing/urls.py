from django.urls import path

from wellbeing import views

urlpatterns = [
    path("", views.home, name="wellbeing-home"),
    path("break/", views.break_screen, name="wellbeing-break"),
    path("break/state/", views.break_state, name="wellbeing-break-state"),
    path("break/start/", views.break_start, name="wellbeing-break-start"),
    path("break/end/", views.break_end, name="wellbeing-break-end"),
    path("shift/start/", views.shift_start, name="wellbeing-shift-start"),
    path("shift/end/", views.shift_end, name="wellbeing-shift-end"),
    path("check-in/", views.checkin, name="wellbeing-checkin"),
    path("check-in/weekly/", views.who5, name="wellbeing-who5"),
    path("limits/", views.limits, name="wellbeing-limits"),
    path("follow-up-consent/", views.followup_consent, name="wellbeing-followup-consent"),
    path("export.json", views.export_json, name="wellbeing-export-json"),
    path("export/<slug:part>.csv", views.export_csv, name="wellbeing-export-csv"),
]
