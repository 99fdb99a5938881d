"""CoCo-Tune: composability-based fast pruning (docs/design.md §4-§5).

``subspace`` reads and samples the promising subspace of pruned configurations; ``sequitur``
builds a hierarchical grammar over them in linear time; ``blocks`` turns that grammar into the
tuning blocks to pre-train and each configuration's composite vector; ``pruning`` decides which
filters of a module go.
"""
