import pytest, json, shutil
from .test_faults import PacedLoad, HANG_PY, _deploy_iris, _scoring, _access_log
from .helpers import scoring_code

@pytest.mark.slow
def test_diag(fleet, models_dir, tmp_path):
    f = fleet
    _deploy_iris(f, models_dir, "hang-ep", instance_count=2,
                 code_configuration=scoring_code(tmp_path / "code", HANG_PY))
    url, key = _scoring(f, "hang-ep")
    load = PacedLoad(url, key, threads=8, per_s=4, seconds=40, hang_every=100)
    load.run()
    others = load.ok + len(load.failed)
    print("\nRESULT ok", load.ok, "of", others, "hung", load.hung)
    import time; time.sleep(2)
    shutil.copytree(f.workspace.logs_dir, "/tmp/hung/logs", dirs_exist_ok=True)
