"""Search: the store (Qdrant Edge in-process, or a Qdrant server), the
embedder, the reranker, what an index was built with, and retrieval
(first stage fused per page, optional cross-encoder, refusal).

The floor of the package tree: it knows nothing of files, courses or
models that write. It may import ``mentor.settings`` only.
"""
