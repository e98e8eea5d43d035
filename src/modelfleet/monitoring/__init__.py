"""Model monitoring: collect what deployments receive and answer, and say when it drifts.

    specs.py       the YAML documents: a deployment's `data_collector`, data assets, monitor schedules
    windows.py     rolling windows (minute, hour, day) and where their files live
    sink.py        rows -> Parquet, off the request path: a bounded queue and one flushing thread
    payload.py     payload collection in the gateway (any model type, no code)
    hub.py         the server's collectors, one per deployment that collects
    mdc.py         the receiver that `azureml-ai-monitoring`'s Collector posts to, in a replica
    tables.py      reading collected windows and data assets as columns
    drift.py       the metrics: Jensen-Shannon, normalized Wasserstein, PSI, chi-squared, quality rates
    monitor.py     one run of a monitor: signals x features x metrics against thresholds
    scheduler.py   the server's loop that runs due monitors, and alerts
"""
