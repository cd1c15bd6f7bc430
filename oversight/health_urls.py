from django.urls import path

from oversight import health_views

urlpatterns = [
    path("", health_views.home, name="health-home"),
    path("departments/<int:department_id>/report/", health_views.report, name="health-report"),
    path("departments/<int:department_id>/report.csv", health_views.export_csv, name="health-report-csv"),
    path("departments/<int:department_id>/report.pdf", health_views.export_pdf, name="health-report-pdf"),
    path("follow-up/", health_views.followup, name="health-followup"),
    path("people/<int:user_id>/", health_views.person, name="health-person"),
]
