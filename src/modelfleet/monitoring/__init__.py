"""Model monitoring: say when what a deployment receives and answers drifts from reference data.
The documents are in ../schema/monitoring.py, the collection in ../collection/.

    tables.py          reading collected windows and data files as columns
    data_assets.py     data asset versions (`fleet data`)
    drift.py           the metrics: Jensen-Shannon, normalized Wasserstein, PSI, KS, chi-squared, quality rates
    monitor.py         one run of a monitor: signals x features x metrics against thresholds
    scheduler.py       the server's loop that runs due monitors, keeps results and alerts
    prometheus.py      the figures at /metrics
    schedules.py       monitor schedules as the control API changes them (create, enable, disable, delete)
"""
