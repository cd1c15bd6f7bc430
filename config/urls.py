from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api_errors import api_not_found
from core.i18n import choose_language, locale_settings
from integrations import coop_api, hma_api
from oversight import api as wellbeing_api
from review import api as queue_api
from review import item_api, media_views
from review import views as console_views


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


api_v1 = [
    path("items/", item_api.ItemCollection.as_view(), name="api-items"),
    path("items/async/", coop_api.CoopItemsAsync.as_view(), name="api-items-async"),
    path("items/<int:item_id>/", item_api.ItemDetail.as_view(), name="api-item"),
    path("items/<int:item_id>/decision/", item_api.ItemDecision.as_view(), name="api-item-decision"),
    path("items/<int:item_id>/reveal/", item_api.ItemReveal.as_view(), name="api-item-reveal"),
    path("items/<int:item_id>/release/", item_api.ItemRelease.as_view(), name="api-item-release"),
    path("items/<int:item_id>/lease/", queue_api.ItemLease.as_view(), name="api-item-lease"),
    path("reveals/<int:reveal_id>/end/", item_api.RevealEnd.as_view(), name="api-reveal-end"),
    path("reveals/<int:reveal_id>/played/", item_api.PlaybackProgress.as_view(), name="api-reveal-played"),
    path("queues/", queue_api.QueueList.as_view(), name="api-queues"),
    path("queues/<slug:slug>/claim/", queue_api.QueueClaim.as_view(), name="api-queue-claim"),
    path("lead/teams/<int:team_id>/", wellbeing_api.TeamLoad.as_view(), name="api-lead-team"),
    path("lead/teams/<int:team_id>/reviewers/<int:reviewer_id>/<slug:action>/", wellbeing_api.TeamAction.as_view(),
         name="api-lead-team-act"),
    path("health/departments/<int:department_id>/report/", wellbeing_api.HealthReport.as_view(),
         name="api-health-report"),
    # Last: anything else under /api/v1/ is a JSON 404 in the API's error shape, not the HTML page.
    re_path(r"^(?P<unmatched>.*)$", api_not_found, name="api-not-found"),
]

urlpatterns = [
    path("", console_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", choose_language, name="choose-language"),
    path("language-and-time/", locale_settings, name="locale-settings"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("console/", include("review.urls")),
    path("wellbeing/", include("wellbeing.urls")),
    path("lead/", include("oversight.lead_urls")),
    path("health/", include("oversight.health_urls")),
    path("media/items/<int:item_id>/preview", media_views.preview, name="media-preview"),
    path("media/items/<int:item_id>/clear", media_views.clear, name="media-clear"),
    path("media/items/<int:item_id>/keyframes/<int:number>/clear", media_views.keyframe, name="media-keyframe"),
    path("media/items/<int:item_id>/clip", media_views.clip, name="media-clip"),
    path("media/items/<int:item_id>/stream", media_views.stream, name="media-stream"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # HMA-compatible matching, at HMA's own paths so its clients need only a new base URL.
    path("h/hash", hma_api.HashMedia.as_view(), name="hma-hash"),
    path("m/lookup", hma_api.MatchLookup.as_view(), name="hma-lookup"),
    path("m/raw_lookup", hma_api.RawLookup.as_view(), name="hma-raw-lookup"),
]
