#!/usr/bin/env bash
# Rebuild the training folder (default data/photos) from the project's training sources only:
#   - Debian packages gnome-backgrounds and plasma-workspace-wallpapers (one image per
#     wallpaper: the largest of its sizes, since the sizes are the same picture);
#   - the sample photos inside the scikit-image and scikit-learn wheels from PyPI.
# Every other Debian wallpaper/artwork package is reserved for held-out evaluation.
# Needs: apt-get (no root install: packages are only downloaded and unpacked), pip, unzip or python.
set -euo pipefail
out="${1:-$(dirname "$0")/photos}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

(cd "$work" && apt-get download gnome-backgrounds plasma-workspace-wallpapers >/dev/null)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done

# GNOME: one of each light/dark variant (the two differ only in colour); skip the 256 px vnc tiles.
for f in "$work"/root/usr/share/backgrounds/gnome/*-l.webp; do
    case "$f" in *vnc-l.webp) continue ;; esac
    cp "$f" "$out/gnome-$(basename "$f")"
done
# Plasma: the largest file in each wallpaper's contents/images/.
for dir in "$work"/root/usr/share/wallpapers/*/contents/images; do
    name="$(basename "$(dirname "$(dirname "$dir")")")"
    largest="$(ls -S "$dir" | head -n 1)"
    cp "$dir/$largest" "$out/plasma-$name.${largest##*.}"
done

python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheels" scikit-image scikit-learn
python3 - "$work/wheels" "$out" <<'PY'
import sys, zipfile, pathlib
wheels, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
# Photographs among the samples (skipping synthetic test charts and tiny images).
wanted = {"astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
          "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
          "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "text.png",
          "china.jpg", "flower.jpg"}
for wheel in wheels.glob("*.whl"):
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            name = member.rsplit("/", 1)[-1]
            if name in wanted and ("skimage/data/" in member or "sklearn/datasets/images/" in member):
                (out / f"{wheel.name.split('-')[0]}-{name}").write_bytes(archive.read(member))
PY
echo "$(ls "$out" | wc -l) photos in $out"
