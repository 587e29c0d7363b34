"""The layers are enforced by the compiler (CMakeLists.txt, emotune_layer): each folder of src/ is a
layer, and a file of a layer that includes a header of a layer it does not build on fails to compile.

For one source file of every layer, its real compile command (compile_commands.json) is run on a
file holding only `#include "OTHER/header.h"`, for every layer OTHER outside the layers it may use
(build/layers/layers.txt): each must fail with "No such file".
Usage: python3 tests/check_layers.py BUILD_DIR SRC_DIR
"""
import json
import pathlib
import shlex
import subprocess
import sys

build, src = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
allowed = {}
for line in (build / "layers" / "layers.txt").read_text().splitlines():
    layer, uses = line.split(":")
    allowed[layer] = set(uses.split(";")) | {layer}
commands = json.loads((build / "compile_commands.json").read_text())
failures, checked = [], 0

for folder in sorted(p for p in src.iterdir() if p.is_dir()):
    if folder.name not in allowed:
        failures.append(f"src/{folder.name} is not a layer: give it an emotune_layer() in CMakeLists.txt")

for layer in sorted(allowed):
    entry = next((c for c in commands if pathlib.Path(c["file"]).resolve().parent == src / layer), None)
    if entry is None:
        failures.append(f"no compile command for a file of src/{layer}")
        continue
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    # The same compiler and flags, on standard input, checking only.
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-o", "-c", "-MF", "-MT", "-MQ"):
            skip = True
        elif a in ("-MD", "-MMD") or pathlib.Path(a).name == pathlib.Path(entry["file"]).name:
            pass
        else:
            kept.append(a)
    kept += ["-fsyntax-only", "-x", "c++", "-"]
    for other in sorted(allowed):
        if other in allowed[layer]:
            continue
        header = sorted(p.name for p in (src / other).glob("*.h"))[0]
        snippet = f'#include "{other}/{header}"\n'
        run = subprocess.run(kept, input=snippet, text=True, capture_output=True, cwd=entry["directory"])
        checked += 1
        if run.returncode == 0:
            failures.append(f"{layer} includes {other}/{header} and compiles")
        elif f"{other}/{header}: No such file" not in run.stderr:
            failures.append(f"{layer} including {other}/{header} fails, but not for want of the file: "
                            f"{run.stderr.strip()[:300]}")

for f in failures:
    print("FAIL:", f)
print(f"{checked} forbidden includes checked across {len(allowed)} layers, {len(failures)} failures")
sys.exit(1 if failures or checked < 50 else 0)
