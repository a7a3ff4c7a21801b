"""Locust scenarios for rtgateway: ``locust -f loadtests``.

``users.py`` is the locustfile (one user class per transport); ``_tracking.py`` holds
the pure bookkeeping (sequence numbers per sender). Files starting with ``_`` are not
loaded by Locust as locustfiles.
"""
