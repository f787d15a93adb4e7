#!/usr/bin/env bash
# Remake the TensorBoard screenshots of docs/guides/sweeps-tensorboard.md:
# a small grid sweep, TensorBoard on a free local port (stopped by its pid), headless
# Chromium for the Scalars and HParams views, PNGs quantised to a small palette.
# Run from the repository root with the docs extra and Chromium installed.
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
cd "$work"
python -m mlpframe train -m data=synthetic data.n_samples=1200 trainer.max_epochs=15 \
    trainer.progress_bar=false optimizer.lr=0.1,0.01 model.hidden='[32],[64,32]' \
    hydra.sweep.dir=multirun/grid >/dev/null 2>&1
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
timeout 300 tensorboard --logdir multirun/grid --host 127.0.0.1 --port "$port" >tensorboard.log 2>&1 &
tb=$!
trap 'kill "$tb" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 60); do
    python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/data/runs')" 2>/dev/null && break
    sleep 1
done
shot() {  # shot NAME URL-FRAGMENT WIDTH,HEIGHT
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" --user-data-dir="$work/profile-$1" \
        --window-size="$3" --virtual-time-budget=30000 --screenshot="$work/$1.png" \
        "http://127.0.0.1:$port/$2" >/dev/null 2>&1
    python -c "from PIL import Image; Image.open('$work/$1.png').convert('RGB').quantize(colors=64).save('$out/$1.png', optimize=True)"
}
shot tensorboard-scalars "#scalars&tagFilter=val%2F&_smoothingWeight=0" 1280,800
shot tensorboard-hparams "#hparams" 1900,520
ls -l "$out"/*.png
