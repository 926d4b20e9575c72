"""Fleet registry: ``mlsysim.Systems.Clusters.Frontier_8K``, ``Research_256``, ..."""
from __future__ import annotations

from . import _core
from .registry import _Namespace, key

__all__ = ["Systems", "Cluster"]


class Cluster:
    """A named cluster from catalog/fleet (nodes, fabrics, topology)."""

    def __init__(self, info: dict):
        self._info = info

    id = property(lambda self: self._info["id"])
    name = property(lambda self: self._info["name"])
    total_gpus = property(lambda self: self._info["total_gpus"])
    nodes = property(lambda self: self._info["nodes"])
    gpus_per_node = property(lambda self: self._info["gpus_per_node"])
    accelerator = property(lambda self: self._info["accelerator"])
    source = property(lambda self: self._info["source"])

    @property
    def _spec(self):  # for _Namespace indexing (aliases)
        return self

    @property
    def aliases(self):
        return self._info["aliases"]

    def __repr__(self):
        return (f"<Cluster {self.id}: {self.total_gpus} x {self.accelerator} "
                f"({self.nodes} x {self._info['node']}, {self._info['scale_out']}, {self._info['topology']})>")


class _Systems:
    def __init__(self):
        clusters = [Cluster(c) for c in _core.all_clusters()]
        index = {}
        for c in clusters:
            for n in [c.id, *c.aliases]:
                index.setdefault(key(n), c)

        def missing(name):
            raise AttributeError(f"unknown cluster '{name}'; known: {', '.join(c.id for c in clusters)}")

        self.Clusters = _ClusterNamespace("Systems.Clusters", index, missing)


class _ClusterNamespace(_Namespace):
    def __contains__(self, name) -> bool:
        return key(str(name)) in self._entries

    def __dir__(self):
        return sorted({(c.aliases[0] if c.aliases else c.id) for c in self._entries.values()})


Systems = _Systems()
