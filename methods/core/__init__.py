"""The machinery every method shares: the hook interface (``base``), masks and magnitude
selection (``masks``), learning-rate schedules (``schedules``) and forward passes through
reparametrised weights (``reparam``)."""
