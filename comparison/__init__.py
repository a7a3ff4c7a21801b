"""The transport comparison: tools that run the gateway's transports side by side, through proxies.

    python -m comparison run [--quick|--full] [--out DIR] ...   the matrix -> a results folder
    python -m comparison report RESULTS_DIR                     the folder -> report.html, report.md

``proxy/`` (the reverse proxy and its profiles), ``nginx/`` (its nginx twin), ``matrix``
(cells and presets), ``runner`` and ``repeat`` (running them), ``children``, ``locust_run``,
``sampler`` (what a repeat starts and watches), ``records`` (the cell JSON), ``manifest``,
``progress``, ``signals``, and ``report/`` (rendering).
"""
