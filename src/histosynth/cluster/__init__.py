"""Clustering embeddings into tissue types and painting pseudo-semantic maps.

* :mod:`~histosynth.cluster.kmeans` — seeded faiss k-means, nested levels, diverse sampling;
* :mod:`~histosynth.cluster.model` — :class:`ClusterModel` (``.npz``, no pickle);
* :mod:`~histosynth.cluster.pseudo_maps` — label grids and :func:`pseudo_map_sources` for the
  ``dataset`` stage;
* :mod:`~histosynth.cluster.stage` — the ``cluster`` stage; :mod:`~histosynth.cluster.report`
  and :mod:`~histosynth.cluster.quality` — the HTML report and its numbers.
"""
