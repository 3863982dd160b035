"""Pruning-stable methods: they sparsify while training, are hard-pruned at the end and
fine-tuned with FT (``stable``). GMP, DPF, DNW, GSM and LC are given a goal sparsity; STR,
CS and DST learn theirs (``learned``), and so does HoyerSquare, the SNIP-it paper's
regulariser baseline, fine-tuned within its budget as its authors' trainer does."""
