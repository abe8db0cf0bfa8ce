"""Flower server strategies for fedsim; each module registers its strategy by name on import."""

import importlib

for _mod in ("local", "fedavg", "rahfl", "fedmd", "feddf", "fccl", "rhfl", "fedproto", "kt_pfl", "aughfl", "mas",
             "fedadapter", "acgkd", "cot_select", "baselines"):
    try:
        importlib.import_module(f"strategies.{_mod}")
    except ModuleNotFoundError as exc:
        if exc.name != f"strategies.{_mod}":
            raise
