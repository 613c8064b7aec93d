"""Start-up files that ``ncrt run`` puts on a child's ``PYTHONPATH`` (``sitecustomize``)."""
