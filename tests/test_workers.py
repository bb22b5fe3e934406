"""Decode workers come from a forkserver that imported what they need once
(tvcore.data.loaders.worker_context, tvcore.data.worker_preload)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; forkserver is POSIX")

# A dataset that imports nothing: what its worker holds was imported before it came.
PROBE_DATASET = textwrap.dedent("""
    import sys


    class Seen:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            names = ("torch", "torchvision.transforms", "open_clip", "tvcore.data.cache", "transformers")
            return {name: name in sys.modules for name in names}
""")

PROBE = textwrap.dedent("""
    import json, os, torch
    from tvcore.data.loaders import worker_context
    from probe_dataset import Seen

    def main():
        seen = next(iter(torch.utils.data.DataLoader(Seen(), batch_size=None, num_workers=1,
                                                     multiprocessing_context=worker_context(1))))
        servers = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
                cmdline = open(f"/proc/{pid}/cmdline").read()
            except OSError:
                continue
            if parent == os.getpid() and "forkserver" in cmdline:
                servers.append(len(os.listdir(f"/proc/{pid}/task")))
        print(json.dumps({"worker": seen, "server_threads": servers,
                          "omp_here": os.environ.get("OMP_NUM_THREADS")}))

    if __name__ == "__main__":
        main()
""")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workers")
    (folder / "probe_dataset.py").write_text(PROBE_DATASET)
    (folder / "probe.py").write_text(PROBE)
    env = {**__import__("os").environ, "PYTHONPATH": f"{folder}:{__import__('os').environ.get('PYTHONPATH', '')}"}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, str(folder / "probe.py")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_worker_starts_with_torch_the_transforms_openclip_and_the_readers_imported(probe):
    assert probe["worker"] == {"torch": True, "torchvision.transforms": True, "open_clip": True,
                               "tvcore.data.cache": True, "transformers": False}


def test_the_forkserver_is_single_threaded_so_its_forks_copy_no_held_lock(probe):
    assert probe["server_threads"] == [1]


def test_the_one_thread_setting_stays_with_the_server_not_the_process(probe):
    assert probe["omp_here"] is None
