"""prunebench: regenerate pruning papers' tables and figures from declarative manifests."""
