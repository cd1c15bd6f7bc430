"""What wellbeing tells the layers above it, without knowing them (docs/architecture.md)."""

from django.dispatch import Signal

# A break began: it stops all viewing, so whatever the reviewer holds goes back to its queue now (review.receivers
# gives it back, ending its claim and settling its exposure up to now). Sent inside the break's transaction with
# `reviewer`; receivers return how many items they gave back.
viewing_stopped = Signal()
