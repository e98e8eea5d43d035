"""The datastore URI forms Azure ML accepts, parsed into (datastore or account/container, path)."""

import pytest

from modelfleet.datastores.uris import DatastorePath, is_datastore_uri, parse
from modelfleet.domain.errors import InvalidInput


@pytest.mark.parametrize("uri, expected", [
    ("azureml://datastores/workspaceblobstore/paths/models/m1",
     DatastorePath(path="models/m1", datastore="workspaceblobstore")),
    ("azureml://datastores/my_ds/paths/models/m1/model.pkl",
     DatastorePath(path="models/m1/model.pkl", datastore="my_ds")),
    ("azureml://datastores/my_ds/paths/models/m1/", DatastorePath(path="models/m1", datastore="my_ds")),
    ("azureml://subscriptions/0000-11/resourcegroups/rg1/workspaces/ws1/datastores/my_ds/paths/a/b%20c.pkl",
     DatastorePath(path="a/b c.pkl", datastore="my_ds")),
    ("azureml://subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/"
     "datastores/ds2/paths/x", DatastorePath(path="x", datastore="ds2")),
    ("https://acct01.blob.core.windows.net/models/m1/model.onnx",
     DatastorePath(path="m1/model.onnx", account="acct01", container="models", endpoint="core.windows.net")),
    ("https://acct01.blob.core.chinacloudapi.cn/c1/dir",
     DatastorePath(path="dir", account="acct01", container="c1", endpoint="core.chinacloudapi.cn")),
    ("wasbs://models@acct01.blob.core.windows.net/m1",
     DatastorePath(path="m1", account="acct01", container="models", endpoint="core.windows.net")),
])
def test_parse(uri, expected):
    assert parse(uri) == expected
    assert is_datastore_uri(uri)


REFUSED = {  # uri: what its error says
    "azureml://datastores/ds/files/x": "expected azureml://datastores/<name>/paths/<path>",
    "azureml://datastores/ds/paths/": "must name a file or folder",
    "azureml://datastores/ds/paths/a/../../etc": "'..'",
    "https://example.com/c/p": "expected https://<account>.blob.core.windows.net",
    "https://acct01.blob.core.windows.net/": "names no container",
    "https://acct01.blob.core.windows.net/c1": "must name a file or folder",
    "ftp://acct01.blob.core.windows.net/c/p": "not an azureml://",
}


@pytest.mark.parametrize("uri", REFUSED)
def test_parse_refuses_with_one_line_naming_the_uri(uri):
    with pytest.raises(InvalidInput) as e:
        parse(uri)
    assert REFUSED[uri] in str(e.value) and uri in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("path", ["./models/m1", "/abs/model.pkl", "model.pkl", "azureml:model:1"])
def test_local_paths_and_references_are_not_datastore_uris(path):
    assert not is_datastore_uri(path)
