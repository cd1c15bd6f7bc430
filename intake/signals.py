"""What intake tells the layers above it, without knowing them (docs/architecture.md)."""

from django.dispatch import Signal

# A final decision was recorded, in review or carried over by the pipeline (copies of a decided picture, hash-list
# matches). Sent inside the transaction that recorded it, with `decision`; receivers run in that transaction
# (integrations.receivers queues the requester's webhook on commit).
decision_recorded = Signal()
