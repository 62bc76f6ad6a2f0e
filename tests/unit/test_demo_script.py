"""scripts/demo.sh starts the demo on the data directory every other subcommand uses."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="demo.sh re-runs itself under sudo otherwise")
def test_demo_sh_leaves_the_data_directory_to_the_common_default(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    stubs = {
        tmp_path / "scripts" / "setup.sh": "#!/bin/sh\nexit 0\n",
        # Stands in for the real command: shows what demo.sh passed it.
        tmp_path / ".venv" / "bin" / "cloudiag": '#!/bin/sh\nprintf "%s\\n" "$@"\n',
    }
    for path, text in stubs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CLOUDIAG_DATA_DIR"}
    out = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "demo.sh"), "--port", "8081"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert out.stdout.split() == ["demo", "--port", "8081"]
