"""Pruning before training (at initialisation) from sensitivity statistics (issue 15): SNIP
and SNIP-it, the latter also during training (``snip``), GraSP (``grasp``) and random
pruning (``random_init``), on the statistics and masks of ``sensitivity``; and the weight
elasticities at initialisation that SNIP-it's Figure 6 draws (``elasticity``), a probe."""
