"""The Open Bandit Pipeline's own IPW and SNIPW on the Open Bandit Dataset sample.

Estimates the Bernoulli-TS policy (its action distribution: bts_action_dist.csv, obp's
BernoulliTS(is_zozotown_prior=True, random_state=12345).compute_batch_action_dist(n_sim=100000))
from the random policy's logs, with obp's OpenBanditDataset and OffPolicyEvaluation, and writes
the four figures to tests/data/obd/obp_estimates.json. `cargo test` checks omnifeed's
eval::ope against them (tests/it/ope.rs), within 1%.

    python3 -m venv /tmp/obpenv
    /tmp/obpenv/bin/pip install obp==0.4.1 --no-deps
    /tmp/obpenv/bin/pip install numpy==1.26.4 pandas==1.5.3 scikit-learn==1.3.2 "scipy<1.12" \
        pyyaml tqdm "matplotlib<3.9" seaborn mypy_extensions
    /tmp/obpenv/bin/python scripts/obp_check.py ../shared/data/open-bandit-sample

(obp 0.4.1 calls pandas' `drop` with a positional axis, which pandas 2 refuses.)

obp imports torch at module load for its tensor variants; IPW and SNIPW compute with numpy. Where
torch is not installed, a stand-in module that only satisfies the imports is put on the path (no
torch code runs for these two estimators).
"""

import importlib.util
import json
import os
import sys
import types
from pathlib import Path


def torch_stand_in():
    if importlib.util.find_spec("torch") is not None:
        return
    class Stand(object):
        def __init__(self, *args, **kwargs):
            pass
    def module(name):
        m = types.ModuleType(name)
        m.__getattr__ = lambda attr: type(attr, (Stand,), {})
        m.__path__ = []
        return m
    for name in ["torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils",
                 "torch.utils.data", "torch.optim.lr_scheduler"]:
        sys.modules[name] = module(name)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])


def main(data):
    torch_stand_in()
    import numpy as np
    import pandas as pd
    from obp.dataset import OpenBanditDataset
    from obp.ope import InverseProbabilityWeighting as IPW
    from obp.ope import OffPolicyEvaluation
    from obp.ope import SelfNormalizedInverseProbabilityWeighting as SNIPW

    dist = pd.read_csv(os.path.join(data, "bts_action_dist.csv"))
    out = {}
    for campaign in ["men", "women"]:
        ds = OpenBanditDataset(behavior_policy="random", campaign=campaign, data_path=Path(data))
        fb = ds.obtain_batch_bandit_feedback()
        d = dist[dist.campaign == campaign]
        table = np.zeros((ds.n_actions, ds.len_list))
        for r in d.itertuples():
            table[int(r.item_id), int(r.position) - 1] = r.prob
        action_dist = np.repeat(table[None, :, :], fb["n_rounds"], axis=0)
        ope = OffPolicyEvaluation(bandit_feedback=fb, ope_estimators=[IPW(), SNIPW()])
        v = ope.estimate_policy_values(action_dist=action_dist)
        out[f"obd_ipw_{campaign}"] = float(v["ipw"])
        out[f"obd_snipw_{campaign}"] = float(v["snipw"])
        bts = OpenBanditDataset(behavior_policy="bts", campaign=campaign, data_path=Path(data))
        out[f"obd_on_policy_{campaign}"] = float(bts.obtain_batch_bandit_feedback()["reward"].mean())
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "data", "obd", "obp_estimates.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/open-bandit-sample")
