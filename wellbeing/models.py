# Exposure ledger, caps, breaks and check-ins arrive with the wellbeing-safeguards work.
