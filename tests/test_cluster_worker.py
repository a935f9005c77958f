"""The Dask executor's worker side (``pipeline/_cluster.py``) on a real cluster.

A real ``dask scheduler`` and two ``dask worker`` processes (tests/_dask_cluster.py); a client
workspace whose inputs are stored and pushed to a folder remote, as the runner does before it
submits a stage; :func:`run_stage_job` submitted to the cluster; the outputs fetched back from
the remote and compared byte for byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

pytest.importorskip("distributed")

from _dask_cluster import DaskCluster, fixture_dask_cluster, fixture_dask_session  # noqa: F401 (fixtures)
from conveyor.errors import UsageError
from conveyor.pipeline._cluster import (
    ClusterError,
    StageJob,
    StageJobResult,
    connect,
    dask_resources,
    input_of,
    job_remote,
    run_stage_job,
    unplaceable,
)
from conveyor.pipeline._lock import Fact
from conveyor.pipeline._spec import Stage
from conveyor.remote._config import remote_add
from conveyor.remote._transfer import Root, fetch_into, push_roots
from conveyor.versioning._repo import Repo
from conveyor.workspace import Workspace

TIMEOUT = 60


def digest(data: bytes) -> str:
    return blake3(data).hexdigest()


class ClientSide:
    """What the runner does around a remote stage: store and push inputs, fetch outputs."""

    def __init__(self, root: Path, remote_dir: Path) -> None:
        root.mkdir()
        self.ws = Workspace.init(root, no_scm=True)
        self.remote_dir = remote_dir
        remote_add("store", str(remote_dir), default=True, workspace=self.ws)

    def put(self, rel: str, data: bytes | dict[str, bytes], *, executable: bool = False) -> Fact:
        """Write a file (or a folder of ``{name: bytes}``), store it and push it; its fact."""
        path = self.ws.root / rel
        if isinstance(data, dict):
            for name, content in data.items():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                (path / name).write_bytes(content)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if executable:
                path.chmod(0o755)
        with self.ws.lock(), Repo(self.ws) as repo:
            with repo.odb.batch() as batch:
                snap = repo.snapshot(path, batch=batch)
            assert snap.digest is not None
            pushed = push_roots(repo, [Root(snap.digest, snap.kind, rel)])
            assert not pushed.missing
        return Fact(rel, snap.digest, snap.size, snap.kind, snap.files, True, snap.executable)

    def fetched(self, fact: Fact) -> bytes | dict[str, bytes]:
        """An output's content, fetched from the remote (it must not be in the local cache before)."""
        with self.ws.lock(), Repo(self.ws) as repo:
            assert not repo.odb.exists(fact.hash), "the output was in the client's cache before the fetch"
            result = fetch_into(repo, None, remote=None, roots=[Root(fact.hash, fact.kind, fact.path)])
            assert not result.missing and result.objects >= 1
            if fact.kind == "dir":
                manifest = repo.load_manifest(fact.hash)
                return {rel: repo.odb.read_bytes(e.digest) for rel, e in manifest.entries.items()}
            return repo.odb.read_bytes(fact.hash)

    def job(
        self,
        name: str,
        *,
        cmd: str | None = None,
        call: str | None = None,
        kwargs: dict[str, Any] | None = None,
        inputs: list[Fact] | None = None,
        outs: list[tuple[str, bool]] | None = None,
        env: dict[str, str] | None = None,
        wdir: str = ".",
        retries: int = 0,
        timeout: float | None = None,
    ) -> StageJob:
        url, options = job_remote(self.ws)
        return StageJob(
            name=name,
            cmd=cmd,
            call=call,
            kwargs=kwargs or {},
            env=env or {},
            wdir=wdir,
            inputs=tuple(input_of(f) for f in inputs or []),
            outs=tuple(outs or []),
            remote_url=url,
            remote_options=options,
            run_id="test-run",
            retries=retries,
            retry_delay=0.0,
            timeout=timeout,
        )


@pytest.fixture
def client_side(tmp_path: Path) -> ClientSide:
    return ClientSide(tmp_path / "client", tmp_path / "remote")


def submit(cluster: DaskCluster, job: StageJob, **resources: float) -> StageJobResult:
    assert cluster.client is not None
    future = cluster.client.submit(run_stage_job, job, pure=False, resources=resources or None)
    result = future.result(timeout=TIMEOUT)
    assert isinstance(result, StageJobResult)
    return result


