"""Jobs that span stages, composed here so that no stage imports another; one module per job.

- `export`: a run directory -> model.onnx and its FP16 and INT8 copies, each verified against the torch model;
  TensorRT engines where possible.
- `pipeline`: the runners the main job compares, and those `bench` compares.
- `overlap`: evaluation sets must not hold images the model was trained on (train meets serve).
- `wise`: a WiSE-FT sweep of a run, the alpha validation picks written as a run directory.
- `compare`: recipes x knobs x seeds trained and scored, and the leaderboard.
- `checks` (with `check_worker`, `machine_facts`): `cli.py checks`, what this machine can do.
"""
