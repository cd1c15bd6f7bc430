from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import compiled
from intake.models import Category, ContentItem, Decision, Severity
from review.models import Policy, Queue


class QueueSerializer(serializers.ModelSerializer[Queue]):
    class Meta:
        model = Queue
        fields = ["slug", "name", "purpose", "requester"]


class PolicySerializer(serializers.ModelSerializer[Policy]):
    class Meta:
        model = Policy
        fields = ["code", "title", "description"]


class DecisionSerializer(serializers.ModelSerializer[Decision]):
    policy: serializers.SlugRelatedField[Policy] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    decided_at = serializers.DateTimeField(source="created_at", read_only=True)
    carried_over = serializers.SerializerMethodField(
        help_text="True when the decision came from an earlier copy of the picture or a hash list, not a review."
    )

    carried_over_from_item = serializers.SerializerMethodField(
        help_text="The item whose review decided this one, when the decision was carried over from a copy."
    )
    hash_list: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, help_text="The hash list that decided the item, if one did."
    )

    class Meta:
        model = Decision
        fields = ["action", "policy", "reason", "is_final", "decided_at", "carried_over", "carried_over_from_item",
                  "hash_list"]

    def get_carried_over(self, decision: Decision) -> bool:
        return decision.carried_over_from_id is not None or decision.hash_list_id is not None

    def get_carried_over_from_item(self, decision: Decision) -> int | None:
        source = decision.carried_over_from
        return source.item_id if source is not None else None


class ItemIngestSerializer(serializers.Serializer[Any]):
    # Empty files are let through here so the media checks can refuse them with their own clear code.
    file = serializers.FileField(
        allow_empty_file=True, help_text="JPEG, PNG, WebP or GIF, decided by its bytes, not its name."
    )
    queue = serializers.SlugField(help_text="Slug of the queue to submit to.")
    external_id = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    category = serializers.ChoiceField(choices=Category.choices, required=False, default=Category.UNSPECIFIED)
    severity = serializers.ChoiceField(
        choices=Severity.choices, required=False, default=Severity.NONE, help_text="0 none, 1 low, 2 medium, 3 severe."
    )


class ItemSerializer(serializers.ModelSerializer[ContentItem]):
    queue = QueueSerializer(read_only=True)
    decision = serializers.SerializerMethodField()

    class Meta:
        model = ContentItem
        fields = ["id", "status", "queue", "external_id", "category", "severity", "sha256", "created_at",
                  "processed_at", "failure", "decision", "kind", "frame_count"]

    def get_decision(self, item: ContentItem) -> dict[str, Any] | None:
        final = next((d for d in item.decisions.all() if d.is_final and d.voided_at is None), None)
        return DecisionSerializer(final).data if final else None


class ClaimedItemSerializer(serializers.ModelSerializer[ContentItem]):
    """What a reviewer gets on claim: never the clear image, only the blurred preview and how to reveal."""

    queue = QueueSerializer(read_only=True)
    policies = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()
    reveal_url = serializers.SerializerMethodField()
    lease_expires_at = serializers.SerializerMethodField()

    class Meta:
        model = ContentItem
        fields = ["id", "status", "queue", "category", "severity", "lease_expires_at", "policies", "preview_url",
                  "reveal_url", "escalated_at"]

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True, "readOnly": True})
    def get_lease_expires_at(self, item: ContentItem) -> str | None:
        # The claim just made (context "claim") is the item's open lease: no need to read it back.
        claim = self.context.get("claim")
        expires = claim.expires_at if claim is not None and claim.item_id == item.pk else item.lease_expires_at
        return None if expires is None else serializers.DateTimeField().to_representation(expires)

    def get_policies(self, item: ContentItem) -> list[dict[str, Any]]:
        # The queue's policies, as item.queue.policies.all() reads them: compiled once per process (every claim).
        policies = compiled.instances("review.queue_policies", Policy, lambda *, queue_id: Policy.objects.filter(
            queue_id=queue_id), queue_id=item.queue_id)
        return list(PolicySerializer(policies, many=True).data)

    def get_preview_url(self, item: ContentItem) -> str:
        return reverse("media-preview", args=[item.pk])

    def get_reveal_url(self, item: ContentItem) -> str:
        return reverse("api-item-reveal", args=[item.pk])


class DecisionInputSerializer(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=Decision.Action.choices)
    policy = serializers.SlugField(required=False, allow_blank=True, default="")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class ErrorSerializer(serializers.Serializer[Any]):
    error = serializers.CharField()
    detail = serializers.CharField()
