#!/usr/bin/env python3
"""Trains two small gradient-boosted models on synthetic rows with omnifeed's
27 ranking features, one with LightGBM and one with XGBoost, and writes what
`tests/it/trees.rs` checks omnifeed's loaders against:

- lightgbm.txt      LightGBM's text dump (`Booster.save_model`)
- xgboost.json      XGBoost's JSON dump (`Booster.dump_model(..., dump_format="json")`)
- xgboost.base      XGBoost's base margin (the logit of its base_score)
- rows.csv          the input rows (27 features, some NaN)
- predictions.csv   each library's own raw-margin prediction of each row

Run from the repository root: `python3 scripts/train_tree_models.py`
(lightgbm 4.x, xgboost 2.x or 3.x, numpy). The data are synthetic, seeded.
"""
import json
import math
import os

import lightgbm as lgb
import numpy as np
import xgboost as xgb

OUT = os.path.join("tests", "data", "trees")
F = 27
rng = np.random.default_rng(7)
n = 2000
x = rng.random((n, F)).astype(np.float32)
# Some columns are zero or missing often, like source scores and ratings.
x[rng.random((n, F)) < 0.15] = 0.0
x[:, 5][rng.random(n) < 0.1] = np.nan
logit = 3.0 * x[:, 0] - 2.0 * x[:, 3] + 1.5 * (x[:, 11] > 0.5) + x[:, 2] * x[:, 7] - 1.0
y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

os.makedirs(OUT, exist_ok=True)
test = x[:200]

lgb_model = lgb.train(
    {"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1, "seed": 1},
    lgb.Dataset(x, y),
    num_boost_round=30,
)
lgb_model.save_model(os.path.join(OUT, "lightgbm.txt"))
lgb_pred = lgb_model.predict(test, raw_score=True)

xgb_model = xgb.train(
    {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "seed": 1},
    xgb.DMatrix(x, label=y, missing=np.nan),
    num_boost_round=30,
)
xgb_model.dump_model(os.path.join(OUT, "xgboost.json"), dump_format="json")
config = json.loads(xgb_model.save_config())
base = config["learner"]["learner_model_param"]["base_score"]
base = float(str(base).strip("[]"))
with open(os.path.join(OUT, "xgboost.base"), "w") as f:
    f.write(repr(math.log(base / (1.0 - base))) + "\n")
xgb_pred = xgb_model.predict(xgb.DMatrix(test, missing=np.nan), output_margin=True)

with open(os.path.join(OUT, "rows.csv"), "w") as f:
    for row in test:
        f.write(",".join("nan" if np.isnan(v) else repr(float(v)) for v in row) + "\n")
with open(os.path.join(OUT, "predictions.csv"), "w") as f:
    f.write("lightgbm,xgboost\n")
    for a, b in zip(lgb_pred, xgb_pred):
        f.write(f"{float(a)!r},{float(b)!r}\n")
print("wrote", OUT)
