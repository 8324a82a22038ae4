"""easyedit_hparams_json.py: writes the JSON twin of each EasyEdit hparams YAML fixture, read the
way EasyEdit reads it (easyeditor/util/hparams.py: yaml.safe_load, then every top-level string
that float() accepts becomes a float), so that tests/test_hparams_file.c and tests/cli_hparams.sh
can check that xledit's YAML reader gives what the JSON gives.

Run by hand with Debian's python3 (python3-yaml): /usr/bin/python3 tests/reference/easyedit_hparams_json.py
"""
import json
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "easyedit"


def easyedit_load(path):
    with open(path) as f:
        config = yaml.safe_load(f)
    for key, value in config.items():
        if isinstance(value, str):
            try:
                config[key] = float(value)
            except ValueError:
                pass
    return config


for src in sorted((ROOT / "hparams").glob("*/*.yaml")):
    out = ROOT / "json" / src.parent.name / (src.stem + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(easyedit_load(src), indent=1) + "\n")
    print(out.relative_to(ROOT))
