"""A ray run of configs/tiny.yaml on 2 workers writes what a local run writes, on a cluster that stays on loopback."""

import pytest
from ray_runs import MEMBERS, adapters, largest_difference, result

ray = pytest.importorskip("ray")


def test_private_cluster_listens_on_loopback_only(ray_cluster):
    _, startup_log = ray_cluster
    assert "external connectivity" not in startup_log  # Ray's probe towards a public DNS server never ran
    assert [node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]] == ["127.0.0.1"]
    psutil = pytest.importorskip("psutil")
    cluster_processes = [
        p for p in psutil.process_iter(["cmdline"]) if "--gcs-address=127.0.0.1" in " ".join(p.info["cmdline"] or [])
    ]
    assert cluster_processes
    for process in cluster_processes:
        for connection in process.net_connections(kind="inet"):
            for address in (connection.laddr, connection.raddr):
                assert not address or address.ip.startswith("127.") or address.ip in ("::1", "::ffff:127.0.0.1"), (
                    process.info["cmdline"][:2],
                    connection,
                )


def test_ray_run_writes_what_a_local_run_writes(local_run, ray_run):
    (local_out, _), (ray_out, _, _) = local_run, ray_run
    assert result(ray_out) == result(local_out)  # responses, judgments, outcomes, pairs, ratings: line for line
    assert largest_difference(adapters(ray_out), adapters(local_out)) <= 1e-6


def test_members_trained_on_both_workers(ray_run):
    from sparta.rundir import TRAINING, read_json, round_dir

    out, _, _ = ray_run
    for round_index in (1, 2):
        trained_on = {m: read_json(round_dir(out, round_index) / TRAINING)["members"][m]["worker"] for m in MEMBERS}
        assert set(trained_on.values()) == {0, 1}, trained_on
        assert trained_on["terse"] == 0 and trained_on["careful"] == 1  # the first two go out in pool order
    assert not list(out.rglob("*.partial.jsonl"))


def test_progress_bars_move_as_in_a_local_run(local_run, ray_run):
    (_, local), (_, on_ray, _) = local_run, ray_run
    assert on_ray.totals == local.totals
    assert on_ray.advanced == local.advanced == local.totals