def wait_until(check: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too (its parent, a killed worker, cannot reap it; init will)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def stop(pids: list[str]) -> None:
    """Kill what a test's stage started, should the test fail before it is gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


# -- (a) a stage runs on a worker: inputs in, outputs out ----------------------------------------------


def test_a_cmd_stage_reads_its_inputs_and_its_outputs_reach_the_remote(
    dask_cluster: DaskCluster, client_side: ClientSide
) -> None:
    data = client_side.put("data/in.txt", b"hello cluster\n")
    images = client_side.put("data/images", {"a.bin": b"\x00\x01", "sub/b.bin": b"bee"})
    params = client_side.put("params.yaml", b"lr: 0.1\n")
    script = client_side.put("bin/count.sh", b"#!/bin/sh\nls -R data/images | wc -l\n", executable=True)
    job = client_side.job(
        "shout",
        cmd=(
            "mkdir -p report && tr a-z A-Z < data/in.txt > up.txt && cat params.yaml >> up.txt"
            " && cp data/images/sub/b.bin report/b.bin && ./bin/count.sh > report/count.txt"
            " && echo $CONVEYOR_STAGE ran"
        ),
        inputs=[data, images, params, script],
        outs=[("up.txt", True), ("report", True)],
    )
    result = submit(dask_cluster, job)
    assert result.ok, result.error
    assert result.error is None and result.attempts == 1 and result.returncode == 0
    assert result.worker in {w.address for w in dask_cluster.live()}
    assert b"shout ran" in result.log
    up, report = result.outs
    expected = b"HELLO CLUSTER\nlr: 0.1\n"
    assert (up.path, up.kind, up.hash, up.size, up.cache) == ("up.txt", "file", digest(expected), len(expected), True)
    assert (report.path, report.kind, report.files) == ("report", "dir", 2)
    assert client_side.fetched(up) == expected
    fetched = client_side.fetched(report)
    assert isinstance(fetched, dict)
    assert fetched["b.bin"] == b"bee"
    assert int(fetched["count.txt"].strip()) >= 4  # ls -R: the folder, its file, sub:, b.bin


def test_a_call_stage_imports_its_module_from_its_inputs_in_its_wdir(
    dask_cluster: DaskCluster, client_side: ClientSide
) -> None:
    module = client_side.put(
        "src/helper.py",
        textwrap.dedent(
            """\
            import json, os

            def main(name, times):
                with open("../data/in.txt") as handle:
                    text = handle.read().strip()
                os.makedirs("../out", exist_ok=True)
                with open("../out/call.json", "w") as out:
                    json.dump({"name": name, "text": text * times, "cwd": os.path.basename(os.getcwd())}, out)
                print("called", name)
            """
        ).encode(),
    )
    data = client_side.put("data/in.txt", b"ab\n")
    job = client_side.job(
        "call",
        call="helper:main",
        kwargs={"name": "x", "times": 2},
        inputs=[module, data],
        outs=[("out/call.json", False)],
        wdir="src",
    )
    result = submit(dask_cluster, job)
    assert result.ok, (result.error, result.log)
    assert b"called x" in result.log
    (out,) = result.outs
    assert out.path == "out/call.json" and out.cache is False
    fetched = client_side.fetched(out)
    assert isinstance(fetched, bytes)
    assert json.loads(fetched) == {"name": "x", "text": "abab", "cwd": "src"}


def test_a_worker_downloads_an_input_once_for_every_stage_that_reads_it(
    dask_cluster: DaskCluster, client_side: ClientSide
) -> None:
    data = client_side.put("data/in.txt", b"shared input\n")
    first = submit(
        dask_cluster, client_side.job("one", cmd="rev data/in.txt > one.txt", inputs=[data], outs=[("one.txt", True)])
    )
    assert first.ok, first.error
    shutil.rmtree(client_side.remote_dir / "packs")  # the input (a small object, so packed) leaves the remote
    assert not (client_side.remote_dir / "objects").exists()
    assert dask_cluster.client is not None
    again = client_side.job("two", cmd="tr a-z A-Z < data/in.txt > two.txt", inputs=[data], outs=[("two.txt", True)])
    same = dask_cluster.client.submit(run_stage_job, again, pure=False, workers=[first.worker]).result(timeout=TIMEOUT)
    assert same.ok and same.worker == first.worker, same.error  # from that worker's cache
    assert client_side.fetched(same.outs[0]) == b"SHARED INPUT\n"
    (other,) = {w.address for w in dask_cluster.live()} - {first.worker}
    elsewhere = dask_cluster.client.submit(run_stage_job, again, pure=False, workers=[other]).result(timeout=TIMEOUT)
    assert not elsewhere.ok and "is not on the remote" in (elsewhere.error or "")


def test_jobs_in_threads_of_one_process_share_its_cache(client_side: ClientSide) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = client_side.put("data/words", {f"{i}.txt": f"word {i}\n".encode() for i in range(20)})
    jobs = [
        client_side.job(
            f"t{i}",
            cmd=f"cat data/words/*.txt > out{i}.txt && echo {i} >> out{i}.txt",
            inputs=[data],
            outs=[(f"out{i}.txt", True)],
        )
        for i in range(6)
    ]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run_stage_job, jobs))
    words = b"".join(f"word {i}\n".encode() for i in sorted(range(20), key=lambda i: f"{i}.txt"))
    for i, result in enumerate(results):
        assert result.ok, result.error
        assert client_side.fetched(result.outs[0]) == words + f"{i}\n".encode()


# -- (b) failures come back as results ----------------------------------------------------------------


def test_a_failing_command_is_a_failed_result_with_its_log(dask_cluster: DaskCluster, client_side: ClientSide) -> None:
    job = client_side.job("fail", cmd="echo about to fail; echo oops >&2; exit 3", retries=1, outs=[("x", True)])
    result = submit(dask_cluster, job)
    assert not result.ok and result.outs == ()
    assert result.error == "exit code 3" and result.returncode == 3 and result.attempts == 2
    assert b"oops" in result.log and b"--- attempt 2 ---" in result.log

    quiet = submit(dask_cluster, client_side.job("lazy", cmd="true", outs=[("nothing.txt", True)]))
    assert not quiet.ok and quiet.error == "it did not write its output nothing.txt"

    slow = submit(dask_cluster, client_side.job("slow", cmd="sleep 30", timeout=0.5))
    assert not slow.ok and slow.timed_out and slow.error == "timed out after 0.5 s"


# -- (c) an input the remote lacks --------------------------------------------------------------------


def test_an_input_missing_on_the_remote_is_a_one_line_error(dask_cluster: DaskCluster, client_side: ClientSide) -> None:
    data = client_side.put("data/in.txt", b"pushed\n")
    never = Fact("data/never.txt", digest(b"never pushed\n"), 13)
    job = client_side.job("needy", cmd="cat data/in.txt data/never.txt > out.txt", inputs=[data, never], outs=[])
    result = submit(dask_cluster, job)
    assert not result.ok and result.error is not None
    assert "\n" not in result.error
    assert f"input data/never.txt (object {never.hash}) is not on the remote {client_side.remote_dir}" in result.error
    assert "push it first" in result.error


def test_a_remote_folder_that_does_not_exist_is_a_one_line_error(
    dask_cluster: DaskCluster, client_side: ClientSide, tmp_path: Path
) -> None:
    data = client_side.put("data/in.txt", b"x\n")
    job = client_side.job("lost", cmd="true", inputs=[data])
    missing = tmp_path / "nowhere"
    job = dataclasses.replace(job, remote_url=str(missing))
    result = submit(dask_cluster, job)
    assert not result.ok and result.error is not None and "\n" not in result.error
    assert f"{missing} does not exist" in result.error and "cluster-" not in result.error


# -- (d) a worker dies in the middle of a stage -------------------------------------------------------


def test_a_stage_whose_worker_is_killed_runs_again_on_the_other_worker(
    dask_cluster: DaskCluster, client_side: ClientSide, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    data = client_side.put("data/in.txt", b"survive\n")
    # the first run says where it runs and hangs; the run Dask starts after the kill finishes
    cmd = (
        'if [ ! -e "$MARKERS/first" ]; then'
        '  sleep 30 & echo "$CONVEYOR_WORKER $$ $!" > "$MARKERS/first.tmp" && mv "$MARKERS/first.tmp" "$MARKERS/first";'
        "  wait;"
        " fi;"
        ' echo "$CONVEYOR_WORKER" > "$MARKERS/second" && tr a-z A-Z < data/in.txt > out.txt'
    )
    job = client_side.job("hang", cmd=cmd, inputs=[data], outs=[("out.txt", True)], env={"MARKERS": str(markers)})
    assert dask_cluster.client is not None
    future = dask_cluster.client.submit(run_stage_job, job, pure=False)
    assert wait_until(lambda: (markers / "first").exists()), "the stage never started"
    first_worker, *pids = (markers / "first").read_text().split()
    try:
        killed = dask_cluster.kill(first_worker)
        assert not killed.alive

        result = future.result(timeout=TIMEOUT)
        assert isinstance(result, StageJobResult)
        assert result.ok, (result.error, result.log)
        assert result.worker != first_worker and result.worker in {w.address for w in dask_cluster.live()}
        assert (markers / "second").read_text().strip() == result.worker
        (out,) = result.outs
        assert client_side.fetched(out) == b"SURVIVE\n"
        # the dead worker's stage went with it: the guard got SIGTERM from the kernel and stopped its group
        assert wait_until(lambda: all(gone(int(p)) for p in pids), 10), "the orphaned stage kept running"
    finally:
        stop(pids)


def test_cancelling_the_future_stops_the_stage(
    dask_cluster: DaskCluster, client_side: ClientSide, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    job = client_side.job(
        "cancel",
        cmd=f'sleep 30 & echo "$$ $!" > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; wait',
        outs=[("never.txt", True)],
    )
    assert dask_cluster.client is not None
    future = dask_cluster.client.submit(run_stage_job, job, pure=False)
    assert wait_until(pid_file.exists), "the stage never started"
    pids = pid_file.read_text().split()
    try:
        future.cancel()
        assert wait_until(lambda: all(gone(int(p)) for p in pids), 10), "the cancelled stage kept running"
    finally:
        stop(pids)


# -- (e) resources ------------------------------------------------------------------------------------


def stage(**fields: Any) -> Stage:
    base: dict[str, Any] = {
        "name": "s",
        "cmd": "true",
        "call": None,
        "kwargs": {},
        "deps": (),
        "params": (),
        "outs": (),
        "env": {},
        "wdir": ".",
    }
    return Stage(**{**base, **fields})


def test_dask_resources_name_only_what_a_stage_declares() -> None:
    assert dask_resources(stage()) == {}
    assert dask_resources(stage(cpus=1.0)) == {}  # the default: no constraint
    assert dask_resources(stage(cpus=0.5)) == {}
    assert dask_resources(stage(cpus=4.0)) == {"CPU": 4.0}
    assert dask_resources(stage(cpus=2.0, memory=8 * 10**9, gpus=1)) == {"CPU": 2.0, "MEMORY": 8e9, "GPU": 1.0}
    assert dask_resources(stage(memory=512 * 1024**2)) == {"MEMORY": 512.0 * 1024**2}


def test_a_stage_needing_two_cpus_runs_on_workers_that_declare_them(
    dask_cluster: DaskCluster, client_side: ClientSide
) -> None:
    data = client_side.put("data/in.txt", b"two\n")
    big = stage(name="big", cmd="tr a-z A-Z < data/in.txt > out.txt", cpus=2.0, deps=("data/in.txt",))
    job = StageJob.for_stage(big, [data], job_remote(client_side.ws), "test-run")
    job = dataclasses.replace(job, outs=(("out.txt", True),))
    assert dask_cluster.client is not None
    assert unplaceable(dask_cluster.client, dask_resources(big)) is None
    result = submit(dask_cluster, job, **dask_resources(big))
    assert result.ok, result.error
    assert client_side.fetched(result.outs[0]) == b"TWO\n"

    why = unplaceable(dask_cluster.client, {"GPU": 1.0, "CPU": 2.0})
    assert why is not None and "no Dask worker has CPU=2 GPU=1 (they declare: CPU=2)" in why


# -- (f) connecting -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_connect_to_a_closed_port_fails_fast_in_one_line() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        connect(f"dask://127.0.0.1:{port}")
    assert time.monotonic() - started < 2
    line = caught.value.format_message()
    assert "\n" not in line and caught.value.exit_code == 74
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: connection refused" in line
    assert "start a scheduler with `dask scheduler` or check the address" in line.replace(
        " (it listens on port 8786)", ""
    )


def test_connect_takes_dask_and_tcp_addresses_only(dask_cluster: DaskCluster) -> None:
    for address in (dask_cluster.dask_address, dask_cluster.address):
        client = connect(address)
        try:
            assert client.scheduler_info()["address"] == dask_cluster.address
        finally:
            client.close()
    for bad in ("http://127.0.0.1:8786", "127.0.0.1:8786", "dask://"):
        with pytest.raises(UsageError) as caught:
            connect(bad)
        assert "dask://HOST:PORT" in caught.value.format_message()


def test_the_module_imports_without_dask_and_says_what_to_install() -> None:
    code = textwrap.dedent(
        """\
        import sys
        sys.modules["distributed"] = None  # as if not installed
        from conveyor.pipeline import _cluster
        try:
            _cluster.connect("dask://127.0.0.1:8786")
        except _cluster.ClusterError as exc:
            print(exc.format_message())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "the dask executor needs the dask extra; pip install 'conveyor[dask]'"


def test_run_stage_job_also_runs_outside_dask(client_side: ClientSide) -> None:
    data = client_side.put("data/in.txt", b"local\n")
    result = run_stage_job(
        client_side.job("here", cmd="rev data/in.txt > out.txt", inputs=[data], outs=[("out.txt", True)])
    )
    assert result.ok, result.error
    assert result.worker.endswith(f":{os.getpid()}")
    assert client_side.fetched(result.outs[0]) == b"lacol\n"
