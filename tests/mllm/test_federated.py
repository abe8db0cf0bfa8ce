import dataclasses

import numpy as np
import pytest
import torch

from fedsim.mllm.federated import (
    FederatedConfig,
    fedavg,
    from_array_record,
    load_trainable_state,
    partition_by_family,
    run_federated,
    to_array_record,
    trainable_state,
)
from fedsim.mllm.lorasculpt import LoRASculptConfig, lora_factors
from fedsim.mllm.tuning import LoRATuningConfig, build_trainer


def test_fedavg_weighted_mean():
    a = {"w": np.array([1.0, 2.0], dtype=np.float32)}
    b = {"w": np.array([3.0, 6.0], dtype=np.float32)}
    out = fedavg([a, b], [1, 3])
    assert np.allclose(out["w"], [2.5, 5.0]) and out["w"].dtype == np.float32


def test_state_roundtrip_through_array_record(tiny):
    tr = build_trainer(LoRATuningConfig(r=2), tiny, 0)
    state = trainable_state(tr)
    assert state and all("lora_" in k for k in state)
    back = from_array_record(to_array_record(state))
    assert set(back) == set(state) and all(np.array_equal(back[k], state[k]) for k in state)
    bumped = {k: v + 1.0 for k, v in state.items()}
    load_trainable_state(tr, bumped)
    assert all(np.allclose(v, bumped[k]) for k, v in trainable_state(tr).items())
    with pytest.raises(ValueError, match="does not match"):
        load_trainable_state(tr, {"nope": np.zeros(1)})


def test_partition_is_non_iid_over_families_and_complete(down_data):
    parts = partition_by_family(down_data, 4, alpha=0.3, seed=0)
    assert sorted(i for p in parts for i in p) == list(range(len(down_data)))
    assert all(parts)
    fams = sorted(set(down_data.families))
    shares = np.array([[sum(down_data.families[i] == f for i in p) / len(p) for f in fams] for p in parts])
    assert shares.max(1).mean() > 0.4  # each client dominated by a few question types
    assert parts == partition_by_family(down_data, 4, alpha=0.3, seed=0)


def test_federated_lorasculpt_keeps_client_masks(tiny, down_data):
    # mask step inside round 1, so each client's mask reflects its own data (a mask computed right
    # after loading the global weights would be the same on every client)
    cfg = LoRASculptConfig(r=2, mask_step=2, batch_size=8, lr=1e-2, schedule="constant")
    fed = FederatedConfig(num_clients=2, rounds=2, local_steps=3, alpha=1.0)
    server, clients = run_federated(tiny, cfg, down_data, fed)
    for c in clients:
        assert c.trainer.masks is not None and c.trainer.global_step == 6
        # after its last local round the client's adapters are sparse with its own pattern
        assert all((p[~c.trainer.masks[n]] == 0).all() for n, p in lora_factors(c.trainer.mllm.model).items())
    m0, m1 = clients[0].trainer.masks, clients[1].trainer.masks
    assert any(not torch.equal(m0[n], m1[n]) for n in m0)  # masks are client-local, not shared
    # the averaged global adapter is the union of the client patterns: denser than each client
    assert server.nonzero_fraction() > max(c.trainer.nonzero_fraction() for c in clients)
    # a client re-applies its own mask after receiving the global weights
    c = clients[0]
    load_trainable_state(c.trainer, trainable_state(server))
    c.trainer.on_global_weights()
    assert all((p[~c.trainer.masks[n]] == 0).all() for n, p in lora_factors(c.trainer.mllm.model).items())


def test_remask_flag_off_keeps_global_density(tiny, down_data):
    cfg = LoRASculptConfig(r=2, mask_step=1, batch_size=8, remask_after_aggregation=False)
    fed = FederatedConfig(num_clients=2, rounds=1, local_steps=2, alpha=1.0)
    server, clients = run_federated(tiny, dataclasses.replace(cfg), down_data, fed)
    c = clients[0]
    load_trainable_state(c.trainer, trainable_state(server))
    c.trainer.on_global_weights()
    assert c.trainer.nonzero_fraction() == pytest.approx(server.nonzero_fraction())
