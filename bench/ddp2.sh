#!/usr/bin/env bash
# Runs COMMAND... as ranks 0 and 1 of a 2-process torch.distributed group on this host (torchrun's
# environment, one thread each); prints rank 0's output.
set -euo pipefail
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for r in 1 0; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 "$@" &
done
wait
