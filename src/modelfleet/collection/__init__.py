"""Collection of what deployments receive and answer (a deployment's `data_collector`), off the
request path; runs in the server (the gateway's payload collection) and in replicas (score.py's
`azureml-ai-monitoring` Collector). docs/monitoring.md.

    windows.py   rolling windows (minute, hour, day) and where their files live
    sink.py      rows -> Parquet: bounded queues, writing a batch, the in-process flushing thread
    writer.py    the server's writer process; writer_client.py its server end; frames.py their pipe
                 (datastores/collected.py runs it with uploads to the default datastore)
    payload.py   payload collection in the gateway (any model type, no code; V2 tensors too): the
                 collector and its queue, packed once a flush for the writer
    columns.py   a packed batch -> Arrow columns, in the writer (rows.py: entry by entry -> rows)
    hub.py       the server's collectors, one per deployment that collects
    mdc.py       the receiver that `azureml-ai-monitoring`'s Collector posts to, in a replica
"""
